"""Tests for tagio.client.ratelimit.AttemptLimiter (pure logic, injected clock)."""

import unittest

from tagio.client.ratelimit import AttemptLimiter

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class AttemptLimiterTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.limiter = AttemptLimiter(window=60, per_peer=3, total=5, max_peers=4, clock=self.clock)

    def test_per_peer_limit_and_window(self):
        self.assertEqual([self.limiter.allow("a") for _ in range(4)], [True, True, True, False])
        self.assertTrue(self.limiter.allow("b"))          # others are not punished for a
        self.clock.now += 60
        self.assertTrue(self.limiter.allow("a"))          # the window slid past

    def test_total_limit(self):
        results = [self.limiter.allow(p) for p in ("a", "b", "c", "d", "e", "f")]
        self.assertEqual(results, [True] * 5 + [False])
        self.clock.now += 61
        self.assertTrue(self.limiter.allow("f"))

    def test_failure_costs_extra(self):
        self.assertTrue(self.limiter.allow("a"))
        self.limiter.failed("a")
        self.assertTrue(self.limiter.allow("a"))
        self.assertFalse(self.limiter.allow("a"))         # 1 + 1 penalty + 1 = 3 used

    def test_memory_bounded(self):
        for i in range(100):
            self.clock.now += 61                           # keep the total window empty
            self.limiter.allow(f"peer{i}")
        self.assertLessEqual(len(self.limiter._peers), 4)


class ConcurrencyTest(unittest.TestCase):
    def test_threads_asking_at_once_get_exactly_the_per_peer_limit(self):
        # The relay link and the LAN thread ask at the same time; without one lock two threads
        # could both take the last slot (seen in a few % of these rounds before the fix).
        import sys
        import threading
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)         # switch threads as often as possible
        self.addCleanup(sys.setswitchinterval, old)
        overshoots = 0
        for _round in range(200):
            limiter = AttemptLimiter(per_peer=5, total=1000, max_peers=1000)
            allowed, barrier = [], threading.Barrier(8)

            def ask(i):
                barrier.wait()
                for j in range(20):
                    allowed.append(limiter.allow("123456789"))
                    limiter.allow(str(100_000_000 + i * 100 + j))
            threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            overshoots += sum(allowed) != 5
        self.assertEqual(overshoots, 0)


if __name__ == "__main__":
    unittest.main()
