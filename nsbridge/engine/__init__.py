"""The engine: validate, lock, plan, apply, record. Daemonless: each CLI call is the engine."""
