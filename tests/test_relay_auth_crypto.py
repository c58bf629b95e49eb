"""tagio.crypto.relay_auth and tagio.relay.auth without sockets: the PAKE, its KDF, the guess accounting.

The relay's SPAKE2 side (precomputed w*N and -w*M) must agree byte for byte with the RFC-vector
tested Spake2Party; w must be derived once (relay: at start-up; client: per process and realm);
guesses are counted as tagio.relay.auth says, with a fake clock.
"""

import os
import unittest
from unittest import mock

from tagio.crypto import relay_auth
from tagio.crypto.identity import Identity
from tagio.crypto.relay_auth import LABEL, RelaySecret, RelayVerifier
from tagio.crypto.spake2 import ROLE_B, Spake2Party, encode_point, _G
from tagio.errors import IdentityError, LocalProtocolError, RelayError, RemoteProtocolError
from tagio.protocol import relay as m
from tagio.relay.connection import ConnState
from tagio.relay.logic import Limits, RelayLogic
from tests.test_relay_logic import FakeClock, Recorder, RecordingConn, prove_secret, register_message

LAYER = "unit"
SECRET = "correct horse battery staple"
NONCE = bytes(range(32))
REALM = "tagio-relay-test"


def client_run(secret=SECRET, ident=None, nonce=NONCE, realm=REALM):
    ident = ident or IDENT
    return RelaySecret(secret).start(realm, ident.id, ident.public_key, nonce)


IDENT = Identity.generate()
VERIFIER = RelayVerifier(SECRET, REALM)


class PakeTest(unittest.TestCase):
    def respond(self, run, nonce=NONCE, ident=None):
        ident = ident or IDENT
        return VERIFIER.respond(run.message, ident.id, ident.public_key, nonce)

    def test_right_secret_proves_both_ways(self):
        run = client_run()
        relay = self.respond(run)
        self.assertTrue(relay.client_proved(run.confirm(relay.message)))
        self.assertTrue(run.relay_proved(relay.confirmation))

    def test_wrong_secret_fails_both_ways(self):
        run = client_run("correct horse battery stapler")
        relay = self.respond(run)
        self.assertFalse(relay.client_proved(run.confirm(relay.message)))
        self.assertFalse(run.relay_proved(relay.confirmation))

    def test_the_run_is_bound_to_the_nonce_and_the_client(self):
        for nonce, ident in ((os.urandom(32), IDENT), (NONCE, Identity.generate())):
            run = client_run()
            relay = self.respond(run, nonce=nonce, ident=ident)
            self.assertFalse(relay.client_proved(run.confirm(relay.message)))

    def test_relay_side_matches_spake2_party_byte_for_byte(self):
        y = 0x1234567890ABCDEF1234567890ABCDEF
        run = client_run()
        with mock.patch.object(relay_auth, "random_scalar", return_value=y):
            relay = self.respond(run)
        id_a, id_b = relay_auth.identities(IDENT.id, IDENT.public_key, REALM, NONCE)
        party = Spake2Party(ROLE_B, relay_auth.secret_scalar(SECRET, REALM), id_a, id_b, LABEL, _test_scalar=y)
        self.assertEqual(relay.message, party.message)
        self.assertEqual(relay.confirmation, party.finish(run.message).my_confirmation)

    def test_bad_points_are_the_peers_fault(self):
        for bad in (b"", bytes(65), b"\x04" + bytes(64), b"\x04" + b"\xff" * 64,
                    encode_point(_G)[:-1], encode_point(_G) + b"\x00"):
            with self.subTest(bad=bad.hex()[:20]), self.assertRaises(RemoteProtocolError):
                VERIFIER.respond(bad, IDENT.id, IDENT.public_key, NONCE)

    def test_w_depends_on_secret_and_realm(self):
        w = relay_auth.secret_scalar(SECRET, REALM)
        self.assertNotEqual(w, relay_auth.secret_scalar(SECRET, REALM + "x"))
        self.assertNotEqual(w, relay_auth.secret_scalar(SECRET + "x", REALM))

    def test_client_derives_once_per_realm(self):
        real = relay_auth.secret_scalar
        with mock.patch.object(relay_auth, "secret_scalar", side_effect=real) as derive:
            realm = "once-" + os.urandom(4).hex()
            for _ in range(3):
                client_run(realm=realm)
        self.assertEqual(derive.call_count, 1)

    def test_secret_is_never_shown(self):
        self.assertNotIn(SECRET, repr(RelaySecret(SECRET)))
        with self.assertRaises(LocalProtocolError):
            RelaySecret("   ")

    def test_realm_must_be_a_short_name(self):
        for bad in ("", "x" * 65, "a\nb"):
            with self.subTest(realm=bad), self.assertRaises(RemoteProtocolError):
                client_run(realm=bad)


