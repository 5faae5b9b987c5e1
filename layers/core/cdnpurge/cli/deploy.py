"""What a configuration document needs in order to be deployed: the SSM parameter tier that can hold it.

The function reads its configuration from the SSM String parameter the template names (`PURGE_CONFIG` =
`ssm:/cdnpurge/core/config`). A Standard parameter holds at most 4 KB and an Advanced one 8 KB (AWS's error for
a larger Standard value counts 4,096 characters; UTF-8 bytes are counted here, which is never fewer, so the
advice is never too late). A comment counts like any other line.
"""

from __future__ import annotations

SSM_STANDARD_MAX_BYTES = 4096
SSM_ADVANCED_MAX_BYTES = 8192


def parameter_size_warning(text: str) -> str | None:
    """Why `text` does not fit a Standard SSM parameter, and what to do instead; None when it fits."""
    size = len(text.encode("utf-8"))
    if size <= SSM_STANDARD_MAX_BYTES:
        return None
    if size <= SSM_ADVANCED_MAX_BYTES:
        return (
            f"the configuration is {size:,} bytes, more than an SSM Standard parameter holds "
            f"({SSM_STANDARD_MAX_BYTES:,}): store it with `aws ssm put-parameter ... --tier Advanced` "
            f"(up to {SSM_ADVANCED_MAX_BYTES:,} bytes, charged per parameter-month), or remove comments"
        )
    return (
        f"the configuration is {size:,} bytes, more than any SSM parameter holds "
        f"({SSM_ADVANCED_MAX_BYTES:,} in the Advanced tier): remove comments and merge rules until it fits"
    )
