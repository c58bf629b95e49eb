"""The relay secret through real sockets: no offline test from a capture, no proof sent unasked.

Every test runs the real relay on 127.0.0.1 and real RelayClients. A recording proxy stands where
an eavesdropper on a plain tagio:// path would: the capture test then tries every offline check of
a candidate secret it can think of (the old HMAC proof among them) and shows that none tells the
right secret from a wrong one. Wrong secrets are refused with "auth_failed", counted, logged
without the secret, and rate limited per source, per ID and relay-wide; a client that hangs up
after the relay's SPAKE2 point has spent its guess. A public relay, and an older private relay
that asks for the HMAC, never receive any proof.
"""

import hashlib
import hmac
import logging
import os
import shutil
import socket
import ssl
import tempfile
import unittest
from pathlib import Path

from tagio.client import words
from tagio.crypto import relay_auth
from tagio.crypto.identity import Identity
from tagio.crypto.relay_auth import LABEL, RelaySecret, RelayVerifier
from tagio.crypto.spake2 import (M, N, ROLE_A, Spake2Party, confirmation_keys, decode_point, encode_point,
                                 transcript)
from tagio.errors import RelayError
from tagio.net.relay_client import RelayClient
from tagio.protocol import relay as m
from tagio.protocol.framing import FrameDecoder
from tagio.relay.cli import make_tls_context
from tests.relay_auth_helpers import Capture, FakeRelay, RecordingProxy
from tests.relay_fixture import start_relay, wait_for

SECRET = "Summer2024!"          # the secret a reviewer cracked in 1.2 ms from one HMAC capture
WRONG = "Summer2025!"
OLD_HMAC_CONTEXT = b"TagIO-relay-auth-v1"  # the removed proof: HMAC(secret, context + nonce + ID)
PROOF_FREE = (m.Hello, m.Register, m.Heartbeat, m.Bye, m.Update)  # what a client may send a public relay


def old_hmac_proof(secret: str, nonce: bytes, client_id: str) -> bytes:
    return hmac.new(secret.encode(), OLD_HMAC_CONTEXT + nonce + client_id.encode(), hashlib.sha256).digest()


class Registration:
    """What one recorded private registration shows an eavesdropper."""

    def __init__(self, capture: Capture):
        challenge = capture.first("down", m.AuthChallenge)
        self.realm, self.nonce = challenge.realm, challenge.nonce
        self.register = capture.first("up", m.Register)
        self.p_a = self.register.auth_point
        self.p_b = capture.first("down", m.AuthReply).point
        self.conf_a = capture.first("up", m.AuthConfirm).mac
        self.conf_b = capture.first("down", m.AuthConfirm).mac
        self.wire = bytes(capture.up) + bytes(capture.down)
        self.ids = relay_auth.identities(self.register.client_id, self.register.public_key, self.realm, self.nonce)


# ---- offline checks: (registration, candidate secret) -> "this candidate fits the capture" ----------------

def check_old_hmac(reg, candidate):
    """The attack that worked: recompute the HMAC proof and look for it."""
    proof = old_hmac_proof(candidate, reg.nonce, reg.register.client_id)
    return proof == reg.register.auth_point or proof in reg.wire


def check_derivatives_on_the_wire(reg, candidate):
    """The secret, its hash, its stretched form or its scalar anywhere in the bytes."""
    w = relay_auth.secret_scalar(candidate, reg.realm)
    forms = (candidate.encode(), hashlib.sha256(candidate.encode()).digest(), w.to_bytes(32, "big"),
             w.to_bytes(32, "little"), encode_point(M * w), encode_point(N * w))
    return any(form in reg.wire for form in forms)


def _unblinded(reg, candidate):
    """x*G and y*G, if the candidate is right (unblinding is all a candidate allows)."""
    w = relay_auth.secret_scalar(candidate, reg.realm)
    return w, decode_point(reg.p_a) + (-(M * w)), decode_point(reg.p_b) + (-(N * w))


def check_confirmations(reg, candidate):
    """Rebuild the key-confirmation MACs with every shared point an eavesdropper can form."""
    w, x_g, y_g = _unblinded(reg, candidate)
    for shared in (x_g, y_g, x_g + y_g, x_g + (-y_g)):
        if shared.is_point_at_infinity():
            continue
        tt = transcript(*reg.ids, reg.p_a, reg.p_b, encode_point(shared), w)
        kc_a, kc_b = confirmation_keys(hashlib.sha256(tt).digest()[16:], LABEL)
        if hmac.new(kc_a, tt, hashlib.sha256).digest() == reg.conf_a or \
                hmac.new(kc_b, tt, hashlib.sha256).digest() == reg.conf_b:
            return True
    return False