class GuessAccountingTest(unittest.TestCase):
    """tagio.relay.auth through the relay's state machine, with a fake clock."""

    def setUp(self):
        self.clock = FakeClock()
        self.logic = RelayLogic(Limits(auth_fail_burst=2, auth_fail_rate=0.1), auth_secret=SECRET,
                                clock=self.clock)
        self.io = Recorder(self.logic)

    def attempt(self, secret, ip="203.0.113.5", ident=None):
        conn = RecordingConn(ip)
        try:
            prove_secret(self.io, conn, ident or Identity.generate(), secret)
        except RelayError as exc:
            return exc.code
        return "registered" if conn.state is ConnState.REGISTERED else conn.failed

    def test_right_secrets_spend_nothing_and_the_relay_never_runs_the_kdf_per_attempt(self):
        relay_auth.client_scalar(SECRET, self.logic.auth.verifier.realm)  # the client's one derivation
        with mock.patch.object(relay_auth, "scrypt", side_effect=AssertionError("scrypt per attempt")):
            results = [self.attempt(SECRET) for _ in range(5)]
        self.assertEqual(results, ["registered"] * 5)
        self.assertEqual(self.logic.counters["auth_failures_total"], 0)

    def test_wrong_secrets_spend_and_refill_at_the_failure_rate(self):
        self.assertEqual([self.attempt("wrong") for _ in range(3)], ["auth_failed", "auth_failed", "rate_limited"])
        self.assertEqual(self.attempt(SECRET), "rate_limited")
        self.clock.now += 10.0  # one token back at 0.1 a second
        self.assertEqual(self.attempt(SECRET), "registered")
        self.assertEqual(self.logic.counters["auth_failures_total"], 2)

    def test_spake2_runs_on_the_worker_not_the_loop(self):
        jobs = []
        self.io.offload = lambda fn, done: jobs.append((fn, done))
        conn = RecordingConn()
        self.io.handle(conn, m.Hello())
        challenge = conn.sent[-1]
        run = RelaySecret(SECRET).start(challenge.realm, IDENT.id, IDENT.public_key, challenge.nonce)
        self.io.handle(conn, register_message(IDENT, challenge.nonce, run.message))
        self.assertEqual((len(jobs), conn.state), (1, ConnState.VERIFYING))  # nothing computed yet
        fn, done = jobs.pop()
        done(fn())
        self.assertIsInstance(conn.sent[-1], m.AuthReply)
        self.assertEqual(conn.state, ConnState.AUTHENTICATING)

    def test_a_bad_signature_gives_the_guess_back(self):
        conn = RecordingConn()
        self.io.handle(conn, m.Hello())
        challenge = conn.sent[-1]
        run = RelaySecret("wrong").start(challenge.realm, IDENT.id, IDENT.public_key, challenge.nonce)
        self.io.handle(conn, register_message(IDENT, os.urandom(32), run.message))  # signed the wrong nonce
        self.assertIsInstance(conn.failed, IdentityError)
        self.logic.connection_lost(conn)
        self.assertEqual([self.attempt("wrong") for _ in range(2)], ["auth_failed", "auth_failed"])


if __name__ == "__main__":
    unittest.main()
