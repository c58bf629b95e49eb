"""tagio.relay: the rendezvous + relay server.

Pure parts with an injected clock: registry, pairing, ratelimit, logic (the message state table).
I/O parts: server (selectors loop + worker pool), readers (per-phase byte handling), conn, forward
(the relay pairs, os.splice on Linux), http (health/metrics/info), cli (flags, env, setup).
"""
