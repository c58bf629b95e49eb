"""The identity proofs the pins check: protocol/proof.py (golden vectors, garbage refused),
crypto/proof.py (sign and verify; reflected, wrong-ID, other-channel, tampered and small-order
proofs refused) and client/proving.py (the exchange over an in-memory channel pair: both proven,
a viewer lying about its ID refused before the host says anything, older partners refused in
words, a silent partner timed out).

Run `python3 -m tests.test_pins_proof --regenerate` only on a deliberate wire change.
"""

import hashlib
import unittest

from Crypto.PublicKey import ECC

from tagio.client import proving
from tagio.client.refusal import PartnerRefused
from tagio.crypto import proof as cp
from tagio.crypto.identity import Identity, verify_signature
from tagio.errors import (ConnectionClosed, LocalProtocolError, RemoteProtocolError,
                          TransportTimeout)
from tagio.protocol import proof as wire
from tagio.protocol import session as m
from tagio.protocol.version import VersionMismatch
from tests.golden import GoldenVectors, load, regenerate_if_asked
from tests.test_client_admission import pair
from tests.waiting import in_thread

LAYER = "unit"

# Ed25519 signatures are deterministic: a key from a fixed seed signs the same bytes every time,
# so the golden vectors hold real proofs another implementation can check.
SEEDED = Identity(ECC.construct(curve="Ed25519", seed=bytes(range(32))))
BINDING = bytes.fromhex("5a" * 32)
SMALL_ORDER_KEY = bytes.fromhex("01" + "00" * 31)     # the identity point: [8]A = identity


def seeded_proof(role):
    return cp.make_proof(SEEDED, role, BINDING)


class GoldenTest(GoldenVectors, unittest.TestCase):
    FORMAT = "proof"
    SAMPLES = {
        "viewer_signed": seeded_proof(wire.ROLE_VIEWER),
        "host_signed": seeded_proof(wire.ROLE_HOST),
        "viewer_zeros": wire.IdentityProof(wire.ROLE_VIEWER, bytes(32), bytes(64)),
    }

    def encode(self, msg):
        return msg.encode()

    def decode(self, data):
        return wire.decode(data)

    def test_the_signed_vectors_prove_the_seeded_id(self):
        vectors = load("proof")
        for name, role in (("viewer_signed", wire.ROLE_VIEWER), ("host_signed", wire.ROLE_HOST)):
            key = cp.check_proof(wire.decode(vectors[name]), role=role, expected_id=SEEDED.id,
                                 channel_binding=BINDING)
            self.assertEqual(key, SEEDED.public_key)
        self.assertEqual(SEEDED.id, "561596312")


class CodecTest(unittest.TestCase):
    def test_layout(self):
        data = seeded_proof(wire.ROLE_HOST).encode()
        self.assertEqual(len(data), wire.SIZE)
        self.assertEqual(data[:7], b"\x00TGIP\x01\x02")
        self.assertTrue(wire.is_proof(data))
        self.assertFalse(wire.is_proof(m.encode(m.Introduce("desk"))))

    def test_garbage_is_the_peers_fault(self):
        good = seeded_proof(wire.ROLE_VIEWER).encode()
        for raw in (b"", b"\x00TGIP", good[:-1], good + b"x", good[:6] + b"\x03" + good[7:],
                    good[:6] + b"\x00" + good[7:], b"\x01" + good[1:], m.encode(m.Bye("x"))):
            with self.subTest(raw=raw[:8]), self.assertRaises(RemoteProtocolError):
                wire.decode(raw)

    def test_another_version_is_refused_in_words(self):
        newer = bytearray(seeded_proof(wire.ROLE_VIEWER).encode())
        newer[5] = 2
        with self.assertRaisesRegex(VersionMismatch, "newer TagIO .*identity proof protocol version 2"):
            wire.decode(bytes(newer) + b"longer in a future version")

    def test_refuses_to_encode_nonsense(self):
        for role, key, sig in ((3, bytes(32), bytes(64)), (1, bytes(31), bytes(64)), (1, bytes(32), b"")):
            with self.assertRaises(LocalProtocolError):
                wire.IdentityProof(role, key, sig).encode()


