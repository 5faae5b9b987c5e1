"""The operator tools: the `cdnpurge` command and its charts.

Installed with the package for operators (`pip install cdnpurge`, `.venv/bin/cdnpurge`), never shipped
in the Lambda layer (layers/core/Makefile removes this package from the build).
"""
