"""tagio/session/flow.py: rate and RTT estimation, the in-flight budget and the quality policy, on
an injected clock and a simulated bottleneck link (no sockets)."""

import operator
import random
import unittest

from tagio.session import flow

LAYER = "unit"


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


class SimLink:
    """A FIFO bottleneck of `rate` bytes/s with `rtt` seconds of path delay (half each way): a
    frame sent at t leaves the bottleneck at max(t, previous departure) + size / rate and its ack
    is back rtt later."""

    def __init__(self, rate, rtt):
        self.rate, self.rtt = rate, rtt
        self.departed = 0.0

    def ack_time(self, now, size):
        self.departed = max(now, self.departed) + size / self.rate
        return self.departed + self.rtt


def simulate(rate, rtt, frame_size, seconds, fps=60, control=None, clock=None):
    """A 60 Hz producer of `frame_size` frames behind FlowControl on a SimLink. Returns
    (frames sent, [ack latency of each frame], control). Time steps of 1 ms."""
    clock = clock or Clock(0.0)
    control = control or flow.FlowControl(clock)
    link, pending, latencies = SimLink(rate, rtt), {}, []
    frame_id, next_capture, step = 0, 0.0, 0.001
    while clock.now < seconds:
        for fid, (due, sent_at) in sorted(pending.items()):
            if due <= clock.now:
                del pending[fid]
                control.acked(fid)
                latencies.append(clock.now - sent_at)
        if clock.now >= next_capture and control.can_send():
            frame_id += 1
            control.sent(frame_id, frame_size)
            pending[frame_id] = (link.ack_time(clock.now, frame_size), clock.now)
            next_capture += 1.0 / fps
        elif clock.now >= next_capture + 1.0 / fps:
            next_capture = clock.now        # like the host: a capture that fell behind starts a new grid
        clock.now = round(clock.now + step, 6)
    return frame_id, latencies, control


def percentile(values, p):
    ordered = sorted(values)
    return ordered[int(round(p / 100 * (len(ordered) - 1)))]


class WindowedFilterTest(unittest.TestCase):
    def test_max_over_window_and_last_sample_kept(self):
        f = flow.WindowedFilter(2.0, lambda kept, new: kept > new)
        f.update(0.0, 10)
        f.update(1.0, 5)
        self.assertEqual(f.best(), 10)
        f.update(2.5, 4)            # 10 aged out, 5 is the max of the window
        self.assertEqual(f.best(), 5)
        f.expire(100.0)
        self.assertEqual(f.best(), 4)   # nothing measured for long: keep the last, never None

    def test_min_filter(self):
        f = flow.WindowedFilter(10.0, lambda kept, new: kept < new)
        for t, v in ((0, 0.08), (1, 0.06), (2, 0.09)):
            f.update(t, v)
        self.assertEqual(f.best(), 0.06)
        self.assertIsNone(flow.WindowedFilter(1.0, min).best())


    def test_value_is_the_best_sample_a_scan_of_the_window_finds(self):
        # The kept best (read for every frame without a call) against a scan of every sample.
        rng = random.Random(7)
        for window, better, pick in ((2.0, operator.gt, max), (10.0, operator.lt, min)):
            f, seen, now = flow.WindowedFilter(window, better), [(0.0, 50.0)], 0.0
            f.update(0.0, 50.0)
            for _ in range(2000):
                now += rng.uniform(0.0, 0.2)
                if rng.random() < 0.3:
                    best = f.expire(now)
                else:
                    seen.append((now, rng.uniform(1.0, 100.0)))
                    best = f.update(now, seen[-1][1])
                inside = [v for t, v in seen if t >= now - window] or [seen[-1][1]]
                self.assertEqual(best, pick(inside))
                self.assertEqual(f.value, best)
                self.assertEqual(f.best(), best)

    def test_value_before_any_sample(self):
        f = flow.WindowedFilter(1.0, operator.gt)
        self.assertIsNone(f.value)
        self.assertIsNone(f.expire(5.0))
        self.assertEqual(f.best(3), 3)