class ProofTest(unittest.TestCase):
    def setUp(self):
        self.viewer, self.host = Identity.generate(), Identity.generate()

    def check(self, proof, role, expected_id, binding=BINDING):
        return cp.check_proof(proof, role=role, expected_id=expected_id, channel_binding=binding)

    def test_each_side_proves_its_own_id(self):
        self.assertEqual(self.check(cp.make_proof(self.viewer, cp.ROLE_VIEWER, BINDING), cp.ROLE_VIEWER,
                                    self.viewer.id), self.viewer.public_key)
        self.assertEqual(self.check(cp.make_proof(self.host, cp.ROLE_HOST, BINDING), cp.ROLE_HOST,
                                    self.host.id), self.host.public_key)

    def test_a_proof_sent_back_to_its_maker_fails(self):
        # The host's own proof, reflected to it as if it were the viewer's: the role is wrong, and
        # even relabelled as a viewer's the signature is over the host's statement.
        mine = cp.make_proof(self.host, cp.ROLE_HOST, BINDING)
        with self.assertRaisesRegex(cp.IdentityProofError, "sent back"):
            self.check(mine, cp.ROLE_VIEWER, self.host.id)
        relabelled = wire.IdentityProof(cp.ROLE_VIEWER, mine.public_key, mine.signature)
        with self.assertRaisesRegex(cp.IdentityProofError, "does not verify"):
            self.check(relabelled, cp.ROLE_VIEWER, self.host.id)

    def test_a_key_of_another_id_fails(self):
        liar = cp.make_proof(self.viewer, cp.ROLE_VIEWER, BINDING)
        with self.assertRaisesRegex(cp.IdentityProofError, "belongs to ID"):
            self.check(liar, cp.ROLE_VIEWER, self.host.id)

    def test_a_signature_over_a_claimed_id_with_the_wrong_key_fails(self):
        # The liar signs "I am <host's ID>" with its own key: its key does not derive that ID.
        statement = cp.statement(cp.ROLE_VIEWER, self.host.id, BINDING)
        forged = wire.IdentityProof(cp.ROLE_VIEWER, self.viewer.public_key, self.viewer.sign(statement))
        with self.assertRaises(cp.IdentityProofError):
            self.check(forged, cp.ROLE_VIEWER, self.host.id)

    def test_a_proof_from_another_channel_fails(self):
        other = cp.make_proof(self.viewer, cp.ROLE_VIEWER, hashlib.sha256(b"other").digest())
        with self.assertRaisesRegex(cp.IdentityProofError, "does not verify"):
            self.check(other, cp.ROLE_VIEWER, self.viewer.id)

    def test_a_tampered_signature_fails(self):
        good = cp.make_proof(self.viewer, cp.ROLE_VIEWER, BINDING)
        bad = wire.IdentityProof(good.role, good.public_key, bytes([good.signature[0] ^ 1]) + good.signature[1:])
        with self.assertRaises(cp.IdentityProofError):
            self.check(bad, cp.ROLE_VIEWER, self.viewer.id)

    def test_a_small_order_key_proves_nothing(self):
        from tagio.crypto.identity import id_from_public_key
        forged_sig = SMALL_ORDER_KEY + bytes(32)          # R = identity, s = 0: "valid" for any message
        statement = cp.statement(cp.ROLE_VIEWER, id_from_public_key(SMALL_ORDER_KEY), BINDING)
        self.assertTrue(verify_signature(SMALL_ORDER_KEY, statement, forged_sig))   # why the check exists
        proof = wire.IdentityProof(cp.ROLE_VIEWER, SMALL_ORDER_KEY, forged_sig)
        with self.assertRaisesRegex(cp.IdentityProofError, "small-order"):
            self.check(proof, cp.ROLE_VIEWER, id_from_public_key(SMALL_ORDER_KEY))

    def test_the_statement_names_role_and_id(self):
        self.assertEqual(cp.statement(cp.ROLE_HOST, "123456789", b"\x01\x02"),
                         b"TagIO identity proof v1|host|123456789|\x01\x02")


# ---- the exchange, over an in-memory channel pair -------------------------------------------

