"""The embedded resolver: one process per user bridge, answering container names.

records.py decides answers from the state store (read-only), server.py is the
single-threaded UDP/TCP loop that serves them and forwards everything else,
supervisor.py starts and stops that process for the engine.
"""
