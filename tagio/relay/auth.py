"""A private relay's side of the relay-secret PAKE: challenges, guesses counted, runs kept, without I/O.

Theory of operation
-------------------
RelayLogic holds one RelayAuth when the relay has a secret. The secret is
stretched once, here, at start-up (tagio.crypto.relay_auth.RelayVerifier);
an attempt then costs two scalar multiplications, which the I/O layer runs
on a worker thread with the Ed25519 check (`job`), never on the loop.

Every attempt is a guess at the secret, and guesses are limited per source
address, per ID and for the whole relay (token buckets, Limits.auth_*):

    admit(conn, register)   a token from each bucket, or "rate_limited"; the run is pending
    replied(conn, run)      pB goes out: from here the client holds a live guess
    confirmed(conn, mac)    right: the tokens are given back (a right secret costs nothing)
                            wrong: counted, logged (source and ID, never the secret), "auth_failed"
    lost(conn)              a guess that got its pB and never confirmed is a failed guess too
                            (hang-up, timeout, eviction); one that did not is given back

So a client that hangs up after pB, whatever it learned, has spent a guess,
and the buckets refill only at the failure rate (a right secret's token is
given back at once). The text of an "auth_failed" Error is the same for a
missing and a wrong secret and names no ID.
"""

from tagio.crypto.relay_auth import POINT_LEN, RelayVerifier
from tagio.errors import (ConfigError, IdentityError, LocalProtocolError, RelayError, RemoteProtocolError,
                          TagioError)
from tagio.protocol import relay as m
from tagio.relay.ratelimit import RateLimiter

ALL = "*"  # the relay-wide bucket's key
WRONG = "this relay requires a secret and yours is missing or wrong"


class _Attempt:
    """One Register's guess: the buckets it took a token from, its message, its run once pB went out."""

    def __init__(self, keys, message):
        self.keys = keys
        self.message = message
        self.run = None


class RelayAuth:
    def __init__(self, secret: str, realm: str, limits, clock, counters, warn):
        try:
            self.verifier = RelayVerifier(secret, realm)
        except (LocalProtocolError, RemoteProtocolError) as exc:
            raise ConfigError(f"unusable relay secret or realm: {exc}") from exc
        self.counters, self.warn = counters, warn
        lim = limits
        self.limiters = (
            ("address", RateLimiter(clock, lim.auth_fail_rate, lim.auth_fail_burst)),
            ("ID", RateLimiter(clock, lim.auth_fail_id_rate, lim.auth_fail_id_burst)),
            ("relay", RateLimiter(clock, lim.auth_fail_total_rate, lim.auth_fail_total_burst, max_keys=1)))
        self.pending = {}  # conn -> _Attempt, from admit until confirmed or lost
        for key in ("auth_failures_total", "auth_abandoned_total", "auth_rate_limited_total"):
            counters.setdefault(key, 0)

    def challenge(self, nonce: bytes) -> m.AuthChallenge:
        return m.AuthChallenge(nonce, self.verifier.realm)

    def admit(self, conn, message) -> None:
        """Take one guess token per bucket for this Register; raises before any SPAKE2 work.

        RelayError("auth_failed") without a point (a client with no secret), RemoteProtocolError for
        a point of the wrong shape, RelayError("rate_limited") when a bucket is empty.
        """
        if not message.auth_point:
            raise RelayError("auth_failed", WRONG)
        if len(message.auth_point) != POINT_LEN or message.auth_point[0] != 4:
            raise RemoteProtocolError(f"the relay-secret point must be {POINT_LEN} bytes of uncompressed SEC1")
        keys = (conn.peer_addr[0], message.client_id, ALL)
        taken = []
        for (what, limiter), key in zip(self.limiters, keys):
            if not limiter.allow(key):
                self._give_back(taken)
                self.counters["auth_rate_limited_total"] += 1
                self.warn(("auth-limit", keys[0]), "too many wrong relay secrets (per %s); refusing %s, ID %s",
                          what, keys[0], message.client_id)
                raise RelayError("rate_limited", "too many wrong relay secrets; wait a minute and check it")
            taken.append((limiter, key))
        self.pending[conn] = _Attempt(taken, message)

    def job(self, nonce: bytes, message, check_ownership):
        """What a worker runs: the ownership check, then (if it passed) the SPAKE2 step.

        The job returns the ownership problem (a str), a RelayRun, or the RemoteProtocolError of a
        point that did not decode; it never raises for the peer's bytes.
        """
        verifier = self.verifier

        def run():
            problem = check_ownership(nonce, message)
            if problem:
                return problem
            try:
                return verifier.respond(message.auth_point, message.client_id, message.public_key, nonce)
            except RemoteProtocolError as exc:
                return exc
        return run

    def replied(self, conn, outcome) -> m.AuthReply:
        """The AuthReply (pB) for the worker's outcome; from here the client holds a live guess.

        Raises IdentityError for an ownership problem (a str) and the RemoteProtocolError of a point
        that did not decode; the guess is then given back (the client learned nothing).
        """
        attempt = self.pending.get(conn)
        if attempt is None:
            raise LocalProtocolError("an auth outcome for a connection that never asked")
        if isinstance(outcome, (str, TagioError)):
            self._give_back(self.pending.pop(conn).keys)
            raise IdentityError(outcome) if isinstance(outcome, str) else outcome
        attempt.run = outcome
        return m.AuthReply(outcome.message)

    def confirmed(self, conn, mac: bytes) -> tuple:
        """(the relay's AuthConfirm, the Register) when `mac` is right.

        Raises RelayError("auth_failed") otherwise, counted as a failed guess and logged.
        """
        attempt = self.pending.pop(conn, None)
        if attempt is None or attempt.run is None:
            raise LocalProtocolError("AuthConfirm accepted before AuthReply was sent")
        if not attempt.run.client_proved(mac):
            self.counters["auth_failures_total"] += 1
            ip = conn.peer_addr[0]
            self.warn(("auth", ip), "wrong relay secret from %s for ID %s (%d wrong so far on this relay)",
                      ip, attempt.message.client_id, self.counters["auth_failures_total"])
            raise RelayError("auth_failed", WRONG)
        self._give_back(attempt.keys)
        return m.AuthConfirm(attempt.run.confirmation), attempt.message

    def lost(self, conn) -> None:
        """conn left mid-attempt: a failed guess if it had pB, else nothing spent."""
        attempt = self.pending.pop(conn, None)
        if attempt is None:
            return
        if attempt.run is None:
            return self._give_back(attempt.keys)
        self.counters["auth_failures_total"] += 1
        self.counters["auth_abandoned_total"] += 1
        ip = conn.peer_addr[0]
        self.warn(("auth-gone", ip), "relay-secret attempt from %s left before confirming; counted as "
                  "a wrong secret", ip)

    @staticmethod
    def _give_back(taken) -> None:
        # A negative cost puts a token back (RateLimiter caps the bucket at its burst on the next take).
        for limiter, key in taken:
            limiter.allow(key, -1.0)
