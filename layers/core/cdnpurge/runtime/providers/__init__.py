"""CDN adapters: one module per provider behind one small protocol.

`base` (the protocol), `errors` (the shared error vocabulary), `spec` (what the planner reads), `http` (the
shared HTTP flow) and `registry` (configuration `kind` -> adapter). Importing this package loads nothing else,
so the planner can read `spec` without loading an adapter, httpx or boto3.
"""
