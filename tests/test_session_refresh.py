"""tagio/session/refresh.py: the lossless top-off of still tiles and its byte budget from the
measured rate, on an injected clock (no sockets)."""

import unittest

from tagio.session import refresh as r
from tagio.session.refresh import StillRefresh

LAYER = "unit"

MBIT = 1e6 / 8              # bytes/s in one Mbit/s


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def grid(cols, rows):
    return {(c, y) for y in range(rows) for c in range(cols)}


class StillTilesTest(unittest.TestCase):
    def test_lossy_tiles_come_back_once_still(self):
        # Moved from test_session_tiles (StillRefresh lived in tiles.py). due() now hands tiles
        # out (they are on their way): the one the caller did not send is put back.
        now = [100.0]
        refresh = StillRefresh(clock=lambda: now[0], still_after=0.5)
        refresh.sent({(0, 0), (1, 0)}, lossy=True)
        refresh.sent({(2, 0)}, lossy=False)
        self.assertEqual(refresh.due(), set())
        now[0] += 0.6
        self.assertEqual(refresh.due(), {(0, 0), (1, 0)})
        refresh.sent({(0, 0)}, lossy=False)
        refresh.put_back({(1, 0)})
        self.assertEqual(refresh.due(), {(1, 0)})
        refresh.reset()
        self.assertEqual(refresh.due(), set())

    def test_still_after_is_between_100_and_200_ms(self):
        self.assertGreaterEqual(r.STILL_AFTER, 0.1)
        self.assertLessEqual(r.STILL_AFTER, 0.2)
        clock = Clock()
        refresh = StillRefresh(clock)
        refresh.sent({(3, 4)}, lossy=True)
        clock.now += r.STILL_AFTER - 0.01
        self.assertEqual(refresh.due(20 * MBIT), set())
        clock.now += 0.01
        self.assertEqual(refresh.due(20 * MBIT), {(3, 4)})     # an idle 20 Mbit/s link has room at once

    def test_a_tile_that_changes_again_waits_again(self):
        clock = Clock()
        refresh = StillRefresh(clock)
        refresh.sent({(0, 0)}, lossy=True)
        clock.now += r.STILL_AFTER
        refresh.sent({(0, 0)}, lossy=True)          # moving on: sent lossy again
        self.assertEqual(refresh.due(), set())
        clock.now += r.STILL_AFTER
        self.assertEqual(refresh.due(skip={(0, 0)}), set())    # changed in this frame: it goes anyway
        self.assertEqual(refresh.due(), {(0, 0)})

    def test_handed_out_tiles_are_not_handed_out_twice_and_stay_lossy_until_refreshed(self):
        clock = Clock()
        refresh = StillRefresh(clock)
        refresh.sent({(0, 0), (1, 0)}, lossy=True)
        clock.now += 1
        self.assertEqual(refresh.due(), {(0, 0), (1, 0)})
        self.assertEqual(refresh.due(), set())
        self.assertTrue(refresh.holds_lossy({(1, 0), (5, 5)}))    # the viewer has lossy pixels there
        refresh.refreshed({(0, 0), (1, 0)}, 20_000)
        self.assertFalse(refresh.holds_lossy({(0, 0), (1, 0)}))
        self.assertFalse(refresh.holds_lossy(set()))

    def test_a_handed_out_tile_sent_lossy_again_waits_again(self):
        clock = Clock()
        refresh = StillRefresh(clock)
        refresh.sent({(0, 0)}, lossy=True)
        clock.now += 1
        self.assertEqual(refresh.due(), {(0, 0)})
        refresh.sent({(0, 0)}, lossy=True)          # a later frame moved it again
        self.assertEqual(refresh.due(), set())
        clock.now += r.STILL_AFTER
        self.assertEqual(refresh.due(), {(0, 0)})

    def test_oldest_first_then_top_to_bottom_left_to_right(self):
        clock = Clock()
        refresh = StillRefresh(clock)
        refresh.sent({(5, 1), (0, 2)}, lossy=True)
        clock.now += 0.05
        refresh.sent({(0, 0), (9, 0)}, lossy=True)
        clock.now += 1
        refresh.tile_cost = 1000.0
        rate = 1000.0 / r.BURST * 1.5               # the bucket holds 1.5 tiles: two go (one on debt)
        refresh.tokens = rate * r.BURST
        first = refresh.due(rate)
        self.assertEqual(first, {(5, 1), (0, 2)})
        clock.now += 10
        self.assertEqual(refresh.due(rate), {(0, 0), (9, 0)})


