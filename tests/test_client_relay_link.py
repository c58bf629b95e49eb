"""Tests for tagio.client.relay_link: state machine, backoff, reconnect, incoming pump.

The RelayClient here is a recording fake (this tests the link's own logic); the real relay is used
in test_client_core.py.
"""

import queue
import threading
import unittest

from tagio.client import relay_link
from tagio.client.relay_link import TRANSITIONS, LinkState, RelayLink, next_backoff
from tagio.errors import RelayError
from tests.waiting import wait_until

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class FakeRelay:
    """Fails the first `fail` connects, then registers; `online` can be dropped by the test."""

    def __init__(self, plan, address, identity, **kwargs):
        self.plan, self.kwargs = plan, kwargs
        self.online = False
        self.incoming = queue.Queue(maxsize=4)
        self.closed = False
        self.last_error = None
        plan.made.append(self)

    def connect(self):
        if self.plan.failures:
            raise self.plan.failures.pop(0)
        self.online = True
        return "registered"

    def close(self):
        self.closed = True
        self.online = False


class Plan:
    def __init__(self, failures=()):
        self.failures = list(failures)
        self.made = []

    def factory(self, address, identity, **kwargs):
        return FakeRelay(self, address, identity, **kwargs)


class RelayLinkTest(unittest.TestCase):
    def make(self, plan, **kwargs):
        self.statuses, self.peers = [], []
        link = RelayLink(("relay.test", 1), object(), factory=plan.factory, backoff=lambda d: 0.01,
                         candidates=lambda: [("127.0.0.1", 5)], on_peer=self.peers.append,
                         on_status=self.statuses.append, **kwargs)
        self.addCleanup(link.close)
        link.start()
        return link

    def test_table_is_total_for_close(self):
        for state in LinkState:
            self.assertEqual(TRANSITIONS[(state, "close")], LinkState.CLOSED)

    def test_backoff_doubles_to_cap(self):
        delays, d = [], None
        for _ in range(8):
            d = next_backoff(d, rng=lambda: 0.0)
            delays.append(d)
        self.assertEqual(delays[:4], [1.0, 2.0, 4.0, 8.0])
        self.assertEqual(delays[-1], relay_link.BACKOFF_MAX)
        self.assertLessEqual(next_backoff(None, rng=lambda: 1.0), 1.25)

    def test_retries_until_registered(self):
        plan = Plan([ConnectionRefusedError(111, "refused"), RelayError("bad_auth", "wrong secret")])
        link = self.make(plan)
        self._wait(lambda: link.online)
        self.assertIs(link.wait_online(1), plan.made[-1])
        self.assertEqual(len(plan.made), 3)
        self.assertTrue(plan.made[0].closed and plan.made[1].closed)
        self.assertEqual(plan.made[0].kwargs["local_candidates"], [("127.0.0.1", 5)])
        self.assertIn("unreachable: connection refused", self.statuses)
        self.assertIn("unreachable: relay refused: wrong secret", self.statuses)
        self.assertEqual(link.status, "online")

    def test_first_failure_is_reported(self):
        plan = Plan([ConnectionRefusedError(111, "refused")] * 1000)
        link = self.make(plan)
        with self.assertRaises(RelayError) as ctx:
            link.wait_online(5)
        self.assertEqual(ctx.exception.code, "unreachable")
        self.assertIn("relay.test:1", str(ctx.exception))
        self.assertIn("connection refused", str(ctx.exception))

    def test_pumps_incoming_and_reconnects_after_loss(self):
        plan = Plan()
        link = self.make(plan)
        first = link.wait_online(5)
        first.incoming.put("peer-info")
        self._wait(lambda: self.peers == ["peer-info"])
        first.online = False                      # the relay went away
        self._wait(lambda: len(plan.made) == 2 and link.online)
        self.assertTrue(first.closed)
        self.assertIn("connecting", self.statuses)
        self.assertIs(link.relay, plan.made[1])

    def test_close_stops_and_reraises_thread_error(self):
        def boom(peer):
            raise ValueError("bug in on_peer")
        plan = Plan()
        link = RelayLink(("relay.test", 1), object(), factory=plan.factory, on_peer=boom,
                         backoff=lambda d: 0.01)
        link.start()
        link.wait_online(5).incoming.put("x")
        self._wait(lambda: not link._thread.is_alive())
        with self.assertRaises(ValueError):
            link.close()
        self.assertTrue(plan.made[0].closed)

    def _wait(self, predicate, timeout=5):
        done = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if predicate():
                return
            done.wait(0.01)
        self.fail("condition not reached")


if __name__ == "__main__":
    unittest.main()


class ComebackTest(unittest.TestCase):
    """While backing off, a probe that answers ends the wait; retry_now() too; the countdown."""

    def make(self, plan, probe, backoff=30.0):
        self.statuses = []
        link = RelayLink(("relay.test", 1), object(), factory=plan.factory, backoff=lambda d: backoff,
                         on_peer=lambda peer: None, on_status=self.statuses.append, probe=probe,
                         rng=lambda: 0.0)
        self.addCleanup(link.close)
        link.start()
        return link

    def test_probe_answering_ends_a_long_backoff(self):
        answers = [False, False, True]
        probes = []

        def probe(address):
            probes.append(address)
            return answers.pop(0) if answers else True
        plan = Plan(failures=[RelayError("unreachable", "down")])
        link = self.make(plan, probe=probe)
        wait_until(lambda: link.online, 10, "registered after the probe answered")
        self.assertEqual(len(plan.made), 2)            # one failure, then registered after 3 probes
        self.assertEqual(probes, [("relay.test", 1)] * 3)

    def test_countdown_and_retry_now(self):
        plan = Plan(failures=[RelayError("unreachable", "down")])
        link = self.make(plan, probe=lambda address: False)
        wait_until(lambda: link.next_retry_in() is not None, 5, "the countdown")
        self.assertGreater(link.next_retry_in(), 20.0)  # the 30 s backoff, counting down
        self.assertFalse(link.online)
        link.retry_now()
        wait_until(lambda: link.online, 5, "registered after Retry now")
        self.assertIsNone(link.next_retry_in())



class RefusedSecretTest(unittest.TestCase):
    """auth_failed: no retry on a timer (each would be one more guess at the relay secret), the
    words people read, and Retry now tries exactly once more."""

    def test_waits_for_the_person_after_auth_failed(self):
        statuses = []
        plan = Plan(failures=[RelayError("auth_failed", "wrong")] * 3)
        link = RelayLink(("relay.test", 1), object(), factory=plan.factory, backoff=lambda d: 0.0,
                         on_peer=lambda peer: None, on_status=statuses.append, probe=lambda a: True)
        self.addCleanup(link.close)
        link.start()
        wait_until(lambda: link.waiting_for_user, 5, "the link to wait for the person")
        self.assertEqual(len(plan.made), 1)
        self.assertIsNone(link.next_retry_in())            # no countdown: nothing will happen by itself
        self.assertEqual(link.status, "unreachable: The relay refused this desk: its relay secret is "
                                      "missing or wrong.")
        self.assertIn(relay_link.REFUSED, link.status)     # the command line's host ends on it
        with self.assertRaises(RelayError) as raised:          # the refusal, not "unreachable"
            link.wait_online(1)
        self.assertEqual(raised.exception.code, "auth_failed")
        link.retry_now()
        wait_until(lambda: len(plan.made) == 2 and link.waiting_for_user, 5, "one more try")
        self.assertEqual(len(plan.made), 2)
