"""The runtime: what the Lambda function runs, with its I/O at the edges.

The service wiring, the pipeline (claim, plan, execute, settle), the provider adapters, the ledger and
the purge trail in DynamoDB, verification at the edge, dead letters and visibility changes. It builds
on the planning core (`cdnpurge.core`) and never imports the operator tools (`cdnpurge.cli`), which are
not shipped in the Lambda layer.
"""
