"""The planning core: pure functions and value types, no I/O and no AWS or HTTP client at import.

Decoding events, translating changes into targets, validating the configuration, planning the fewest
purge requests within each provider's declared limits, and pricing them. Everything here is
deterministic given its inputs, so it is tested by properties and measured by the planner bench.
The runtime (`cdnpurge.runtime`) and the operator tools (`cdnpurge.cli`) build on it; it imports
neither.
"""