def check_unblinded_points(reg, candidate):
    """Structure in the unblinded points: equal, opposite, or a small x coordinate."""
    _w, x_g, y_g = _unblinded(reg, candidate)
    return x_g == y_g or x_g == -y_g or int(x_g.x) < 2 ** 200 or int(y_g.x) < 2 ** 200


OFFLINE_CHECKS = (check_old_hmac, check_derivatives_on_the_wire, check_confirmations, check_unblinded_points)


class CaptureTest(unittest.TestCase):
    """Record registrations at a private relay; no check tells the right secret from a wrong one."""

    REGISTRATIONS = 3

    def test_a_capture_gives_no_offline_test_of_the_secret(self):
        with start_relay(auth_secret=SECRET) as relay:
            proxy = RecordingProxy(relay.address)
            self.addCleanup(proxy.close)
            for _ in range(self.REGISTRATIONS):
                client = RelayClient(proxy.address, Identity.generate(), auth_secret=RelaySecret(SECRET), timeout=5)
                client.connect()  # the right secret registers
                self.assertTrue(client.online)
                client.close()
            self.assertEqual(relay.logic.counters["registrations_total"], self.REGISTRATIONS)
            self.assertEqual(relay.logic.counters["auth_failures_total"], 0)
            self.assertTrue(wait_for(lambda: all(ended(c) for c in proxy.captures)))
        captures = [Registration(c) for c in proxy.captures]
        self.assertEqual(len(captures), self.REGISTRATIONS)
        self.assertEqual(len({c.realm for c in captures}), 1, "one realm per relay: the client derives w once")
        for reg in captures:
            self.assertNotEqual(reg.p_a, b"")
            for check in OFFLINE_CHECKS:
                with self.subTest(check=check.__name__, client=reg.register.client_id):
                    self.assertEqual(check(reg, SECRET), check(reg, WRONG),
                                     f"{check.__name__} tells the right secret from a wrong one")
                    self.assertFalse(check(reg, SECRET))
        print(f"\n  capture of {len(captures)} private registrations: {len(OFFLINE_CHECKS)} offline checks of a "
              f"candidate secret tried, none tells the right secret from a wrong one", end="")

    def test_the_checks_can_see_a_crackable_capture(self):
        """The checks are not blind: an HMAC-era capture, and a degenerate run (x = 1), give them away."""
        nonce, ident = os.urandom(32), Identity.generate()
        hmac_era = Capture()
        hmac_era.down += m.AuthChallenge(nonce, "realm").encode() + m.AuthReply(bytes(65)).encode()
        hmac_era.up += m.Register(ident.id, ident.public_key, bytes(64),
                                  old_hmac_proof(SECRET, nonce, ident.id)).encode()
        hmac_era.up += m.AuthConfirm(bytes(32)).encode()
        hmac_era.down += m.AuthConfirm(bytes(32)).encode()
        reg = Registration(hmac_era)
        self.assertTrue(check_old_hmac(reg, SECRET))
        self.assertFalse(check_old_hmac(reg, WRONG))

        verifier = RelayVerifier(SECRET, "realm")
        id_a, id_b = relay_auth.identities(ident.id, ident.public_key, "realm", nonce)
        party = Spake2Party(ROLE_A, relay_auth.secret_scalar(SECRET, "realm"), id_a, id_b, LABEL, _test_scalar=1)
        run = verifier.respond(party.message, ident.id, ident.public_key, nonce)
        result = party.finish(run.message)
        weak = Capture()
        weak.down += m.AuthChallenge(nonce, "realm").encode() + m.AuthReply(run.message).encode()
        weak.up += m.Register(ident.id, ident.public_key, bytes(64), party.message).encode()
        weak.up += m.AuthConfirm(result.my_confirmation).encode()
        weak.down += m.AuthConfirm(run.confirmation).encode()
        self.assertTrue(check_confirmations(Registration(weak), SECRET))
        self.assertFalse(check_confirmations(Registration(weak), WRONG))


