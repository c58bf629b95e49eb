"""Relay logic without sockets: rate limiter, pairing, registry/bindings, the connection state table."""

import json
import os
import tempfile
import unittest
from pathlib import Path

from tagio.crypto.identity import Identity
from tagio.errors import ConfigError, IdentityError, LocalProtocolError, RelayError, RemoteProtocolError, TagioError
from tagio.protocol import relay as m
from tagio.relay import connection
from tagio.relay import events as ev
from tagio.relay.connection import ConnState, State
from tagio.relay.events import Event
from tagio.relay.logic import Limits, RelayLogic, check_ownership, error_code
from tagio.relay.pairing import Pairing
from tagio.relay.randpool import RandomPool
from tagio.relay.ratelimit import RateLimiter
from tagio.relay.registry import BindingStore, Registration, Registry

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class RecordingConn:
    """Stands in for a server connection: records what the logic sends and does."""

    def __init__(self, ip="203.0.113.1", port=40000):
        self.peer_addr = (ip, port)
        self.state = ConnState.NEW
        self.nonce = None
        self.sent, self.closed, self.failed, self.partner = [], None, None, None

    def send(self, message):
        self.sent.append(message)

    def close(self, reason=""):
        self.closed = reason

    def fail(self, exc):
        self.failed = exc

    def start_relay(self, partner):
        self.partner = partner


class Recorder:
    """The I/O layer for RecordingConns: carries out the machine's actions by recording them.

    Signature checks run inline unless a test replaces `offload(fn, done)`.
    """

    def __init__(self, logic):
        self.logic = logic
        self.offload = lambda fn, done: done(fn())

    def handle(self, conn, message):
        """Deliver one message; a TagioError reaches the caller (the server would report it)."""
        self.carry(connection.deliver(self.logic, conn, message))

    def fire(self, conn, event, payload=None):
        try:
            self.carry(connection.fire(self.logic, conn, event, payload))
        except TagioError as exc:
            conn.failed = exc

    def carry(self, actions):
        for action in actions:
            self.CARRY[type(action)](self, action)

    def _verify(self, a):
        self.offload(a.check, lambda problem: self.fire(a.conn, Event.VERIFIED, (a.message, problem)))

    CARRY = {
        ev.Send: lambda self, a: a.conn.send(a.message),
        ev.Linger: lambda self, a: a.conn.close("linger"),
        ev.Fail: lambda self, a: a.conn.fail(a.exc),
        ev.Relay: lambda self, a: a.conn.start_relay(a.partner),
        ev.Fire: lambda self, a: self.fire(a.conn, a.event, a.payload),
        ev.Verify: _verify,
    }


class RateLimiterTest(unittest.TestCase):
    def test_burst_then_refill(self):
        clock = FakeClock()
        rl = RateLimiter(clock, rate=2, burst=3)
        self.assertEqual([rl.allow("a") for _ in range(4)], [True, True, True, False])
        self.assertTrue(rl.allow("b"))  # other addresses unaffected
        clock.now += 0.5
        self.assertTrue(rl.allow("a"))
        self.assertFalse(rl.allow("a"))

    def test_table_is_bounded(self):
        rl = RateLimiter(FakeClock(), rate=1, burst=1, max_keys=100)
        for i in range(1000):
            rl.allow(i)
        self.assertEqual(len(rl), 100)


