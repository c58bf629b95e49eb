"""Issue 10 item 8, the pure parts: which candidates are used, and the budgets of one race.

tagio.protocol.candidates (the rule), tagio.net.candidates.screened (a PeerInfo through it),
net.connect._dial_targets and the Puncher's budgets (with an injected clock), and the relay's
rendezvous (RelayLogic with recording connections). tests/test_steering.py checks the same through
real processes.
"""

import os
import unittest

from tagio.crypto.identity import Identity
from tagio.net import connect, punch
from tagio.net.candidates import path_keys, screened
from tagio.net.connect import lan_viewer_peer
from tagio.net.peer import PeerInfo
from tagio.net.punch import Puncher, punch_targets
from tagio.protocol import candidates as rule
from tagio.protocol import relay as m
from tagio.protocol import rudp as codec
from tagio.relay.logic import Limits, RelayLogic
from tests.test_relay_logic import FakeClock, RecordingConn, Recorder, register_message

LAYER = "unit"

VIEWER_IP, HOST_IP = "8.8.8.8", "9.9.9.9"          # two public addresses (nothing is sent here)
VICTIMS = [("1.1.1.1", 53), ("127.0.0.2", 7), ("10.0.0.5", 22), ("224.0.0.251", 5353),
           ("255.255.255.255", 9), ("0.0.0.0", 80), (VIEWER_IP, 0)]


