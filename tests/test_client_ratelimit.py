"""Tests for tagio.client.ratelimit.AttemptLimiter (pure logic, injected clock)."""

import unittest

from tagio.client.ratelimit import AttemptLimiter


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


if __name__ == "__main__":
    unittest.main()
