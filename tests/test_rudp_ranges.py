"""RangeSet (SACK bookkeeping of the reliable UDP stream) against a plain-set model."""

import random
import unittest

from tagio.net.rudp_ranges import RangeSet

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class RangeSetTest(unittest.TestCase):
    def test_matches_a_plain_set(self):
        rng = random.Random(21)
        ranges, model, floor = RangeSet(), set(), 0
        for _ in range(3000):
            if rng.random() < 0.1:
                floor += rng.randrange(20)
                ranges.discard_below(floor)
                model = {n for n in model if n >= floor}
                continue
            start = floor + rng.randrange(200)
            end = start + 1 + rng.randrange(6)
            new = ranges.add(start, end)
            self.assertEqual({n for a, b in new for n in range(a, b)}, set(range(start, end)) - model)
            model |= set(range(start, end))
            pieces = list(zip(ranges.starts, ranges.ends))
            self.assertEqual({n for a, b in pieces for n in range(a, b)}, model)
            self.assertTrue(all(b < c for (_a, b), (c, _d) in zip(pieces, pieces[1:])))  # disjoint, sorted
        self.assertEqual(ranges.first(2), tuple(zip(ranges.starts[:2], ranges.ends[:2])))

    def test_add_reports_only_new_pieces(self):
        ranges = RangeSet()
        self.assertEqual(ranges.add(10, 20), [(10, 20)])
        self.assertEqual(ranges.add(15, 25), [(20, 25)])
        self.assertEqual(ranges.add(5, 30), [(5, 10), (25, 30)])
        self.assertEqual(ranges.add(12, 14), [])
        self.assertEqual(ranges.add(40, 41), [(40, 41)])
        self.assertEqual(ranges.first(5), ((5, 30), (40, 41)))
        ranges.discard_below(35)
        self.assertEqual(ranges.first(5), ((40, 41),))


if __name__ == "__main__":
    unittest.main()