class RuleTest(unittest.TestCase):
    def test_kinds(self):
        cases = {
            "0.0.0.0": rule.UNUSABLE, "0.1.2.3": rule.UNUSABLE, "224.0.0.1": rule.UNUSABLE,
            "255.255.255.255": rule.UNUSABLE, "240.0.0.1": rule.UNUSABLE, "::": rule.UNUSABLE,
            "ff02::1": rule.UNUSABLE, "not an address": rule.UNUSABLE,
            "127.0.0.2": rule.LOOPBACK, "::1": rule.LOOPBACK, "::ffff:127.0.0.1": rule.LOOPBACK,
            "10.0.0.1": rule.SITE, "192.168.1.5": rule.SITE, "169.254.1.1": rule.SITE,
            "100.64.0.1": rule.SITE, "198.18.1.2": rule.SITE, "fe80::1": rule.SITE, "fd00::2": rule.SITE,
            "8.8.8.8": rule.PUBLIC, "2001:4860::8888": rule.PUBLIC, "::ffff:8.8.8.8": rule.PUBLIC,
        }
        for text, kind in cases.items():
            with self.subTest(text=text):
                self.assertEqual(rule.kind_of(rule.parse_ip(text)), kind)

    def test_only_what_the_partner_could_own(self):
        own = [(VIEWER_IP, 5000), (VIEWER_IP, 5001)]
        self.assertEqual(rule.plausible(VICTIMS + own, [VIEWER_IP]), own)
        # Behind one NAT with us, its private addresses are worth a try; still no one else's.
        self.assertEqual(rule.plausible(VICTIMS + own, [VIEWER_IP], same_site=True),
                         [("10.0.0.5", 22)] + own)

    def test_loopback_only_where_the_partner_was_observed(self):
        listed = [("127.0.0.2", 7), ("127.0.0.1", 4000)]
        self.assertEqual(rule.plausible(listed, ["127.0.0.1"], same_site=True), [("127.0.0.1", 4000)])
        self.assertEqual(rule.plausible(listed, ["10.0.0.1"], same_site=True), [])

    def test_at_most_max_candidates_in_order_each_once(self):
        listed = [("10.0.0.%d" % (i // 2), 4000) for i in range(20)]
        kept = rule.plausible(listed, [VIEWER_IP], same_site=True)
        self.assertEqual(kept, [("10.0.0.%d" % i, 4000) for i in range(rule.MAX_CANDIDATES)])

    def test_ipv4_mapped_addresses_count_as_ipv4(self):
        self.assertEqual(rule.plausible([("::ffff:8.8.8.8", 5)], ["8.8.8.8"]), [("8.8.8.8", 5)])
        self.assertEqual(rule.plausible([("8.8.8.8", 5)], ["::ffff:8.8.8.8"]), [("8.8.8.8", 5)])
        self.assertTrue(rule.same_site("::ffff:1.2.3.4", "1.2.3.4"))
        self.assertFalse(rule.same_site(None, "1.2.3.4"))
        self.assertFalse(rule.same_site("0.0.0.0", "0.0.0.0"))

    def test_one_ipv6_link_is_one_site(self):
        self.assertTrue(rule.same_site("2001:db8:1:2::10", "2001:db8:1:2:abcd::5"))
        self.assertFalse(rule.same_site("2001:db8:1:2::10", "2001:db8:1:3::10"))
        self.assertFalse(rule.same_site("2001:db8:1:2::10", "8.8.8.8"))

    def test_ipv6(self):
        listed = [("2001:db8::1", 4000), ("2001:4860::1", 4000), ("fd00::5", 4000), ("ff02::1", 4000)]
        self.assertEqual(rule.plausible(listed, ["2001:4860::1"]), [("2001:4860::1", 4000)])
        self.assertEqual(rule.plausible(listed, ["2001:4860::1"], same_site=True),
                         [("2001:db8::1", 4000), ("2001:4860::1", 4000), ("fd00::5", 4000)])


def steering_peer(own_ip=HOST_IP, candidates=None, role="host"):
    """The PeerInfo a host gets for a viewer that listed victims (and two addresses of its own)."""
    listed = VICTIMS + [(VIEWER_IP, 5000), ("192.168.1.20", 5000)] if candidates is None else candidates
    return PeerInfo(os.urandom(16), role, "123456789", peer_public_addr=(VIEWER_IP, 40000),
                    peer_udp_addr=(VIEWER_IP, 41000), peer_local_candidates=listed,
                    relay_token=os.urandom(16))


class ScreenedTest(unittest.TestCase):
    def test_a_steering_viewer_keeps_only_its_own_address(self):
        peer = screened(steering_peer(), HOST_IP)
        self.assertEqual(peer.peer_local_candidates, [(VIEWER_IP, 5000)])
        self.assertEqual((peer.peer_public_addr, peer.peer_udp_addr), ((VIEWER_IP, 40000), (VIEWER_IP, 41000)))

    def test_behind_our_own_nat_its_private_addresses_stay(self):
        peer = screened(steering_peer(), own_ip=VIEWER_IP)
        self.assertEqual(peer.peer_local_candidates, [("10.0.0.5", 22), (VIEWER_IP, 5000), ("192.168.1.20", 5000)])

    def test_without_our_own_address_private_ones_go(self):
        self.assertEqual(screened(steering_peer(), None).peer_local_candidates, [(VIEWER_IP, 5000)])

    def test_a_partner_found_on_the_lan_is_kept(self):
        peer = lan_viewer_peer("987654321", ("192.168.1.20", 5000), "123456789", os.urandom(16))
        self.assertEqual(screened(peer).peer_local_candidates, [("192.168.1.20", 5000)])

    def test_unusable_observed_addresses_are_dropped_and_port_zero_public_kept(self):
        peer = PeerInfo(os.urandom(16), "host", "123456789", peer_public_addr=("::ffff:8.8.8.8", 0),
                        peer_udp_addr=("224.0.0.1", 5), peer_local_candidates=[("8.8.8.8", 7)])
        peer = screened(peer)
        self.assertEqual((peer.peer_public_addr, peer.peer_udp_addr), (("8.8.8.8", 0), None))
        self.assertEqual(peer.peer_local_candidates, [("8.8.8.8", 7)])
        none = screened(PeerInfo(os.urandom(16), "host", "1", peer_public_addr=("0.0.0.0", 1)))
        self.assertIsNone(none.peer_public_addr)


class DialTargetsTest(unittest.TestCase):
    def test_each_target_once_and_at_most_max_dial_targets(self):
        listed = [("10.0.0.%d" % i, 4000 + i) for i in range(4)]
        peer = screened(steering_peer(VIEWER_IP, listed), VIEWER_IP)
        targets = connect._dial_targets(peer)
        self.assertEqual(targets, listed + [(VIEWER_IP, 4000), (VIEWER_IP, 4001)])
        self.assertLessEqual(len(targets), connect.MAX_DIAL_TARGETS)
        self.assertEqual(len(set(targets)), len(targets))


class PunchBudgetTest(unittest.TestCase):
    def setUp(self):
        token, sid = os.urandom(16), os.urandom(16)
        self.mine, self.theirs = path_keys(token, sid, "host"), path_keys(token, sid, "viewer")

    def run_rounds(self, puncher, seconds, step=0.005):
        """Every datagram a Puncher would send in `seconds` of a silent race: {address: count}."""
        sent, now = {}, 0.0
        while now < seconds and not puncher.spent(now):
            for _datagram, addr in puncher.due(now):
                sent[addr] = sent.get(addr, 0) + 1
            now += step
        return sent, now

    def test_each_target_gets_its_punches_then_punching_gives_up(self):
        many = [("10.0.0.%d" % i, 5000) for i in range(16)]
        targets = punch_targets(screened(steering_peer(VIEWER_IP, many), VIEWER_IP))
        self.assertLessEqual(len(targets), punch.MAX_TARGETS)
        puncher = Puncher(self.mine, targets, now=0.0)
        sent, gave_up_at = self.run_rounds(puncher, 15.0)
        self.assertEqual(set(sent.values()), {punch.PUNCHES_PER_TARGET})
        self.assertLess(gave_up_at, 6.0)                     # not the race's 15 s
        self.assertLessEqual(sum(sent.values()), punch.MAX_DATAGRAMS)

    def test_the_peer_heard_keeps_it_listening(self):
        puncher = Puncher(self.mine, [("8.8.8.8", 5000)], now=0.0)
        _sent, quiet_from = self.run_rounds(puncher, 15.0)
        quiet_from -= punch.QUIET
        self.assertFalse(puncher.spent(quiet_from + punch.QUIET - 0.1))
        datagram = codec.encode(codec.Punch(b"n" * 8), self.theirs.conn_id, self.theirs.send_key)
        puncher.datagram_received(datagram, ("8.8.8.8", 5000), quiet_from + punch.QUIET - 0.1)
        self.assertFalse(puncher.spent(quiet_from + punch.QUIET + 1))
        self.assertTrue(puncher.spent(quiet_from + 2 * punch.QUIET))

    def test_answers_and_learned_targets_are_bounded(self):
        """A viewer (it holds the keys) that spoofs punches from many sources: answers one for one,
        ACKS_PER_TARGET per address and MAX_ACKS in all; LEARNED_TARGETS new targets at most."""
        puncher = Puncher(self.mine, [("8.8.8.8", 5000)], now=0.0)
        answers = {}
        for i in range(200):
            source = ("1.1.%d.%d" % (i % 4, i % 3), 53)
            datagram = codec.encode(codec.Punch(os.urandom(8)), self.theirs.conn_id, self.theirs.send_key)
            for _reply, addr in puncher.datagram_received(datagram, source, 0.0):
                answers[addr] = answers.get(addr, 0) + 1
        self.assertLessEqual(max(answers.values()), punch.ACKS_PER_TARGET)
        self.assertEqual(sum(answers.values()), punch.MAX_ACKS)
        self.assertEqual(len(puncher.targets), 1 + punch.LEARNED_TARGETS)


class RelayRendezvousTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        limits = Limits(connect_burst=100, connect_target_burst=100, connect_id_burst=3, connect_id_rate=0.5)
        self.logic = RelayLogic(limits, clock=self.clock, wall_clock=lambda: 1_700_000_000.0)
        self.io = Recorder(self.logic)

    def register(self, ip, candidates=()):
        identity, conn = Identity.generate(), RecordingConn(ip)
        self.io.handle(conn, m.Hello())
        message = register_message(identity, conn.nonce)
        message.local_candidates = list(candidates)
        self.io.handle(conn, message)
        return conn, identity.id

    def rendezvous(self, viewer_ip, host_ip, listed):
        viewer, _ = self.register(viewer_ip, listed)
        host, host_id = self.register(host_ip, [("192.168.7.7", 6000)])
        self.io.handle(viewer, m.ConnectRequest(host_id, os.urandom(16)))
        return viewer.sent[-1], host.sent[-1]

    def test_the_host_hears_only_candidates_the_viewer_could_own(self):
        listed = VICTIMS + [(VIEWER_IP, 5000), ("192.168.1.20", 5000)]
        to_viewer, to_host = self.rendezvous(VIEWER_IP, HOST_IP, listed)
        self.assertEqual(to_host.peer_local_candidates, [(VIEWER_IP, 5000)])
        self.assertEqual(to_viewer.peer_local_candidates, [])      # the host's private one: another site

    def test_one_site_keeps_private_candidates(self):
        listed = VICTIMS + [(VIEWER_IP, 5000), ("192.168.1.20", 5000)]
        to_viewer, to_host = self.rendezvous(VIEWER_IP, VIEWER_IP, listed)
        self.assertEqual(to_host.peer_local_candidates, [("10.0.0.5", 22), (VIEWER_IP, 5000), ("192.168.1.20", 5000)])
        self.assertEqual(to_viewer.peer_local_candidates, [("192.168.7.7", 6000)])

    def test_rendezvous_are_limited_per_requesting_id(self):
        viewer, _ = self.register("203.0.113.1")
        hosts = [self.register("198.51.100.%d" % i)[1] for i in range(5)]
        codes = []
        for host_id in hosts[:4]:          # four different targets: only the requester's ID limits
            self.io.handle(viewer, m.ConnectRequest(host_id, os.urandom(16)))
            answer = viewer.sent[-1]
            codes.append(answer.code if isinstance(answer, m.Error) else "ok")
        self.assertEqual(codes, ["ok", "ok", "ok", "rate_limited"])
        self.assertIn("your ID", viewer.sent[-1].text)
        self.clock.now += 2.0              # 0.5 a second
        self.io.handle(viewer, m.ConnectRequest(hosts[4], os.urandom(16)))
        self.assertIsInstance(viewer.sent[-1], m.PeerInfoMsg)
        self.assertIsNone(viewer.failed)


if __name__ == "__main__":
    unittest.main()