class BudgetTest(unittest.TestCase):
    """The top-off's bytes follow the measured rate: quick on a link with room, spread on a full
    one, never more than BURST seconds of the rate in one frame."""

    def setUp(self):
        self.clock = Clock()
        self.refresh = StillRefresh(self.clock)

    def run_frames(self, rate, seconds, live_per_frame=0, fps=60):
        """Capture ticks at `fps` for `seconds`, the live picture sending `live_per_frame` bytes
        each; each tick's top-off is reported at its estimated cost. [(time, tiles, bytes)]."""
        log, step = [], 1.0 / fps
        for _ in range(int(seconds * fps)):
            self.clock.now += step
            if live_per_frame:
                self.refresh.sent({(999, 999)}, lossy=False, size=live_per_frame)
            tiles = self.refresh.due(rate)
            cost = len(tiles) * self.refresh.tile_cost
            if tiles:
                self.refresh.refreshed(tiles, cost)
            log.append((self.clock.now, len(tiles), cost))
        return log

    def test_without_a_measured_rate_everything_goes_at_once(self):
        self.refresh.sent(grid(30, 17), lossy=True)
        self.clock.now += 1
        self.assertEqual(len(self.refresh.due(None)), 30 * 17)

    def test_one_frame_never_takes_more_than_burst_seconds_of_the_rate(self):
        rate = 5 * MBIT
        self.refresh.sent(grid(30, 17), lossy=True)     # a whole 1080p photo waits
        self.clock.now += 60                            # a long still time banks nothing extra
        self.refresh.due(rate)
        for _, tiles, cost in self.run_frames(rate, 2.0):
            self.assertLessEqual(cost, rate * r.BURST + self.refresh.tile_cost)

    def test_a_link_with_room_tops_off_within_still_after_plus_its_serialization(self):
        rate = 20 * MBIT
        self.refresh.sent(grid(8, 4), lossy=True)       # 32 tiles x 8 KB = 256 KB: ~0.1 s at 20 Mbit/s
        start = self.clock.now
        log = self.run_frames(rate, 1.0)
        done = [t for t, tiles, _ in log if tiles]
        self.assertTrue(done)
        self.assertEqual(sum(tiles for _, tiles, _ in log), 32)
        serialization = 32 * r.INITIAL_TILE_COST / (r.HEADROOM * rate)
        self.assertLessEqual(done[0] - start, r.STILL_AFTER + 0.02)
        self.assertLessEqual(done[-1] - start, r.STILL_AFTER + serialization + 0.05)

    def test_a_full_link_spreads_the_top_off_at_the_floor_share(self):
        rate = 5 * MBIT
        self.refresh.sent(grid(30, 17), lossy=True)
        self.clock.now += r.STILL_AFTER
        # The live picture alone fills the link: rate / 60 bytes in each of 60 frames a second.
        log = self.run_frames(rate, 4.0, live_per_frame=rate / 60)
        sent = sum(cost for t, _, cost in log if t > self.clock.now - 3.0)    # after the first second
        self.assertGreater(sent, 0, "the top-off starved")
        self.assertLess(abs(sent - 3.0 * r.FLOOR * rate), 2 * self.refresh.tile_cost + rate * r.BURST,
                        f"{sent} bytes in 3 s at the floor share of {rate} bytes/s")

    def test_the_top_off_takes_what_the_live_picture_leaves(self):
        rate = 5 * MBIT
        self.refresh.sent(grid(30, 17), lossy=True)
        self.clock.now += r.STILL_AFTER
        live = 0.3 * rate / 60                          # the live picture uses 30% of the link
        log = self.run_frames(rate, 4.0, live_per_frame=live)
        sent = sum(cost for t, _, cost in log if t > self.clock.now - 3.0)
        expected = 3.0 * (r.HEADROOM - 0.3) * rate
        self.assertLess(abs(sent - expected), 0.1 * expected, f"{sent} bytes, expected about {expected}")

    def test_live_rate_is_an_average_that_decays(self):
        self.refresh.sent({(0, 0)}, lossy=False, size=50_000)
        self.assertAlmostEqual(self.refresh.live_rate(), 50_000 / r.LIVE_TAU)
        self.clock.now += 10 * r.LIVE_TAU
        self.assertLess(self.refresh.live_rate(), 10)

    def test_the_cost_per_tile_is_learned_from_the_top_offs(self):
        self.refresh.refreshed({(0, 0), (1, 0)}, 2 * 1000)
        expected = r.INITIAL_TILE_COST + r.COST_WEIGHT * (1000 - r.INITIAL_TILE_COST)
        self.assertAlmostEqual(self.refresh.tile_cost, expected)
        # Cheaper tiles: more of them go for the same budget.
        rate = 5 * MBIT
        self.refresh.tile_cost = 1000.0
        self.refresh.sent(grid(30, 17), lossy=True)
        self.clock.now += 1
        self.assertGreaterEqual(len(self.refresh.due(rate)), int(rate * r.BURST / 1000))

    def test_put_back_returns_the_budget(self):
        rate = 5 * MBIT
        self.refresh.sent(grid(30, 17), lossy=True)
        self.clock.now += 1
        first = self.refresh.due(rate)
        self.refresh.put_back(first)
        self.assertEqual(self.refresh.due(rate), first)     # no time passed: the same ones again


