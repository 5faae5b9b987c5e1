"""Purge-storm benchmarks: cdnpurge against a naive per-event purger on rate-limited fake CDNs.

`python -m bench.storm` (or `make bench`) prints a table and writes JSON under `bench/results/`.
"""

from __future__ import annotations

import os

# What every bench that runs the local stack sets, unless the environment already says otherwise: credentials
# no real account accepts (nothing here may reach AWS), a region, and Powertools' tracer off (no X-Ray daemon).
LOCAL_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def use_local_aws() -> None:
    """Set `LOCAL_AWS_ENVIRONMENT` where not set already (called by each bench's `main`, never at import)."""
    for name, value in LOCAL_AWS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
