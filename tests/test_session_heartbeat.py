"""session/heartbeat.py: when to ping, when the partner is gone (an injected clock, no threads
except the one run() test, which uses a real Event and a fast tick)."""

import threading
import unittest

from tagio.errors import TransportTimeout
from tagio.protocol import session as m
from tagio.session.heartbeat import GONE_AFTER, PING_AFTER, Heartbeat, answer

LAYER = "unit"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class HeartbeatTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.beat = Heartbeat(self.clock)

    def test_quiet_at_first_then_pings_every_ping_after_while_silent(self):
        self.assertIsNone(self.beat.check())
        self.clock.now += PING_AFTER - 0.01
        self.assertIsNone(self.beat.check())
        self.clock.now += 0.02
        first = self.beat.check()
        self.assertIsInstance(first, m.Ping)
        self.assertIsNone(self.beat.check())             # not again at once
        self.clock.now += PING_AFTER
        second = self.beat.check()
        self.assertIsInstance(second, m.Ping)
        self.assertNotEqual(first.nonce, second.nonce)

    def test_hearing_anything_resets_the_silence(self):
        self.clock.now += GONE_AFTER - 1
        self.beat.heard()
        self.clock.now += GONE_AFTER - 1
        self.assertIsInstance(self.beat.check(), m.Ping)  # silent again, but not gone

    def test_partner_silent_for_gone_after_is_gone(self):
        self.clock.now += GONE_AFTER
        with self.assertRaises(TransportTimeout) as ctx:
            self.beat.check()
        self.assertTrue(str(ctx.exception).startswith("connection lost"))   # words.ENDINGS: LOST

    def test_pong_answers_the_same_nonce(self):
        self.assertEqual(answer(m.Ping(41)), m.Pong(41))

    def test_run_sends_pings_and_raises_when_gone(self):
        beat = Heartbeat(ping_after=0.05, gone_after=0.3)
        sent, stopping = [], threading.Event()
        with self.assertRaises(TransportTimeout):
            beat.run(stopping, sent.append, tick=0.01)
        self.assertGreaterEqual(len(sent), 2)
        self.assertTrue(all(isinstance(p, m.Ping) for p in sent))

    def test_run_returns_when_stopped(self):
        stopping = threading.Event()
        stopping.set()
        Heartbeat().run(stopping, self.fail, tick=0.01)


if __name__ == "__main__":
    unittest.main()