class FastPathTest(unittest.TestCase):
    """due() returns at once while nothing lossy waits, or none of it is still yet."""

    def twins(self):
        clocks = Clock(), Clock()
        return clocks, [StillRefresh(clock) for clock in clocks]

    def test_nothing_waiting_hands_out_nothing_and_reads_no_clock(self):
        reads = []
        refresh = StillRefresh(lambda: reads.append(1) or 100.0)
        reads.clear()
        self.assertEqual(refresh.due(5 * MBIT), set())
        self.assertEqual(reads, [])

    def test_a_bucket_left_alone_while_nothing_waits_fills_as_one_asked_every_frame(self):
        # One refills every frame (as due() did before it returned at once with nothing lossy),
        # the other is not asked while nothing waits (its bucket is refilled when something
        # does): the same tiles go at the same times.
        (clock_a, clock_b), (every, lazy) = self.twins()
        rate, logs = 5 * MBIT, ([], [])
        for frame in range(240):                # 4 s at 60 fps
            for clock in (clock_a, clock_b):
                clock.now += 1 / 60
            if frame in (30, 150):              # a photo, still at once; then another
                for refresh in (every, lazy):
                    refresh.sent(grid(30, 17), lossy=True)
            for refresh, log in ((every, logs[0]), (lazy, logs[1])):
                if refresh is every:
                    refresh._refill(refresh.clock(), rate)
                if refresh is every or refresh.lossy:
                    tiles = refresh.due(rate)
                    refresh.refreshed(tiles, len(tiles) * refresh.tile_cost)
                    log.append((frame, sorted(tiles)))
        self.assertEqual([entry for entry in logs[0] if entry[1]], [entry for entry in logs[1] if entry[1]])
        self.assertTrue(any(tiles for _, tiles in logs[0]))

    def test_tiles_not_still_yet_wait_but_the_bucket_fills(self):
        clock = Clock()
        refresh = StillRefresh(clock)
        rate = 5 * MBIT
        refresh.due(rate)
        refresh.sent({(0, 0)}, lossy=True)
        clock.now += r.STILL_AFTER / 2
        self.assertEqual(refresh.due(rate), set())
        self.assertAlmostEqual(refresh.tokens, rate * r.BURST)     # ~75 ms at 0.9 x rate: full
        clock.now += r.STILL_AFTER
        self.assertEqual(refresh.due(rate), {(0, 0)})

    def test_a_lossless_frame_over_nothing_lossy_still_counts_the_live_picture(self):
        clock = Clock()
        refresh = StillRefresh(clock)
        refresh.sent({(0, 0), (1, 0)}, lossy=False, size=50_000)
        self.assertEqual((refresh.lossy, refresh.out), ({}, {}))
        self.assertAlmostEqual(refresh.live_rate(), 50_000 / r.LIVE_TAU)


if __name__ == "__main__":
    unittest.main()
