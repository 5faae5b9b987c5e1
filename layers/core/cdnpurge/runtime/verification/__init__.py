"""Verification: "accepted" is not "fresh". After a purge is accepted, look at the edge.

- `settings`: the `verify:` block of a provider entry (hosts, URLs per change, the version header, timing).
- `probe`: asks the public URLs (allow-listed hosts only, timeouts, no redirect to another host).
- `origin`: what the origin holds now (the S3 object's ETag, or a metadata version), the truth to compare with.
- `jobs`: a provider's own job status where one exists (CloudFront `get_invalidation`, Medianova's job
  listing; Akamai's `estimatedSeconds` travels in the check itself).
- `verifier`: which (provider, change) pairs get a check after a batch, and running one check: wait for the
  job, probe, record first seen fresh, purge again what is still stale, dead-letter past the deadline;
  `VerificationListener`, where it reports what it learns (the purge trail).
- `report`: what verification did in one invocation (figures per provider), carried by the batch report.

The check travels as a delayed SQS message on the purge queue (`cdnpurge.core.events.verify`); see
docs/verification.md for why not a queue of its own or Step Functions.
"""
