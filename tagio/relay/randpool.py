"""Random bytes for nonces and tokens, read from the OS in chunks.

Every registration needs 48 random bytes (a 32-byte challenge nonce and a
16-byte UDP token). `secrets.token_bytes` is one getrandom() system call each,
and on the relay's loop thread every system call also gives up the GIL and
waits to get it back from the signature-check workers. `RandomPool` reads
CHUNK bytes of os.urandom at a time and hands each byte out exactly once, so
the loop makes one call per ~85 registrations. The bytes are the OS CSPRNG's
own output, never stretched or reused.

Not thread-safe by design: the relay's loop thread is its only user.
"""

import os

CHUNK = 4096


class RandomPool:
    def __init__(self, chunk: int = CHUNK, source=os.urandom):
        self.chunk = chunk
        self._source = source
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        """n fresh random bytes."""
        end = self._pos + n
        if end > len(self._buf):
            self._buf, self._pos, end = self._source(max(self.chunk, n)), 0, n
        out = self._buf[self._pos:end]
        self._pos = end
        return out