class WrongSecretTest(unittest.TestCase):
    """auth_failed in words, counted, logged without the secret, limited per source, ID and relay."""

    def client(self, relay, secret, identity=None, source="127.0.0.1"):
        return RelayClient(relay.address, identity or Identity.generate(), timeout=5, source_ip=source,
                           auth_secret=RelaySecret(secret) if secret else None)

    def refused(self, client) -> RelayError:
        with self.assertRaises(RelayError) as ctx:
            client.connect()
        return ctx.exception

    def test_wrong_secret_is_refused_counted_logged_and_limited_per_source(self):
        with start_relay(auth_secret=SECRET, auth_fail_burst=3) as relay, \
                self.assertLogs("tagio.relay", logging.WARNING) as logs:
            for attempt in range(3):
                exc = self.refused(self.client(relay, WRONG))
                self.assertEqual(exc.code, "auth_failed", exc)
            said = words.explain(exc)
            self.assertIn("relay secret is missing or wrong", said.body)
            self.assertEqual(relay.logic.counters["auth_failures_total"], 3)
            exc = self.refused(self.client(relay, WRONG))
            self.assertEqual(exc.code, "rate_limited")
            exc = self.refused(self.client(relay, SECRET))  # the source is out of guesses
            self.assertEqual(exc.code, "rate_limited")
            self.assertEqual(relay.logic.counters["auth_failures_total"], 3)
            self.client(relay, SECRET, source="127.0.0.2").connect()  # another source still registers
        text = "\n".join(logs.output)
        self.assertIn("wrong relay secret from 127.0.0.1", text)
        self.assertNotIn(SECRET, text)
        self.assertNotIn(WRONG, text)

    def test_limited_per_id_and_for_the_whole_relay(self):
        with start_relay(auth_secret=SECRET, auth_fail_id_burst=2, auth_fail_total_burst=4) as relay:
            victim = Identity.generate()
            for n in (2, 3):
                self.assertEqual(self.refused(self.client(relay, WRONG, victim, f"127.0.0.{n}")).code, "auth_failed")
            self.assertEqual(self.refused(self.client(relay, WRONG, victim, "127.0.0.4")).code, "rate_limited")
            for n in (5, 6):
                self.assertEqual(self.refused(self.client(relay, WRONG, source=f"127.0.0.{n}")).code, "auth_failed")
            # Four wrong secrets relay-wide: a fresh source and a fresh ID are refused too.
            self.assertEqual(self.refused(self.client(relay, WRONG, source="127.0.0.7")).code, "rate_limited")
            self.assertEqual(relay.logic.counters["auth_failures_total"], 4)

    def test_a_hang_up_after_the_relay_point_is_a_failed_guess(self):
        with start_relay(auth_secret=SECRET) as relay:
            ident = Identity.generate()
            with socket.create_connection(relay.address, timeout=5) as sock:
                sock.sendall(m.Hello().encode())
                challenge = read_message(sock)
                self.assertIsInstance(challenge, m.AuthChallenge)
                run = RelaySecret(WRONG).start(challenge.realm, ident.id, ident.public_key, challenge.nonce)
                signature = ident.sign(m.registration_message(challenge.nonce, ident.id, ident.public_key))
                sock.sendall(m.Register(ident.id, ident.public_key, signature, run.message).encode())
                self.assertIsInstance(read_message(sock), m.AuthReply)
            # The guesser hung up: it could not check its guess, but the relay counts it all the same.
            self.assertTrue(wait_for(lambda: relay.logic.counters["auth_abandoned_total"] == 1))
            self.assertEqual(relay.logic.counters["auth_failures_total"], 1)

    def test_an_old_client_is_told_to_update(self):
        with start_relay(auth_secret=SECRET) as relay:
            with socket.create_connection(relay.address, timeout=5) as sock:
                sock.sendall(m.Hello("tagio/1").encode())
                error = read_message(sock)
        self.assertIsInstance(error, m.Error)
        self.assertEqual(error.code, "protocol")
        self.assertIn("update TagIO", error.text)

    def test_a_missing_secret_is_said_locally(self):
        with start_relay(auth_secret=SECRET) as relay:
            self.assertEqual(self.refused(self.client(relay, None)).code, "auth_required")
            self.assertEqual(relay.logic.counters["auth_failures_total"], 0)