class RandomPoolTest(unittest.TestCase):
    def test_each_source_byte_is_handed_out_once(self):
        reads = []

        def source(n):
            reads.append(os.urandom(n))
            return reads[-1]
        pool = RandomPool(chunk=100, source=source)
        taken = [pool.take(n) for n in (32, 16, 32, 16, 32, 250, 7)]
        self.assertEqual([len(t) for t in taken], [32, 16, 32, 16, 32, 250, 7])
        self.assertEqual([len(r) for r in reads], [100, 100, 250, 100])  # one read per chunk, not per take
        self.assertEqual(b"".join(taken[:4]), reads[0][:96])
        self.assertEqual(taken[4], reads[1][:32])  # the 4 left-over bytes are skipped, not reused
        self.assertEqual(taken[5], reads[2])
        self.assertEqual(taken[6], reads[3][:7])
        self.assertEqual(len(set(taken)), len(taken))

    def test_logic_draws_nonces_from_its_pool(self):
        logic = RelayLogic(Limits())
        logic.random_bytes = lambda n: b"N" * n
        conn = RecordingConn()
        Recorder(logic).handle(conn, m.Hello())
        self.assertEqual(conn.sent[0].nonce, b"N" * 32)


class PairingTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self.pairing = Pairing(self.clock, token_ttl=60, wait_timeout=30)

    def test_pair_completes_and_token_is_spent(self):
        self.pairing.issue(b"t" * 16)
        self.assertIsNone(self.pairing.bind(b"t" * 16, "a"))
        self.assertEqual(self.pairing.bind(b"t" * 16, "b"), "a")
        with self.assertRaises(RelayError) as ctx:
            self.pairing.bind(b"t" * 16, "c")
        self.assertEqual(ctx.exception.code, "unknown_token")

    def test_unknown_and_expired_tokens(self):
        with self.assertRaises(RelayError):
            self.pairing.bind(b"x" * 16, "a")
        self.pairing.issue(b"t" * 16)
        self.clock.now += 61
        with self.assertRaises(RelayError):
            self.pairing.bind(b"t" * 16, "a")

    def test_unpaired_wait_expires(self):
        self.pairing.issue(b"t" * 16)
        self.pairing.bind(b"t" * 16, "a")
        self.clock.now += 29
        self.assertEqual(self.pairing.expire(), [])
        self.clock.now += 2
        self.assertEqual(self.pairing.expire(), ["a"])
        self.assertEqual(self.pairing.waiting, 0)

    def test_dropped_waiter_frees_token(self):
        self.pairing.issue(b"t" * 16)
        self.pairing.bind(b"t" * 16, "a")
        self.pairing.drop("a")
        self.assertEqual(self.pairing.waiting, 0)

    def test_issued_tokens_bounded(self):
        pairing = Pairing(self.clock, max_tokens=3)
        for i in range(3):
            pairing.issue(bytes([i]) * 16)
        with self.assertRaises(RelayError) as ctx:
            pairing.issue(b"z" * 16)
        self.assertEqual(ctx.exception.code, "busy")


class RegistryTest(unittest.TestCase):
    def test_heartbeat_expiry(self):
        clock = FakeClock()
        reg = Registry(clock, heartbeat_timeout=60)
        reg.add(Registration("123456789", b"k" * 32, "conn-a", ("1.2.3.4", 5)))
        reg.add(Registration("223456789", b"j" * 32, "conn-b", ("1.2.3.5", 5)))
        clock.now += 50
        reg.touch("conn-b")
        clock.now += 20
        expired = reg.expire()
        self.assertEqual([r.client_id for r in expired], ["123456789"])
        self.assertIsNone(reg.get("123456789"))
        self.assertIsNotNone(reg.get("223456789"))

    def test_binding_refuses_other_key(self):
        reg = Registry(FakeClock(), 60)
        reg.add(Registration("123456789", b"k" * 32, "conn-a", ("1.2.3.4", 5)))
        reg.remove("conn-a")  # offline now, but the ID stays bound
        with self.assertRaises(IdentityError):
            reg.add(Registration("123456789", b"X" * 32, "conn-x", ("6.6.6.6", 5)))

    def test_same_key_replaces_and_udp_token(self):
        reg = Registry(FakeClock(), 60)
        first = Registration("123456789", b"k" * 32, "conn-a", ("1.2.3.4", 5))
        reg.add(first)
        second = Registration("123456789", b"k" * 32, "conn-b", ("1.2.3.4", 6))
        self.assertIs(reg.add(second), first)
        self.assertIsNone(reg.for_conn("conn-a"))
        self.assertNotEqual(first.udp_token, second.udp_token)
        self.assertFalse(reg.record_udp(first.udp_token, ("9.9.9.9", 1)))
        self.assertTrue(reg.record_udp(second.udp_token, ("9.9.9.9", 1)))
        self.assertEqual(reg.get("123456789").udp_addr, ("9.9.9.9", 1))


