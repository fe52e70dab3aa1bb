"""The read-only hypercare dashboard: one page at a glance, a page per ticket, JSON and a health check.

Why a room of its own: it only reads (``Store.read()``), so it can run in the daemon's
process on its own thread, or render once into a file with ``hypercare dashboard --out``.
"""
