"""Durable progress below the change: a change too big for one invocation advances on every receive.

Completion is kept per (provider, change), so without more a published event of thousands of URLs at a
one-URL-per-call CDN restarted from its first URL on every receive and reached the dead-letter queue on its
fifth. Here each claimed pair's `Attempt` (`cdnpurge.runtime.ledger`) carries `done`: a digest of every
target, in the form the provider receives it, that the attempt has purged so far. The settle stage adds
the targets of each accepted request to the pairs it served (`purged_digests`), and a pair that is not
complete is parked with them; the next receive takes the attempt over and plans only what is not yet done
(`skip_done`). So every receive that purges anything advances the change, and a target is purged again only
when its request's outcome was lost (at least once, as any purge).

Digests are short (`DIGEST_CHARS` characters of SHA-256, 72 bits: a collision among one change's targets
is out of reach), and a record keeps at most `MAX_DONE` of them (well under DynamoDB's 400 KB item);
beyond that a receive records nothing new, so it is not progress: the record is no longer continued and ends
in the dead-letter queue after its receives, as a change without progress does (`records_progress`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

from cdnpurge.core.models import PurgeRequest, RoutedTarget, TargetKind
from cdnpurge.core.plan import convert
from cdnpurge.core.spec import ProviderSpec
from cdnpurge.runtime.ledger import Attempt, Pair

DIGEST_CHARS: Final = 12
MAX_DONE: Final = 25_000


def target_digest(kind: TargetKind, value: str) -> str:
    """A target's short name in a progress record."""
    digest = hashlib.sha256(f"{kind.value}:{value}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:DIGEST_CHARS]


def purged_digests(requests: Iterable[PurgeRequest]) -> set[str]:
    """The digests of every target of these (accepted) requests."""
    return {target_digest(request.kind, value) for request in requests for value in request.targets}


def advanced(attempt: Attempt, purged: set[str]) -> Attempt:
    """The attempt with `purged` added to what it has done (at most `MAX_DONE` digests are kept)."""
    new = purged - attempt.done
    if not new or len(attempt.done) >= MAX_DONE:
        return attempt
    room = MAX_DONE - len(attempt.done)
    return attempt._replace(done=attempt.done | frozenset(sorted(new)[:room]))


def records_progress(attempt: Attempt, purged: set[str]) -> bool:
    """Whether parking `attempt` with `purged` records anything new (not when its record is full: `MAX_DONE`)."""
    return advanced(attempt, purged) is not attempt


def skip_done(
    routed: list[RoutedTarget], attempts: Mapping[Pair, Attempt], specs: Mapping[str, ProviderSpec]
) -> list[RoutedTarget]:
    """`routed` without, at each provider, the targets its change's attempt already purged there (every form
    the provider receives it in). A target left for no provider is dropped; the settle stage completes a
    claimed pair left with nothing to send."""
    if not any(attempt.done for attempt in attempts.values()):
        return routed
    kept: list[RoutedTarget] = []
    for item in routed:
        if not item.providers:
            kept.append(item)
            continue
        left = frozenset(name for name in item.providers if not _done_at(item, name, attempts, specs))
        if left == item.providers:
            kept.append(item)
        elif left:
            kept.append(item._replace(providers=left))
    return kept


def _done_at(
    item: RoutedTarget, provider: str, attempts: Mapping[Pair, Attempt], specs: Mapping[str, ProviderSpec]
) -> bool:
    attempt = attempts.get((provider, item.change_id))
    spec = specs.get(provider)
    if attempt is None or not attempt.done or spec is None:
        return False
    forms, problem = convert(item.target, spec)
    return problem is None and bool(forms) and all(target_digest(f.kind, f.value) in attempt.done for f in forms)
