"""Scheduler filter plugins: each answers one question about one node."""