class DeliveryEstimatorTest(unittest.TestCase):
    def test_saturated_link_gives_its_rate_and_rtt(self):
        sent, latencies, control = simulate(rate=2.5e6, rtt=0.060, frame_size=300_000, seconds=5)
        est = control.estimator
        self.assertAlmostEqual(est.rate, 2.5e6, delta=0.1 * 2.5e6)
        # Frames of 120 ms serialization on a 60 ms path: between the path's RTT and half the
        # frame's send -> ack time (never below: that would starve the link for RTT_WINDOW).
        self.assertGreaterEqual(est.min_rtt, 0.060)
        self.assertLessEqual(est.min_rtt, (0.060 + 0.120) / 2 + 0.002)

    def test_rtt_of_frames_smaller_than_a_bdp_is_the_path_rtt(self):
        clock = Clock(0.0)
        control = flow.FlowControl(clock)
        control.estimator.rate_filter.update(0.0, 2.5e6)       # the rate is known
        for i in range(5):
            control.sent(i, 50_000)                             # 20 ms to serialize
            clock.now += 0.020 + 0.060
            control.acked(i)
            clock.now += 0.5
        self.assertAlmostEqual(control.estimator.min_rtt, 0.060, delta=0.001)

    def test_unknown_ack_is_none(self):
        est = flow.DeliveryEstimator(Clock())
        self.assertIsNone(est.acked(7))
        self.assertIsNone(est.rate)
        self.assertIsNone(est.min_rtt)

    def test_one_frame_alone_measures_size_over_time(self):
        clock = Clock(0.0)
        est = flow.DeliveryEstimator(clock)
        est.sent(1, 10_000)
        clock.now = 0.1
        sample = est.acked(1)
        self.assertAlmostEqual(sample.rate, 100_000)
        self.assertEqual(est.in_flight, 0)

    def test_app_limited_samples_do_not_lower_the_rate(self):
        clock = Clock(0.0)
        est = flow.DeliveryEstimator(clock)
        est.sent(1, 100_000)
        clock.now = 0.1
        est.acked(1)                            # 1 MB/s, link-limited
        for i in range(2, 10):                  # then small frames: the screen needs little
            clock.now += 0.5
            est.sent(i, 1000, app_limited=True)
            clock.now += 0.05
            self.assertLess(est.acked(i).rate, 100_000)
        self.assertEqual(est.rate, 1_000_000)   # kept, although older than the window

    def test_link_limited_samples_lower_the_rate_after_the_window(self):
        clock = Clock(0.0)
        est = flow.DeliveryEstimator(clock)
        est.sent(1, 100_000)
        clock.now = 0.1
        est.acked(1)
        clock.now = 5.0
        est.sent(2, 50_000)
        clock.now = 5.5
        est.acked(2)                            # the link got slower: 100 KB/s
        self.assertAlmostEqual(est.rate, 100_000)

    def test_forget_empties_the_pipe(self):
        est = flow.DeliveryEstimator(Clock())
        est.sent(1, 500)
        est.forget()
        self.assertEqual(est.in_flight, 0)
        self.assertIsNone(est.acked(1))


