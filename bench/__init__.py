"""Purge-storm benchmarks: cdnpurge against a naive per-event purger on rate-limited fake CDNs.

`python -m bench.storm` (or `make bench`) prints a table and writes JSON under `bench/results/`.
"""
