"""Whether a provider accepts its credentials, asked with a harmless call (`cdnpurge doctor`).

An adapter implementing `core.protocol.CredentialsCheck` makes a documented call that needs the credentials
and purges nothing. HTTP adapters name it in `credentials_check` and make it through their own `send`, so its
base URL, auth, timeouts and error mapping are the purge path's: Fastly `GET /tokens/self`, Cloudflare
`GET /user/tokens/verify`, Akamai `POST /ccu/v3/rate-limit-status/{type}` (EdgeGrid signed), Bunny
`GET /pullzone/{id}`, Medianova the purge-job listing, F5 XC the load balancer's config `GET`, Gotipath
`GET /distributions/{id}`. CloudFront has no token: its adapter reads the distribution (`GetDistribution`) with
the AWS credentials it holds, within its bounded call. Each is listed in docs/providers.md (`ProviderDocs`
`credential_check`). An adapter whose API has no such call is reported as not checked, never as accepted; a
call that names a resource the provider lacks (404) is unknown, never accepted. Messages are redacted with the
credentials' own forms before they leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import msgspec

from cdnpurge.core.protocol import Provider, credentials_check
from cdnpurge.core.provider_errors import AuthError, ProviderError
from cdnpurge.runtime.redaction import redact, secret_forms


class Acceptance(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # the provider did not answer the question (down, throttled, an unexpected answer)
    NOT_CHECKED = "not checked"  # its API has no harmless call that needs the credentials


class CredentialCheck(msgspec.Struct, frozen=True):
    provider: str
    acceptance: Acceptance
    detail: str


def check_credentials(provider: Provider, secrets: Sequence[str]) -> CredentialCheck:
    """Ask `provider` (unwrapped down to its adapter) whether it accepts its credentials; `secrets`, its
    credential values, are redacted from what is said."""
    forms = secret_forms(secrets)
    checker = credentials_check(provider)
    try:
        asked = None if checker is None else checker.check_credentials()
    except AuthError as exc:
        return CredentialCheck(provider.name, Acceptance.REFUSED, redact(str(exc), forms))
    except ProviderError as exc:
        return CredentialCheck(provider.name, Acceptance.UNKNOWN, redact(str(exc), forms))
    if asked is None:
        return CredentialCheck(provider.name, Acceptance.NOT_CHECKED, "its API has no harmless call to ask")
    return CredentialCheck(provider.name, Acceptance.ACCEPTED, asked)
