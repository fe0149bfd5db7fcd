"""Persistent state (SQLite)."""