class FlowControlTest(unittest.TestCase):
    def test_budget_before_and_after_samples(self):
        clock = Clock(0.0)
        control = flow.FlowControl(clock)
        self.assertEqual(control.budget(), flow.INITIAL_BUDGET)
        control.sent(1, 200_000)
        clock.now = 0.2                             # a lone frame: 1 MB/s, RTT at most half of 0.2 s
        control.acked(1)
        self.assertEqual(control.estimator.min_rtt, 0.1)
        self.assertEqual(control.budget(), int(flow.BUDGET_GAIN * 1e6 * 0.1) + int(control.frame_size))
        sent, _lat, control = simulate(rate=2.5e6, rtt=0.060, frame_size=200_000, seconds=3)
        est = control.estimator
        bdp = flow.BUDGET_GAIN * est.rate * est.min_rtt
        self.assertGreater(bdp, flow.MIN_BUDGET)
        self.assertEqual(control.budget(), int(bdp) + int(control.frame_size))

    def test_one_frame_may_always_be_in_flight(self):
        control = flow.FlowControl(Clock())
        self.assertTrue(control.can_send())
        control.sent(1, 10 * flow.INITIAL_BUDGET)
        self.assertFalse(control.can_send())

    def test_frames_in_flight_are_capped(self):
        control = flow.FlowControl(Clock(), max_frames=3)
        for i in range(3):
            self.assertTrue(control.can_send())
            control.sent(i, 10)
        self.assertFalse(control.can_send())
        self.assertEqual(control.frames_in_flight, 3)

    def test_blocked_send_makes_the_next_sample_link_limited(self):
        control = flow.FlowControl(Clock(), max_frames=1)
        control.sent(1, 10)
        self.assertTrue(control.estimator.frames[1].app_limited)
        self.assertFalse(control.can_send())
        control.acked(1)
        control.sent(2, 10)
        self.assertFalse(control.estimator.frames[2].app_limited)

    def test_small_frames_are_not_capped_at_two_per_rtt(self):
        # 60 ms / 20 Mbit/s: two frames in flight allowed 33 fps; a byte budget allows the 60 Hz producer.
        sent, latencies, _c = simulate(rate=2.5e6, rtt=0.060, frame_size=2_000, seconds=4)
        self.assertGreater(sent / 4, 57)
        self.assertLess(percentile(latencies, 50), 0.070)

    def test_big_frames_fill_the_link_without_a_standing_queue(self):
        # 300 KB frames on 20 Mbit/s: the link carries ~8 a second; latency stays about one RTT plus
        # the frame's own serialization and does not grow with time.
        sent, latencies, _c = simulate(rate=2.5e6, rtt=0.060, frame_size=300_000, seconds=30)
        self.assertGreater(sent / 30, 0.85 * 2.5e6 / 300_000)
        serialization = 300_000 / 2.5e6
        self.assertLess(percentile(latencies, 50), 0.060 + 2 * serialization + 0.01)
        late = latencies[len(latencies) // 2:]
        self.assertLess(percentile(late, 95) - percentile(late, 50), 0.060)     # p95 - p50 <= 1 RTT

    def test_slow_far_link(self):
        # 150 ms / 5 Mbit/s with 20 KB frames: ~31 frames/s fit, today's 2-frame window gives 13.
        sent, latencies, _c = simulate(rate=625_000, rtt=0.150, frame_size=20_000, seconds=20)
        self.assertGreater(sent / 20, 0.85 * 625_000 / 20_000)
        self.assertLess(percentile(latencies, 95) - percentile(latencies, 50), 0.150)


class QualityPolicyTest(unittest.TestCase):
    FULL_HD = 1920 * 1080

    def policy(self, bpp75=0.1):
        clock = Clock()
        policy = flow.QualityPolicy(clock, target_quality=75)
        policy.bpp75 = bpp75
        return clock, policy

    def test_unmeasured_link_or_small_change_keeps_the_wanted_quality(self):
        clock, policy = self.policy()
        self.assertEqual(policy.choose(None, self.FULL_HD), flow.Choice(75, 1.0))
        self.assertEqual(policy.choose(2.5e6, 200 * 100), flow.Choice(75, 1.0))
        self.assertEqual(policy.choose(100_000, 200 * 100), flow.Choice(75, 1.0))    # 800 kbit/s still fits

    def test_full_screen_on_20_mbit_drops_quality_just_enough(self):
        clock, policy = self.policy()
        choice = policy.choose(2.5e6, self.FULL_HD)
        self.assertEqual(choice.scale, 1.0)
        self.assertLess(choice.quality, 75)
        self.assertGreaterEqual(choice.quality, flow.MOTION_MIN_QUALITY)
        budget = 2.5e6 / flow.TARGET_FPS
        self.assertLessEqual(policy._predict(choice.quality, 1.0, self.FULL_HD), budget)
        better = [q for q in flow.QUALITY_STEPS if choice.quality < q <= 75]
        self.assertGreater(policy._predict(min(better), 1.0, self.FULL_HD), budget)   # the next one up does not fit

    def test_slow_link_scales_moving_regions(self):
        clock, policy = self.policy()
        choice = policy.choose(625_000, self.FULL_HD)          # 5 Mbit/s
        self.assertEqual(choice.quality, flow.MOTION_MIN_QUALITY)
        self.assertLess(choice.scale, 1.0)
        self.assertLessEqual(policy._predict(choice.quality, choice.scale, self.FULL_HD), 625_000 / flow.TARGET_FPS)

    def test_without_scaling_quality_goes_lower_at_full_scale(self):
        clock, policy = self.policy()
        policy.can_scale = False
        choice = policy.choose(625_000, self.FULL_HD)
        self.assertEqual(choice.scale, 1.0)
        self.assertLess(choice.quality, flow.MOTION_MIN_QUALITY)
        self.assertEqual(policy.choose(1000, self.FULL_HD), flow.Choice(flow.MIN_QUALITY, 1.0))

    def test_very_slow_link_ends_at_the_bottom_rung(self):
        clock, policy = self.policy()
        self.assertEqual(policy.choose(1000, self.FULL_HD), flow.Choice(flow.MIN_QUALITY, flow.SCALES[-1]))

    def test_steps_down_at_once_and_up_one_rung_per_interval(self):
        clock, policy = self.policy()
        low = policy.choose(100_000, self.FULL_HD)
        self.assertLess(low.scale, 1.0)
        clock.now += 0.1
        self.assertEqual(policy.choose(1e9, self.FULL_HD), low)        # held: too soon to raise
        seen = []
        for _ in range(30):
            clock.now += flow.RAISE_INTERVAL
            seen.append(policy.choose(1e9, self.FULL_HD))
        self.assertEqual(seen[-1], flow.Choice(75, 1.0))
        ranks = [(c.scale, c.quality) for c in seen]
        self.assertEqual(ranks, sorted(ranks))                          # only ever up, one rung at a time
        self.assertGreater(len(set(ranks)), 3)

    def test_the_ladder_has_every_scale_and_goes_down_in_bytes(self):
        ladder = flow._ladder(75)
        self.assertEqual({c.scale for c in ladder}, set(flow.SCALES))
        self.assertEqual(ladder, sorted(ladder, key=flow._rank, reverse=True))
        clock, policy = self.policy()
        sizes = [policy._predict(c.quality, c.scale, self.FULL_HD) for c in ladder]
        self.assertEqual(sizes, sorted(sizes, reverse=True))
        self.assertLessEqual(max(a / b for a, b in zip(sizes, sizes[1:])), 2.25 + 1e-9)   # 1/2 -> 1/3 scale at most
        self.assertTrue(all(c.scale == 1.0 for c in flow._ladder(75, can_scale=False)))

    def test_stepping_up_to_a_bigger_scale_starts_at_its_lowest_quality(self):
        ladder = flow._ladder(75)
        up = flow._one_step_up(flow.Choice(75, 0.5), flow.Choice(75, 1.0), ladder)
        self.assertEqual(up, flow.Choice(flow.MOTION_MIN_QUALITY, 1.0))
        self.assertEqual(flow._one_step_up(flow.Choice(40, 0.5), flow.Choice(75, 1.0), ladder), flow.Choice(50, 0.5))
        self.assertEqual(flow._one_step_up(flow.Choice(40, 0.5), flow.Choice(40, 0.5), ladder), flow.Choice(40, 0.5))

    def test_learns_bytes_per_pixel_from_the_encoder(self):
        clock, policy = self.policy(bpp75=0.5)
        for _ in range(20):
            policy.encoded(50, 1_000_000, int(0.1 * flow.JPEG_SIZE[50] * 1_000_000))
        self.assertAlmostEqual(policy.bpp75, 0.1, delta=0.005)
        policy.encoded(75, 0, 100)          # nothing encoded: nothing learnt
        self.assertAlmostEqual(policy.bpp75, 0.1, delta=0.005)

    def test_size_ratio_interpolates(self):
        self.assertEqual(flow._size_ratio(75), 1.0)
        self.assertAlmostEqual(flow._size_ratio(55), (0.64 + 0.51) / 2)
        self.assertEqual(flow._size_ratio(100), flow.JPEG_SIZE[95])
        self.assertEqual(flow._size_ratio(1), flow.JPEG_SIZE[10])


class LinkShareTest(unittest.TestCase):
    def test_snapshot_is_the_delivered_pair(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        self.assertEqual(share.snapshot(), (0, 0.0))
        self.assertEqual(share.frame_acked(1000, 1.0), 1000)
        share.pipe_empty(2.0)
        self.assertEqual(share.snapshot(), (1000, 2.0))
        self.assertEqual((share.delivered, share.delivered_at), (1000, 2.0))
        share.files_posted(500)
        share.pipe_empty(3.0)                   # file data in flight: the ack interval stays open
        self.assertEqual(share.snapshot(), (1000, 2.0))
        clock.now = 4.0
        share.files_acked(500, 0)
        self.assertEqual(share.snapshot(), (1500, 4.0))

    def test_the_screen_rate_shares_only_once_files_were_seen(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        est = flow.DeliveryEstimator(clock, share)
        est.rate_filter.update(0.0, 1e6)
        self.assertFalse(share.files_seen)
        self.assertEqual(est.screen_rate, 1e6)
        self.assertEqual(est.rate, 1e6)
        share.files_held()                      # files want more: the screen keeps its share
        self.assertTrue(share.files_seen)
        self.assertAlmostEqual(est.screen_rate, flow.SCREEN_SHARE * 1e6)
        self.assertEqual(est.rate, est.screen_rate)


class QualityPolicyCacheTest(unittest.TestCase):
    FULL_HD = 1920 * 1080

    def scan(self, policy, rate, pixels):
        """_ideal as it was: a walk down the ladder with _predict."""
        if rate is None or pixels <= 0:
            return flow.Choice(policy.target_quality, 1.0)
        for choice in flow._ladder(policy.target_quality, policy.can_scale):
            if policy._predict(choice.quality, choice.scale, pixels) <= rate / policy.target_fps:
                return choice
        return choice

    def test_ideal_is_the_ladder_walk(self):
        rng = random.Random(3)
        policy = flow.QualityPolicy(Clock(), target_quality=75)
        for _ in range(3000):
            policy.bpp75 = rng.choice((0.05, 0.1, 0.3, policy.bpp75))
            policy.target_quality = rng.choice((90, 75, 75, 60, 35))
            policy.can_scale = rng.random() < 0.7
            rate = rng.choice((None, 1000.0, 1e5, 2.5e6, 1e8, rng.uniform(1e3, 1e7)))
            pixels = rng.choice((0, 200 * 100, self.FULL_HD, rng.randrange(1, self.FULL_HD)))
            self.assertEqual(policy._ideal(rate, pixels), self.scan(policy, rate, pixels))

    def test_a_cached_answer_changes_when_an_input_does(self):
        policy = flow.QualityPolicy(Clock(), target_quality=75)
        policy.bpp75 = 0.1
        rate = 2.5e6
        first = policy._ideal(rate, self.FULL_HD)
        self.assertIs(policy._ideal(rate, self.FULL_HD), first)        # the same inputs: kept
        self.assertLess(first.quality, 75)
        changes = {
            "rate": lambda: policy._ideal(rate / 4, self.FULL_HD),
            "pixels": lambda: policy._ideal(rate, self.FULL_HD // 8),
            "bpp75": lambda: (setattr(policy, "bpp75", 0.4), policy._ideal(rate, self.FULL_HD))[1],
        }
        for name, changed in changes.items():
            with self.subTest(input=name):
                self.assertNotEqual(changed(), first)
                policy.bpp75 = 0.1
                self.assertEqual(policy._ideal(rate, self.FULL_HD), first)
        policy.target_quality = 60                  # a new wanted quality: a new ladder
        self.assertEqual(policy._ideal(None, self.FULL_HD), flow.Choice(60, 1.0))
        self.assertEqual(policy._ideal(1e5, self.FULL_HD), self.scan(policy, 1e5, self.FULL_HD))
        policy.can_scale = False                    # no scaling: full scale only
        self.assertEqual(policy._ideal(1000, self.FULL_HD).scale, 1.0)
        policy.can_scale = True
        self.assertLess(policy._ideal(1000, self.FULL_HD).scale, 1.0)

    def test_an_unmeasured_link_follows_a_new_target_quality(self):
        clock = Clock()
        policy = flow.QualityPolicy(clock, target_quality=75)
        self.assertEqual(policy.choose(None, 100), flow.Choice(75, 1.0))
        policy.target_quality = 60                  # down: at once
        self.assertEqual(policy.choose(None, 100), flow.Choice(60, 1.0))
        policy.target_quality = 75                  # up: one rung per RAISE_INTERVAL, as ever
        clock.now += flow.RAISE_INTERVAL
        self.assertEqual(policy.choose(None, 100), flow.Choice(65, 1.0))
        self.assertEqual(policy.choose(None, 100), flow.Choice(65, 1.0))
        for _ in range(3):
            clock.now += flow.RAISE_INTERVAL
            policy.choose(None, 100)
        self.assertEqual(policy.choose(None, 100), flow.Choice(75, 1.0))

    def test_choices_are_frozen(self):
        # The same Choice is handed out again: nobody may change it.
        choice = flow.QualityPolicy(Clock()).choose(None, 100)
        with self.assertRaises(AttributeError):
            choice.quality = 10


if __name__ == "__main__":
    unittest.main()
