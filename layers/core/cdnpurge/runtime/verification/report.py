"""What verification did in one invocation, for the batch response, logs and metrics.

Kept apart from the verifier (which loads the provider adapters) so the batch report can carry it cheaply.
"""

from __future__ import annotations

import msgspec


class Tally(msgspec.Struct):
    """One provider's verification figures for one invocation (metrics with a `provider` dimension)."""

    time_to_fresh: list[float] = msgspec.field(default_factory=list)  # seconds, one per change seen fully fresh
    stale: int = 0  # URLs seen stale after a purge (StaleAfterPurge)
    repurged: int = 0  # URLs purged again (Repurged)
    unverifiable: int = 0  # (change) targets no URL can show (Unverifiable)
    failed: int = 0  # changes dead-lettered past the deadline (VerificationFailed)
    probes: int = 0
    checks_scheduled: int = 0
    waiting: int = 0  # checks put back because the provider's job was still in progress (or not yet due)
    seen_fresh: list[tuple[str, float, tuple[str, ...]]] = msgspec.field(default_factory=list)  # change, seconds, URLs
    seen_stale: list[tuple[str, str, str | None, str | None]] = msgspec.field(
        default_factory=list
    )  # change, url, served, origin


class VerificationReport(msgspec.Struct):
    """What verification did in one invocation."""

    tallies: dict[str, Tally] = msgspec.field(default_factory=dict)
    failed_sources: list[str] = msgspec.field(default_factory=list)  # check records returned to SQS
    failures: list[str] = msgspec.field(default_factory=list)  # reasons dead-lettered (redacted)
    errors: list[str] = msgspec.field(default_factory=list)  # sends that failed (redacted)

    def tally(self, provider: str) -> Tally:
        return self.tallies.setdefault(provider, Tally())
