"""The relay's ID lookup (asked before the password): online / offline / unknown and nothing
more, rate limited like connect requests; a pure handler on recording connections."""

import unittest

from tagio.crypto.identity import Identity
from tagio.protocol import relay as m
from tagio.relay.logic import Limits, RelayLogic
from tests.test_relay_logic import FakeClock, Recorder, RecordingConn, register_message

LAYER = "unit"
REF = bytes(range(16))


class LookupTest(unittest.TestCase):
    def setUp(self):
        self.logic = RelayLogic(Limits(connect_burst=3), clock=FakeClock(),
                                wall_clock=lambda: 1_700_000_000.0)
        self.relay = Recorder(self.logic)       # the connection state machine, recorded

    def register(self, identity, ip="203.0.113.1"):
        conn = RecordingConn(ip)
        self.relay.handle(conn, m.Hello())
        self.relay.handle(conn, register_message(identity, conn.nonce))
        return conn

    def lookup(self, conn, target):
        self.relay.handle(conn, m.Lookup(target, REF))
        return conn.sent[-1]

    def test_online_offline_unknown(self):
        asker = self.register(Identity.generate())
        host = Identity.generate()
        host_conn = self.register(host, ip="198.51.100.9")
        self.assertEqual(self.lookup(asker, host.id), m.LookupResult(REF, "online"))
        self.logic.connection_lost(host_conn)
        self.assertEqual(self.lookup(asker, host.id), m.LookupResult(REF, "offline"))
        self.assertEqual(self.lookup(asker, "123456789"), m.LookupResult(REF, "unknown"))
        self.assertEqual(host_conn.sent[2:], [])          # the host learns nothing of it

    def test_rate_limited_like_connect_requests(self):
        asker = self.register(Identity.generate())
        answers = [self.lookup(asker, "123456789") for _ in range(4)]
        self.assertEqual([type(a) for a in answers[:3]], [m.LookupResult] * 3)
        self.assertEqual((answers[3].code, answers[3].ref), ("rate_limited", REF))

    def test_only_after_registering(self):
        from tagio.errors import RemoteProtocolError
        conn = RecordingConn()
        with self.assertRaises(RemoteProtocolError):
            self.relay.handle(conn, m.Lookup("123456789", REF))

    def test_unknown_state_from_a_relay_is_the_relays_fault(self):
        from tagio.errors import RemoteProtocolError
        with self.assertRaises(RemoteProtocolError):
            m.LookupResult.decode_payload(REF + b"\x00\x06maybe!")

if __name__ == "__main__":
    unittest.main()
