"""Relay-token pairing: two connections that bind the same token become a pair.

Pure, with an injected clock. The broker `issue()`s a random token for a
rendezvous; the token is valid for `token_ttl` seconds. The first connection
to `bind()` it waits (at most `wait_timeout`), the second completes the pair
and the token is spent. A third bind or an unknown or expired token is
refused with a RelayError code. Sides are not told apart: a client that binds
its own token twice pairs with itself, which harms nobody else (the token is
secret to the two peers, and the channel inside is end-to-end encrypted).
"""

from collections import OrderedDict

from tagio.errors import RelayError


class Pairing:
    def __init__(self, clock, token_ttl: float = 60.0, wait_timeout: float = 30.0,
                 max_tokens: int = 100_000):
        self.clock = clock
        self.token_ttl = token_ttl
        self.wait_timeout = wait_timeout
        self.max_tokens = max_tokens
        self._issued = OrderedDict()  # token -> expiry time
        self._waiting = {}             # token -> (conn, deadline)
        self._token_of = {}            # waiting conn -> token

    def issue(self, token: bytes) -> None:
        self._drop_stale_tokens()
        if len(self._issued) >= self.max_tokens:
            raise RelayError("busy", "too many pending relay sessions; try again shortly")
        self._issued[token] = self.clock() + self.token_ttl

    def bind(self, token: bytes, conn):
        """Return None (now waiting) or the partner connection (pair complete)."""
        waiting = self._waiting.pop(token, None)
        if waiting is not None:
            partner, _deadline = waiting
            self._token_of.pop(partner, None)
            return partner
        expiry = self._issued.pop(token, None)
        if expiry is None or expiry < self.clock():
            raise RelayError("unknown_token", "relay token unknown or expired")
        self._waiting[token] = (conn, self.clock() + self.wait_timeout)
        self._token_of[conn] = token
        return None

    def drop(self, conn) -> None:
        """A waiting connection went away; its token is spent."""
        token = self._token_of.pop(conn, None)
        if token is not None:
            self._waiting.pop(token, None)

    def expire(self) -> list:
        """Remove and return waiting connections whose partner never came."""
        now = self.clock()
        dead = [(t, c) for t, (c, deadline) in self._waiting.items() if deadline < now]
        for token, conn in dead:
            del self._waiting[token]
            self._token_of.pop(conn, None)
        self._drop_stale_tokens()
        return [conn for _t, conn in dead]

    def _drop_stale_tokens(self) -> None:
        now = self.clock()
        while self._issued:
            token, expiry = next(iter(self._issued.items()))
            if expiry >= now:
                break
            del self._issued[token]

    @property
    def waiting(self) -> int:
        return len(self._waiting)