class BindingStoreTest(unittest.TestCase):
    def test_persist_and_reload(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sub" / "state.json"
            store = BindingStore(path)
            store.bind("123456789", b"k" * 32)
            self.assertTrue(store.dirty)
            store.save()
            self.assertFalse(store.dirty)
            self.assertEqual(json.loads(path.read_text())["bindings"], {"123456789": (b"k" * 32).hex()})
            self.assertEqual(os.listdir(path.parent), ["state.json"])  # no temp file left behind
            again = BindingStore(path)
            again.load()
            with self.assertRaises(IdentityError):
                again.check("123456789", b"j" * 32)

    def test_corrupt_file_is_config_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "state.json"
            path.write_text("{not json")
            with self.assertRaisesRegex(ConfigError, "cannot read relay state file"):
                BindingStore(path).load()
            for damaged in ({"bindings": {"123456789": 5}}, {"bindings": {"123456789": "abcd"}}):
                path.write_text(json.dumps(damaged))
                with self.subTest(damaged), self.assertRaisesRegex(ConfigError, "cannot read relay state file"):
                    BindingStore(path).load()

    def test_full_store_refuses_new_ids_only(self):
        store = BindingStore(max_bindings=1)
        store.bind("123456789", b"k" * 32)
        store.bind("123456789", b"k" * 32)
        with self.assertRaises(RelayError) as ctx:
            store.bind("223456789", b"j" * 32)
        self.assertEqual(ctx.exception.code, "relay_full")


def register_message(identity, nonce, secret=None):
    sig = identity.sign(m.registration_message(nonce, identity.id, identity.public_key))
    proof = m.auth_proof(secret, nonce, identity.id) if secret else b""
    return m.Register(identity.id, identity.public_key, sig, proof)


class LogicTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self.logic = RelayLogic(Limits(register_burst=3, connect_burst=2), clock=self.clock,
                                wall_clock=lambda: 1_700_000_000.0)
        self.io = Recorder(self.logic)

    def register(self, identity, ip="203.0.113.1"):
        conn = RecordingConn(ip)
        self.io.handle(conn, m.Hello())
        self.io.handle(conn, register_message(identity, conn.nonce))
        return conn

    def test_register_flow(self):
        ident = Identity.generate()
        conn = self.register(ident)
        self.assertIsInstance(conn.sent[0], m.Challenge)
        self.assertIsInstance(conn.sent[1], m.Registered)
        self.assertEqual(conn.sent[1].observed_addr, conn.peer_addr)
        self.assertEqual(conn.sent[1].server_time_ms, 1_700_000_000_000)
        self.assertEqual(conn.state, ConnState.REGISTERED)

    def test_unexpected_message_for_state(self):
        conn = RecordingConn()
        with self.assertRaisesRegex(RemoteProtocolError, "unexpected ConnectRequest in state new"):
            self.io.handle(conn, m.ConnectRequest("123456789", bytes(16)))
        with self.assertRaisesRegex(RemoteProtocolError, "unexpected Register"):
            self.io.handle(conn, m.Register("1", bytes(32), bytes(64)))

    def test_ownership_checks(self):
        owner, other = Identity.generate(), Identity.generate()
        nonce = os.urandom(32)
        self.assertEqual(check_ownership(nonce, register_message(owner, nonce)), "")
        stolen = register_message(other, nonce)
        stolen.client_id = owner.id
        self.assertIn("does not belong", check_ownership(nonce, stolen))
        forged = register_message(owner, nonce)
        forged.signature = other.sign(m.registration_message(nonce, owner.id, owner.public_key))
        self.assertIn("bad signature", check_ownership(nonce, forged))
        replayed = register_message(owner, os.urandom(32))
        self.assertIn("bad signature", check_ownership(nonce, replayed))

    def test_doomed_registers_are_refused_before_the_signature_check(self):
        owner, other, squatted = Identity.generate(), Identity.generate(), Identity.generate()
        # As if a colliding key had taken squatted.id first (IDs keep only 30 bits of the key's hash).
        self.logic.registry.bindings.bind(squatted.id, owner.public_key)
        checks = []
        self.io.offload = lambda fn, done: checks.append(fn)
        cases = [(squatted, squatted.id, "belongs to a different key"), (other, owner.id, "does not belong")]
        for key_of, claimed, reason in cases:
            conn = RecordingConn("203.0.113.9")
            self.io.handle(conn, m.Hello())
            msg = register_message(key_of, conn.nonce)
            msg.client_id = claimed
            with self.assertRaisesRegex(IdentityError, reason):
                self.io.handle(conn, msg)
        self.assertEqual(checks, [])  # no signature check was even queued
        conn = RecordingConn("203.0.113.9")
        self.io.handle(conn, m.Hello())
        self.io.handle(conn, register_message(other, conn.nonce))
        self.assertEqual(len(checks), 1)  # a plausible Register still gets its check

    def test_failed_ownership_fails_connection(self):
        owner = Identity.generate()
        conn = RecordingConn()
        self.io.handle(conn, m.Hello())
        msg = register_message(owner, os.urandom(32))  # signed over the wrong nonce
        self.io.handle(conn, msg)
        self.assertIsInstance(conn.failed, IdentityError)
        self.assertEqual(error_code(conn.failed), "identity")
        self.assertIsNone(self.logic.registry.get(owner.id))

    def test_registration_rate_limit(self):
        for _ in range(3):
            self.register(Identity.generate())
        with self.assertRaises(RelayError) as ctx:
            self.register(Identity.generate())
        self.assertEqual(ctx.exception.code, "rate_limited")
        self.register(Identity.generate(), ip="198.51.100.9")  # another address is fine

    def test_auth_secret(self):
        logic = RelayLogic(auth_secret="s3cret", clock=self.clock)
        io = Recorder(logic)
        ident = Identity.generate()
        conn = RecordingConn()
        io.handle(conn, m.Hello())
        self.assertEqual(conn.sent[0].auth_required, 1)
        with self.assertRaises(RelayError) as ctx:
            io.handle(conn, register_message(ident, conn.nonce, secret="wrong"))
        self.assertEqual(ctx.exception.code, "auth_failed")
        self.assertNotIn(ident.id, ctx.exception.text)  # no information about IDs
        good = RecordingConn()
        io.handle(good, m.Hello())
        io.handle(good, register_message(ident, good.nonce, secret="s3cret"))
        self.assertEqual(good.state, ConnState.REGISTERED)

    def test_rendezvous_and_pairing(self):
        viewer_id, host_id = Identity.generate(), Identity.generate()
        viewer, host = self.register(viewer_id), self.register(host_id, ip="198.51.100.2")
        sid = os.urandom(16)
        self.io.handle(viewer, m.ConnectRequest(host_id.id, sid))
        v_info, h_info = viewer.sent[-1], host.sent[-1]
        self.assertEqual((v_info.role, h_info.role), ("viewer", "host"))
        self.assertEqual(v_info.peer_public_addr, host.peer_addr)
        self.assertEqual(v_info.relay_token, h_info.relay_token)
        a, b = RecordingConn(), RecordingConn()
        self.io.handle(a, m.RelayBind(v_info.relay_token))
        self.assertEqual(a.state, ConnState.BINDING)
        self.io.handle(b, m.RelayBind(v_info.relay_token))
        self.assertIs(b.partner, a)
        self.assertEqual((a.state, b.state), (ConnState.RELAYING, ConnState.RELAYING))

    def test_connect_errors_keep_connection(self):
        viewer = self.register(Identity.generate())
        sid = os.urandom(16)
        self.io.handle(viewer, m.ConnectRequest("111111111", sid))
        self.assertEqual((viewer.sent[-1].code, viewer.sent[-1].ref), ("unknown_id", sid))
        self.io.handle(viewer, m.ConnectRequest("111111111", sid))
        self.io.handle(viewer, m.ConnectRequest("111111111", sid))
        self.assertEqual(viewer.sent[-1].code, "rate_limited")
        self.assertIsNone(viewer.failed)

    def test_busy_pairing_answers_the_request_and_keeps_the_registration(self):
        viewer, host = self.register(Identity.generate()), self.register(Identity.generate(), ip="198.51.100.2")
        self.logic.pairing.max_tokens = 0  # as if 100 000 rendezvous were pending
        sid = os.urandom(16)
        self.io.handle(viewer, m.ConnectRequest(self.logic.registry.for_conn(host).client_id, sid))
        self.assertEqual((viewer.sent[-1].code, viewer.sent[-1].ref), ("busy", sid))
        self.assertIsNone(viewer.failed)
        self.assertEqual(viewer.state, ConnState.REGISTERED)
        self.assertNotIsInstance(host.sent[-1], m.PeerInfoMsg)  # the host heard nothing

    def test_tick_expires_silent_clients(self):
        conn = self.register(Identity.generate())
        self.clock.now += 59
        self.io.carry(self.logic.tick())
        self.assertIsNone(conn.failed)
        self.clock.now += 2
        self.io.carry(self.logic.tick())
        self.assertEqual(conn.failed.code, "timeout")
        self.assertEqual(len(self.logic.registry), 0)

    def test_udp_discover(self):
        conn = self.register(Identity.generate())
        token = conn.sent[1].udp_token
        reply = self.logic.on_udp(m.UdpDiscover(token, b"x" * 16), ("203.0.113.1", 5555))
        self.assertEqual((reply.observed_addr, reply.recorded), (("203.0.113.1", 5555), 1))
        reply = self.logic.on_udp(m.UdpDiscover(b"", b"y" * 16), ("203.0.113.2", 6))
        self.assertEqual(reply.recorded, 0)
        with self.assertRaises(RemoteProtocolError):
            self.logic.on_udp(m.Heartbeat(), ("1.1.1.1", 1))

    def test_udp_answer_never_outweighs_an_accepted_query(self):
        with self.assertRaisesRegex(RemoteProtocolError, "padded"):
            self.logic.on_udp(m.UdpDiscover(b"", b"z" * 16, padding=b""), ("203.0.113.3", 7))
        smallest = m.UdpDiscover(b"", b"z" * 16, padding=bytes(m.UDP_PADDING))
        reply = self.logic.on_udp(smallest, ("2001:db8::ffff:1", 65535))
        self.assertLessEqual(len(reply.encode()), len(smallest.encode()))


class ConnectionTableTest(unittest.TestCase):
    """The one transition table of a relay connection (tagio.relay.connection)."""

    def setUp(self):
        self.logic = RelayLogic(Limits(), clock=FakeClock())
        self.io = Recorder(self.logic)

    def test_a_missing_internal_pair_is_our_bug(self):
        conn = RecordingConn()
        with self.assertRaisesRegex(LocalProtocolError, "no transition for PAIRED in state new"):
            connection.fire(self.logic, conn, Event.PAIRED)
        self.assertIs(conn.state, State.NEW)

    def test_a_handler_that_raises_leaves_the_state(self):
        conn = RecordingConn()
        conn.state = State.VERIFYING
        with self.assertRaises(IdentityError):
            connection.fire(self.logic, conn, Event.VERIFIED, (None, "bad signature"))
        self.assertIs(conn.state, State.VERIFYING)

    def test_every_state_is_reached_and_every_handler_returns_a_list(self):
        targets = {next_state for _handler, next_state in connection.TRANSITIONS.values()}
        self.assertEqual(targets | {State.SNIFF}, set(State))
        conn = RecordingConn()
        conn.state = State.LINGER
        self.assertEqual(connection.fire(self.logic, conn, Event.FAIL, RelayError("x", "late")), [])

    def test_a_replaced_registration_lingers_with_its_reason(self):
        ident = Identity.generate()
        first, second = RecordingConn(), RecordingConn()
        for conn in (first, second):
            self.io.handle(conn, m.Hello())
            self.io.handle(conn, register_message(ident, conn.nonce))
        self.assertIs(first.state, State.LINGER)
        self.assertEqual((first.sent[-1].code, first.closed), ("replaced", "linger"))
        self.assertIs(self.logic.registry.for_conn(second).conn, second)

    def test_bye_and_a_late_signature_check(self):
        conn = RecordingConn()
        checks = []
        self.io.offload = lambda fn, done: checks.append(done)
        self.io.handle(conn, m.Hello())
        self.io.handle(conn, register_message(Identity.generate(), conn.nonce))
        self.io.handle(conn, m.Bye("going"))
        checks[0]("")  # the check ends after the client left: nothing happens
        self.assertEqual((conn.state, conn.failed), (State.LINGER, None))
        self.assertEqual(len(self.logic.registry), 0)


class SniffTest(unittest.TestCase):
    def test_classify_first_bytes(self):
        from tagio.relay.conn import classify, is_tls_client_hello
        self.assertIsNone(classify(b"TG"))
        self.assertIsNone(classify(b"GE"))
        self.assertIs(classify(b"TGIO\x01"), Event.FRAMES)
        self.assertIs(classify(b"GET /health HTTP/1.1"), Event.HTTP)
        self.assertIs(classify(b"HEAD / HTTP/1.0"), Event.HTTP)
        with self.assertRaisesRegex(RemoteProtocolError, "bad magic"):
            classify(b"SSH-2.0-OpenSSH")
        with self.assertRaises(RemoteProtocolError):
            classify(b"\x00")
        self.assertTrue(is_tls_client_hello(b"\x16\x03\x01\x02\x00"))
        self.assertFalse(is_tls_client_hello(b"\x16\x04"))
        self.assertFalse(is_tls_client_hello(b"TGIO"))


class HttpTest(unittest.TestCase):
    def test_reader_and_responses(self):
        from tagio.relay.http import HttpRequestReader, http_response
        reader = HttpRequestReader()
        self.assertIsNone(reader.feed(b"GET /metrics HT"))
        request = reader.feed(b"TP/1.1\r\nHost: x\r\n\r\nextra")
        self.assertEqual((request.method, request.path, request.headers, request.rest),
                         ("GET", "/metrics", {"host": "x"}, b"extra"))
        self.assertFalse(request.wants_websocket())
        with self.assertRaisesRegex(RemoteProtocolError, "malformed"):
            HttpRequestReader().feed(b"GET\r\n\r\n")
        status = {"version": "1", "online_clients": 3, "registrations_total": 9}
        body = http_response("GET", "/metrics", status).split(b"\r\n\r\n", 1)[1].decode()
        self.assertIn("tagio_relay_online_clients 3", body)
        self.assertIn("# TYPE tagio_relay_registrations_total counter", body)
        health = http_response("GET", "/healthz?x=1", status)
        self.assertIn(b'"online_clients": 3', health)
        self.assertTrue(http_response("HEAD", "/health", status).endswith(b"\r\n\r\n"))
        page = http_response("GET", "/<script>", {"public_address": "<b>relay</b>:443"})
        self.assertIn(b"TagIO relay", page)
        self.assertNotIn(b"<b>relay</b>", page)  # escaped


if __name__ == "__main__":
    unittest.main()