class Channel:
    """tests.test_client_admission's End with the exporter both ends of one channel share."""

    def __init__(self, end, secret):
        self.end, self.secret = end, secret

    def export(self, label, length=32):
        return hashlib.sha256(self.secret + bytes(label)).digest()[:length]

    def send(self, data):
        self.end.send(data)

    def recv(self):
        return self.end.recv()

    def close(self):
        self.end.close()


def channel_pair():
    a, b = pair()
    secret = hashlib.sha256(str(id(a)).encode()).digest()
    return Channel(a, secret), Channel(b, secret)


class Claiming:
    """A viewer that lies: it claims `claimed_id` but holds another key."""

    def __init__(self, real, claimed_id):
        self.id, self.public_key, self.sign = claimed_id, real.public_key, real.sign


class ExchangeTest(unittest.TestCase):
    def setUp(self):
        self.viewer_end, self.host_end = channel_pair()
        self.viewer, self.host = Identity.generate(), Identity.generate()

    def run_host(self, viewer_id, timeout=5.0):
        """check_viewer in a thread; returns (thread, result dict: "key" or "error")."""
        return in_thread(self, lambda result: result.update(
            key=proving.check_viewer(self.host_end, self.host, viewer_id, timeout)))

    def test_both_sides_proven(self):
        thread, result = self.run_host(self.viewer.id)
        key = proving.prove_to_host(self.viewer_end, self.viewer, self.host.id)
        thread.join(10)
        self.assertEqual(key, self.host.public_key)
        self.assertEqual(result, {"key": self.viewer.public_key})

    def test_a_viewer_lying_about_its_id_is_refused_and_learns_nothing(self):
        thread, result = self.run_host(self.host.id)       # claims an ID it has no key for
        liar = Claiming(self.viewer, self.host.id)
        with self.assertRaises(PartnerRefused) as ctx:
            proving.prove_to_host(self.viewer_end, liar, self.host.id)
        self.assertEqual((ctx.exception.code, str(ctx.exception)), ("identity", proving.NOT_PROVEN))
        thread.join(10)
        self.assertIsInstance(result["error"], cp.IdentityProofError)
        self.assertTrue(self.host_end.end.closed)

    def test_the_host_proving_another_key_is_refused(self):
        dialled, self.host = self.host, Identity.generate()   # someone else answers for the ID
        thread, _result = self.run_host(self.viewer.id)
        with self.assertRaisesRegex(cp.IdentityProofError, "belongs to ID"):
            proving.prove_to_host(self.viewer_end, self.viewer, dialled.id)
        thread.join(10)
        self.assertTrue(self.viewer_end.end.closed)

    def test_an_older_viewer_is_told_to_update(self):
        thread, result = self.run_host(self.viewer.id)
        self.viewer_end.send(m.encode(m.Introduce("old desk")))   # an older TagIO speaks first so
        bye = m.decode(self.viewer_end.recv())
        thread.join(10)
        self.assertIsInstance(bye, m.Bye)      # the older viewer shows it as it is: said from its side
        self.assertEqual(bye.text, "your partner runs a newer TagIO (identity proof protocol version 1, "
                                   "this side speaks 0); update both sides")
        self.assertIsInstance(result["error"], VersionMismatch)
        self.assertIn("older TagIO", str(result["error"]))     # the host's own words for its user

    def test_an_older_host_is_refused_in_words(self):
        self.host_end.send(m.encode(m.Introduce("old host")))
        with self.assertRaisesRegex(VersionMismatch, "older TagIO .*identity proof protocol version 0"):
            proving.prove_to_host(self.viewer_end, self.viewer, self.host.id)

    def test_a_goodbye_instead_of_a_proof_is_the_partner_leaving(self):
        self.host_end.send(m.encode(m.Bye("the partner is shutting down")))
        with self.assertRaisesRegex(ConnectionClosed, "shutting down"):
            proving.prove_to_host(self.viewer_end, self.viewer, self.host.id)

    def test_a_silent_viewer_times_out(self):
        thread, result = self.run_host(self.viewer.id, timeout=0.2)
        thread.join(10)
        self.assertIsInstance(result["error"], TransportTimeout)

    def test_out_of_place_message_is_the_peers_fault(self):
        self.host_end.send(m.encode(m.Ping(1)))
        with self.assertRaises(RemoteProtocolError):
            proving.prove_to_host(self.viewer_end, self.viewer, self.host.id)


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