class NoProofUnaskedTest(unittest.TestCase):
    """A relay that did not ask for the secret gets nothing that depends on it."""

    def assert_no_proof(self, capture, secret):
        sent = capture.messages("up")
        self.assertTrue(sent and all(isinstance(msg, PROOF_FREE) for msg in sent), sent)
        register = capture.first("up", m.Register)
        self.assertEqual(register.auth_point, b"")
        nonce = capture.first("down", m.Challenge).nonce
        self.assertNotIn(old_hmac_proof(secret, nonce, register.client_id), bytes(capture.up))
        self.assertNotIn(secret.encode(), bytes(capture.up))

    def test_a_public_relay_never_receives_a_proof(self):
        with start_relay() as relay:
            proxy = RecordingProxy(relay.address)
            self.addCleanup(proxy.close)
            for secret in (None, SECRET):  # with or without a relay secret in the settings
                client = RelayClient(proxy.address, Identity.generate(), timeout=5,
                                     auth_secret=RelaySecret(secret) if secret else None)
                client.connect()
                client.close()
            self.assertTrue(wait_for(lambda: len(proxy.captures) == 2 and all(ended(c) for c in proxy.captures)))
        for capture in proxy.captures:
            self.assert_no_proof(capture, SECRET)

    def test_an_older_private_relay_gets_no_proof(self):
        """Challenge(auth_required=1) asks for the crackable HMAC: refused, and nothing follows Hello."""
        def old_relay(fake):
            fake.recv_message()
            fake.send(m.Challenge(os.urandom(32), 1, "tagio/1"))
            fake.drain()
        fake = FakeRelay(old_relay)
        self.addCleanup(fake.close)
        client = RelayClient(fake.address, Identity.generate(), auth_secret=RelaySecret(SECRET), timeout=5)
        with self.assertRaises(RelayError) as ctx:
            client.connect()
        self.assertEqual(ctx.exception.code, "protocol")
        self.assertIn("update the relay", ctx.exception.text)
        self.assertTrue(wait_for(lambda: fake._thread.is_alive() is False))
        self.assertIsNone(fake.error)
        self.assertEqual([type(msg) for msg in fake.received], [m.Hello])

    def test_a_relay_without_the_secret_cannot_pass_as_the_relay(self):
        """Key confirmation both ways: an impostor's conf_b fails, and the client says auth_failed."""
        def impostor(fake):
            fake.recv_message()
            nonce = os.urandom(32)
            fake.send(m.AuthChallenge(nonce, "impostor"))
            register = fake.recv_message()
            run = RelayVerifier("not the secret", "impostor").respond(
                register.auth_point, register.client_id, register.public_key, nonce)
            fake.send(m.AuthReply(run.message))
            fake.recv_message()
            fake.send(m.AuthConfirm(run.confirmation))
            fake.send(m.Registered(("127.0.0.1", 1), 0, 20_000, bytes(16)))
            fake.drain()
        fake = FakeRelay(impostor)
        self.addCleanup(fake.close)
        client = RelayClient(fake.address, Identity.generate(), auth_secret=RelaySecret(SECRET), timeout=5)
        with self.assertRaises(RelayError) as ctx:
            client.connect()
        self.assertEqual(ctx.exception.code, "auth_failed")
        self.assertFalse(client.online)
        self.assertTrue(wait_for(lambda: fake._thread.is_alive() is False))
        self.assertIsNone(fake.error)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command to make a test certificate")
class InsideTlsTest(unittest.TestCase):
    """TLS and WebSocket stay an extra layer: the same PAKE runs inside wss://."""

    def test_the_secret_is_proven_inside_wss(self):
        from tests.test_relay_tls import make_certificate
        tmp = Path(tempfile.mkdtemp(prefix="tagio-auth-wss-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = make_certificate(tmp)
        with start_relay(auth_secret=SECRET, ssl_context=make_tls_context(str(cert), str(key))) as relay:
            context = ssl.create_default_context(cafile=str(cert))
            for secret, outcome in ((WRONG, "auth_failed"), (SECRET, None)):
                client = RelayClient(relay.address, Identity.generate(), auth_secret=RelaySecret(secret),
                                     ssl_context=context, server_hostname="127.0.0.1", websocket=True, timeout=5)
                if outcome:
                    with self.assertRaises(RelayError) as ctx:
                        client.connect()
                    self.assertEqual(ctx.exception.code, outcome)
                    continue
                client.connect()
                self.addCleanup(client.close)
                self.assertTrue(client.online)
            self.assertEqual(relay.logic.counters["auth_failures_total"], 1)


def ended(capture) -> bool:
    """The client's Bye is in the capture: its side of the conversation is complete."""
    return any(isinstance(msg, m.Bye) for msg in capture.messages("up"))


def read_message(sock):
    """One relay message from a blocking socket (byte by byte)."""
    decoder, frames = FrameDecoder(), []
    while not frames:
        data = sock.recv(1)
        if not data:
            raise ConnectionError("closed")
        frames = decoder.feed(data)
    return m.decode_message(frames[0])


if __name__ == "__main__":
    unittest.main()
