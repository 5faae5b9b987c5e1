"""Fake CDN servers on loopback that follow each provider's documented API and limits."""
