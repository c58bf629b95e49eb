"""Fuzz harness for every TagIO parser (relay frames and messages, handshake, records, session,
reliable UDP, WebSocket, LAN datagrams, direct-TCP preamble, address parser).

Seeded from the golden vectors in tests/data/; mutations in mutate.py; targets in targets.py;
runner.py runs them for a time budget. tests/test_fuzz.py runs a bounded pass (about 30 s in all,
fixed seed) with the normal tests; `python3 -m tests.fuzz --seconds N` is the long run.
"""
