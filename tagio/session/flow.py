"""Flow control by bytes and time: delivery rate and RTT from acknowledgements, pacing at that rate,
an in-flight cap of about two bandwidth-delay products, a quality policy that sizes frames to
the measured rate, and the share of the link between the screen and file transfers.

Theory of operation (pure logic, injected clock; the host's capture and receive threads call in).

Today's host allows 2 frames in flight whatever their size, so its frame rate is capped at 2 / RTT
(33 fps at 60 ms) on a fast link, while on a slow link two 300 KB frames queue for a quarter of a
second. BBR's answer, applied to frames instead of packets:

  DeliveryEstimator  every frame is sent with a snapshot of how much had been delivered (acked)
          and when. When its ack arrives, the bytes delivered since that snapshot divided by the
          time they took is one delivery-rate sample (the longer of the send and the ack interval,
          so neither a burst of sends nor a burst of acks inflates it: BBR's delivery-rate
          estimation, draft-cheng-iccrg-delivery-rate-estimation). The bottleneck rate is the MAX
          of the samples over RATE_WINDOW seconds; the round-trip time is the MIN of the samples
          over RTT_WINDOW seconds. An RTT sample is send -> ack minus the frame's own
          serialization at the estimated rate: a frame of 300 KB takes 120 ms to cross 20 Mbit/s,
          which is not path delay (BBR's packets are too small to care; our frames are not).
          A sample taken while the host was not limited by the budget ("application limited": a
          small change at 60 Hz uses a tenth of the link) only counts if it raises the estimate -
          otherwise an idle desktop would talk the rate down to what it happened to use.
  FlowControl  paces frames at the measured rate (a frame of S bytes may be followed S / rate
          seconds later; twice as fast in STARTUP, until the rate stops growing; then BBR's gain
          cycle, one frame at 1.25 to probe for more, one at 0.75 to drain, six at 1.0). It also
          caps the bytes in flight at budget() = BUDGET_GAIN x rate x min RTT (BBR's cwnd_gain of
          2: the pacing sets the rate, the cap only bounds the damage of a wrong estimate; with
          a floor of MIN_BUDGET so small frames always flow) plus one average frame (the next
          frame is on its way while the last one is acknowledged); before the first samples only
          INITIAL_BUDGET holds. One frame may always be in flight, whatever its size (a frame
          bigger than the budget must not stall the session), and at most MAX_FRAMES (bounded
          bookkeeping). Only frames held back by the cap make samples link-limited: held back by
          pacing alone, the host only went as fast as its own estimate. So the link stays busy
          while little queues at its bottleneck: the frame rate no longer falls with the RTT and
          the latency stays near one RTT plus the frame's own serialization.
  QualityPolicy  picks the JPEG quality and (when needed) a scale for moving regions so a frame
          fits rate / TARGET_FPS bytes: the link then carries TARGET_FPS frames a second without
          a queue. It learns the content's bytes per pixel from what the encoder produced
          (`encoded`) and predicts other qualities from a table of JPEG size ratios (measured
          with Pillow/libjpeg on photo-like pictures; scaling by s costs about s squared). It
          steps down at once and up at most one step per RAISE_INTERVAL, so the picture does
          not flicker between qualities. TigerVNC, for comparison, switches between two JPEG
          qualities at 16 Mbit/s from an average per-update throughput (vncviewer/CConn.cxx) and
          drops to 8-bit colour under 256 kbit/s; here the step follows each frame's size and the
          measured rate: a small change keeps the wanted quality on any link, a full-screen
          photo at 20 Mbit/s drops just enough, and on a link of a few hundred kbit/s moving
          regions are scaled down (the lossless top-off restores them once they are still).

  LinkShare  the host's frames and files share one ordered path. Its delivered-bytes count takes
          both (frames by FrameAck, files by Got), so a frame's rate sample measures the link
          whatever carried the bytes: the rate no longer falls because a transfer took the link
          (it did when only frame bytes were counted: frames sized to a frames-only estimate never
          grew back, and the screen kept a few percent of the link). The share rule, the only
          place the two meet: while the files want more than they get the screen may use
          SCREEN_SHARE of the link rate, otherwise what the files leave of it and never less
          than SCREEN_SHARE (`estimator.screen_rate` is that share: the pacing, the budget, the
          frame size and the top-off follow it); the files' window (files_flow, LEDBAT-like) backs off from the
          queue a screen sending at its share builds and fills whatever it leaves. A screen that
          wants little leaves the files the whole link; files that stop give the screen the link
          back within FILES_TAU. Input is not in this: it goes before both in the session's queue.

What runs for every frame and every ack is kept cheap (the host's threads wake 60 times a second
with cold caches, and each Python call costs there): the windowed filters keep their best sample
in an attribute that only an ack changes, so pacing, the budget, the quality policy and the
top-off read the rate without a call; the delivered count is one tuple read without a lock; a
frame's and an ack's records are tuples; the quality policy builds its ladder once per target
quality and keeps its last answer for the same inputs (QualityPolicy).

All times are seconds from the injected clock (time.monotonic in the host); rates are bytes/s.
Nothing here raises for what a peer sent: an ack for a frame we never sent is the caller's
RemoteProtocolError to raise (`acked` returns None for it).
"""

import collections
import functools
import math
import operator
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

RATE_WINDOW = 2.0        # seconds: the delivery-rate estimate is the max over this window
RTT_WINDOW = 10.0        # seconds: the RTT estimate is the min over this window (BBR's min_rtt)
BUDGET_GAIN = 2.0        # cap = this x BDP (BBR's cwnd_gain): pacing sets the rate, the cap bounds errors
MIN_BUDGET = 64 * 1024   # bytes: always this much may be in flight (small frames never wait on RTT)
INITIAL_BUDGET = 256 * 1024  # bytes in flight before the first samples (about 100 ms at 20 Mbit/s)
MAX_FRAMES = 32          # frames in flight at most (bounded bookkeeping; ~0.5 s at 60 fps)
STARTUP_GAIN = 2.0       # pacing gain while the rate is still being found (BBR: 2.89)
STARTUP_ROUNDS = 3       # samples taken at the in-flight cap, in a row without 25% growth, end STARTUP
PACING_CYCLE = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
FRAME_SIZE_WEIGHT = 0.25  # weight of a new frame in the average frame size
MIN_INTERVAL = 0.001     # seconds: shorter sample intervals are clock noise, not a rate
SCREEN_SHARE = 2 / 3     # of the link: the least the screen keeps while files move (if it wants it)
FILES_TAU = 0.5          # seconds: time constant of the files' delivery rate as the share rule sees it
FILES_HELD = 0.5         # seconds after their window last held file data back that the files want more

TARGET_FPS = 24          # moving content is sized so the link carries this many frames a second
QUALITY_STEPS = (90, 85, 80, 75, 70, 65, 60, 50, 40, 30, 20)
JPEG_SIZE = {95: 3.0, 90: 2.14, 85: 1.6, 80: 1.25, 75: 1.0, 70: 0.85, 65: 0.73, 60: 0.64,
             50: 0.51, 40: 0.4, 30: 0.27, 20: 0.16, 10: 0.12}      # bytes relative to quality 75
MOTION_MIN_QUALITY = 40  # below this, scale moving regions down before lowering quality further
MIN_QUALITY = 20
# Scales of moving regions: whole fractions, so the host shrinks with Pillow's reduce() (a box
# average, ~5 ms for 1080p where a bilinear resize to 0.75 took ~35 ms here) and the viewer's
# pixels map onto whole blocks. Half the resolution is a quarter of the bytes, so at half scale the
# ladder runs through the qualities again: without those rungs the step between quality 40 at full
# scale and at half scale was 8x in bytes, and a policy stepping up across it sent bursts.
SCALES = (1.0, 1 / 2, 1 / 3, 1 / 4)
RAISE_INTERVAL = 0.5     # seconds between two steps up in quality or scale
BPP_WEIGHT = 0.3         # weight of a new bytes-per-pixel observation in the moving average
INITIAL_BPP = 0.15       # bytes per pixel at quality 75 before anything was encoded (photo-like)
_NEVER = float("-inf")


class WindowedFilter:
    """The max (or min) of samples over the last `window` seconds (a monotonic deque: O(1) per
    sample, amortized; the best sample is always at the left).

    When every sample has aged out the last one is kept: an estimate never falls to nothing just
    because nothing was measured. The best sample only changes in `update` and `expire`, so they
    keep it in `value` (and return it): a reader, for every frame, needs no call."""

    def __init__(self, window, better):
        self.window = window
        self.better = better            # better(a, b): True when a should replace b
        self.samples = collections.deque()      # (time, value), values worsening from the left
        self.value = None               # the best sample (samples[0]'s value), None before any

    def update(self, now, value):
        """Add a sample; the best one over the window after it."""
        samples, better = self.samples, self.better
        while samples and not better(samples[-1][1], value):
            samples.pop()
        samples.append((now, value))
        # expire(), inline: this runs for every acknowledged frame
        oldest = now - self.window
        while len(samples) > 1 and samples[0][0] < oldest:
            samples.popleft()
        self.value = samples[0][1]
        return self.value

    def expire(self, now):
        """Drop the samples older than the window (but the last); the best one left (or None)."""
        samples, oldest = self.samples, now - self.window
        while len(samples) > 1 and samples[0][0] < oldest:
            samples.popleft()
        self.value = samples[0][1] if samples else None
        return self.value

    def best(self, default=None):
        return self.value if self.samples else default


class LinkShare:
    """One path, two senders: the bytes it delivered (frames and files alike), the link rate the
    frames' estimator measured from them, and the rule that shares that rate between the screen and
    the files. Thread-safe: the host's capture and receive threads call in for the frames, the
    files' pump and the receive thread (Got) for the files."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        # (bytes acknowledged, frames and files, ever; when the last of them was acknowledged).
        # One tuple, replaced whole under the lock: a reader without the lock (a frame's send,
        # `snapshot`) still sees a pair that belongs together.
        self.mark = (0, clock())
        self.link_rate = None           # bytes/s, published by the frames' DeliveryEstimator
        self.files_in_flight = 0        # file bytes posted, not yet acknowledged
        self.files_seen = False         # file data was ever acknowledged or held back (see screen_rate)
        self._files = 0.0               # exponentially decayed file bytes acknowledged ...
        self._files_at = self.mark[1]   # ... as of then
        self._files_held_at = _NEVER        # when the files' window last held data back

    # -- what was delivered ----------------------------------------------------------------------
    @property
    def delivered(self):
        """Bytes acknowledged, frames and files, ever."""
        return self.mark[0]

    @property
    def delivered_at(self):
        """When the last of them was acknowledged."""
        return self.mark[1]

    def snapshot(self):
        """(bytes delivered, when the last of them was): a frame's send remembers it. No lock: the
        pair is one tuple (`mark`)."""
        return self.mark

    def pipe_empty(self, now):
        """No frame is in flight: when no file data is either, a new ack interval starts now (the
        time the path stood idle is not delivery time)."""
        with self._lock:
            if not self.files_in_flight:
                self.mark = (self.mark[0], now)

    def frame_acked(self, nbytes, now):
        """A frame of `nbytes` was acknowledged: the delivered total after it."""
        with self._lock:
            delivered = self.mark[0] + nbytes
            self.mark = (delivered, now)
            return delivered

    def files_acked(self, nbytes, in_flight):
        """A Got acknowledged `nbytes` more of file data; `in_flight` file bytes are still on
        their way."""
        with self._lock:
            now = self.clock()
            self.files_in_flight = in_flight
            if nbytes:
                self.mark = (self.mark[0] + nbytes, now)
                self._files = _decay(self._files, self._files_at, now) + nbytes
                self._files_at = now
                self.files_seen = True

    def files_posted(self, in_flight):
        with self._lock:
            self.files_in_flight = in_flight

    def files_held(self):
        """The files had data to send and their window (or a pace asked of them) held it back:
        they want more."""
        with self._lock:
            self._files_held_at = self.clock()
            self.files_seen = True

    def publish(self, link_rate):
        """The frames' estimator's word on the link rate (all bytes): the files size their first
        chunks by it."""
        with self._lock:
            self.link_rate = link_rate

    # -- the share rule --------------------------------------------------------------------------
    def files_rate(self):
        """The files' delivery rate (bytes/s, exponential average over FILES_TAU; 0 once idle)."""
        with self._lock:
            return _decay(self._files, self._files_at, self.clock()) / FILES_TAU

    def screen_rate(self, link_rate):
        """The rate the screen may use. Files that want more than they get (their window held
        data back within FILES_HELD) leave it SCREEN_SHARE of `link_rate`: they back off from the
        queue a screen sending faster builds, so without this line the screen took ever more of
        the link as they yielded. Files that take what they need (a few small ones, a slow disk)
        leave it the rest, and never less than SCREEN_SHARE; no files, the whole link. The files'
        window fills whatever the screen leaves of the link: nothing else holds them back (a cap
        on the files while the frames filled their budget kept the link from ever being measured
        full behind a slow viewer, and with it the files under a third of it)."""
        if link_rate is None:
            return None
        # No file data ever moved or waited (the usual session): the whole link, without a clock
        # read or a lock. The flag is only ever set, never cleared.
        if not self.files_seen:
            return link_rate
        with self._lock:
            wanting = self.clock() - self._files_held_at < FILES_HELD
        if wanting:
            return SCREEN_SHARE * link_rate
        return max(SCREEN_SHARE * link_rate, link_rate - self.files_rate())


def _decay(amount, since, now):
    """`amount` as of `since`, decayed exponentially with FILES_TAU to `now`."""
    return amount * math.exp(-max(0.0, now - since) / FILES_TAU)


class _Sent(NamedTuple):
    size: int
    sent_at: float
    delivered: int          # bytes delivered (acked) when it was sent
    delivered_at: float     # when that delivered count was reached
    first_sent_at: float    # send time of the frame that started that ack interval
    app_limited: bool


class Sample(NamedTuple):
    rate: float             # bytes/s (0 when the interval was too short to measure)
    rtt: float              # seconds, path delay (serialization of the frame taken out)
    app_limited: bool


# One of each is built for every frame: tuple.__new__ straight from C, without the Python-level
# __new__ a NamedTuple (or __init__ a dataclass) would run.
_new_sent = functools.partial(tuple.__new__, _Sent)
_new_sample = functools.partial(tuple.__new__, Sample)


class DeliveryEstimator:
    """Delivery rate (max over RATE_WINDOW) and RTT (min over RTT_WINDOW) from frame acks. The
    bytes delivered are counted in a LinkShare with the files' (their Got), so a rate sample is the
    link's, whatever carried it; `rate` is the screen's share of it.

    Both estimates change only when an ack comes (the filters age their samples out then) and the
    filters keep them in an attribute (WindowedFilter.value): the capture thread reads them for
    every frame (pacing, the quality policy, the top-off's budget) without a filter call."""

    def __init__(self, clock=time.monotonic, share=None):
        self.clock = clock
        self.share = share if share is not None else LinkShare(clock)
        # operator.gt(kept, new) is `kept > new`, without a Python frame per comparison
        self.rate_filter = WindowedFilter(RATE_WINDOW, operator.gt)
        self.rtt_filter = WindowedFilter(RTT_WINDOW, operator.lt)
        self.frames = {}            # frame id -> _Sent
        self.in_flight = 0          # bytes of frames sent, not yet acknowledged
        self.first_sent_at = clock()

    @property
    def link_rate(self):
        """The link's delivery rate in bytes/s (frames and files), or None before the first sample."""
        return self.rate_filter.value

    @property
    def screen_rate(self):
        """The screen's rate in bytes/s: the link rate, less what files take (LinkShare), or None
        before the first sample. Pacing and the in-flight budget follow it."""
        if not self.share.files_seen:       # no files ever (LinkShare.screen_rate): the whole link
            return self.rate_filter.value
        return self.share.screen_rate(self.rate_filter.value)

    # The screen's rate (screen_rate): QualityPolicy sizes frames to it and the lossless top-off is
    # budgeted by it. The same property, not one that calls the other: one call less per read.
    rate = screen_rate

    @property
    def min_rtt(self):
        """Path round-trip time in seconds, or None before the first sample."""
        return self.rtt_filter.value

    def sent(self, frame_id, size, app_limited=False, now=None):
        now = self.clock() if now is None else now
        if not self.frames:         # no frame in flight: a new ack interval starts now
            self.first_sent_at = now
            self.share.pipe_empty(now)
        delivered, delivered_at = self.share.mark     # LinkShare.snapshot, without the call
        self.frames[frame_id] = _new_sent((size, now, delivered, delivered_at, self.first_sent_at, app_limited))
        self.in_flight += size

    def acked(self, frame_id):
        """The viewer acknowledged `frame_id`: update the estimates; the Sample, or None when that
        frame is not in flight (the caller decides whether that is the peer's error)."""
        frame = self.frames.pop(frame_id, None)
        if frame is None:
            return None
        size, sent_at, delivered_then, delivered_at, first_sent_at, app_limited = frame
        now = self.clock()
        self.in_flight -= size
        delivered = self.share.frame_acked(size, now)
        self.first_sent_at = sent_at
        interval = max(sent_at - first_sent_at, now - delivered_at)
        rate = (delivered - delivered_then) / interval if interval >= MIN_INTERVAL else 0.0
        link = self.rate_filter.value
        if rate and (not app_limited or rate > (link or 0.0)):
            link = self.rate_filter.update(now, rate)      # expires the old samples too
        else:
            link = self.rate_filter.expire(now)
        # At most half of the elapsed time is taken out: the rate may be far too low (a lone first
        # frame measures size / (RTT + serialization)) and would explain away the whole RTT. So an
        # RTT sample is never below half the true RTT, and exact for frames smaller than one BDP
        # (their serialization is under half the elapsed time); bigger frames give an estimate
        # above the true RTT, which costs a little queue, where one too low would stick in the
        # min filter for RTT_WINDOW and starve the link.
        elapsed = now - sent_at
        # the frame crosses the bottleneck at the link's rate (`link`)
        serialization = min(size / link, elapsed / 2) if link else 0.0
        rtt = max(elapsed - serialization, MIN_INTERVAL)
        self.rtt_filter.update(now, rtt)
        return _new_sample((rate, rtt, app_limited))

    def forget(self):
        """Drop every frame in flight (a monitor switch, a reset): their acks will not come."""
        self.frames.clear()
        self.in_flight = 0


class FlowControl:
    """When the host may send its next frame: paced at the measured rate, capped at about two BDPs
    in flight, measured by a DeliveryEstimator."""

    def __init__(self, clock=time.monotonic, max_frames=MAX_FRAMES, share=None):
        self.clock = clock
        self.share = share if share is not None else LinkShare(clock)     # the files' side of the path
        self.estimator = DeliveryEstimator(clock, self.share)
        self.max_frames = max_frames
        self.frame_size = 0.0       # moving average of frame sizes (bytes)
        self.next_send_at = 0.0     # pacing: the previous frame has crossed the bottleneck by then
        self.startup = True         # BBR's STARTUP: pace fast until the rate stops growing
        self._full_rate, self._flat_rounds = 0.0, 0
        self._sent_count = 0
        self.held_at = float("-inf")    # when flow control last held a frame back
        self._blocked = False       # the in-flight cap held a frame back since the last send
        self._capped_frames = set()  # frames sent after the cap held one back (STARTUP's exit test)

    def budget(self):
        """Bytes that may be in flight: the BDP (with headroom, and a floor so small frames never
        wait on the RTT) plus one average frame, which must be on its way while the previous one
        is acknowledged or a link carrying frames longer than its BDP would idle between them."""
        est = self.estimator
        rate = est.screen_rate
        if rate is None or est.min_rtt is None:
            return INITIAL_BUDGET
        return max(MIN_BUDGET, int(BUDGET_GAIN * rate * est.min_rtt)) + int(self.frame_size)

    def pacing_gain(self):
        """STARTUP_GAIN until the rate stops growing; then BBR's cycle, counted in frames (a frame
        may take longer than an RTT to send): one at 1.25 x the rate to find out whether the link
        got faster, one at 0.75 to drain what that queued, six at 1.0."""
        if self.startup:
            return STARTUP_GAIN
        return PACING_CYCLE[self._sent_count % len(PACING_CYCLE)]

    def can_send(self):
        """True when another frame may be sent now. A False is remembered: the next frame's
        samples then count as link-limited (they measure the link, not what the screen needed).
        Called before every frame: fewer bytes in flight than any budget (MIN_BUDGET) need no
        budget worked out."""
        est = self.estimator
        if not est.frames:
            return True
        capped = len(est.frames) >= self.max_frames or (est.in_flight >= MIN_BUDGET
                                                        and est.in_flight >= self.budget())
        now = self.clock()
        paced = now < self.next_send_at
        if capped or paced:
            self.held_at = now
        # Held back by pacing alone, the sender only went as fast as its own estimate (or as the
        # host could encode): such samples may raise the rate but not lower it. Only the in-flight
        # cap shows the link itself is full.
        self._blocked = self._blocked or capped
        return not (capped or paced)

    def wait_time(self):
        """Seconds until pacing lets the next frame go (0 when it is not pacing that holds it)."""
        return max(0.0, self.next_send_at - self.clock())

    def sent(self, frame_id, size):
        now, rate = self.clock(), self.estimator.screen_rate
        self.frame_size += FRAME_SIZE_WEIGHT * (size - self.frame_size)
        if rate:
            # pacing_gain(), inline: this runs for every frame
            gain = STARTUP_GAIN if self.startup else PACING_CYCLE[self._sent_count % len(PACING_CYCLE)]
            self.next_send_at = max(now, self.next_send_at) + size / (gain * rate)
        self.estimator.sent(frame_id, size, not self._blocked, now)
        if self._blocked and self.startup:
            self._capped_frames.add(frame_id)
        self._sent_count += 1
        self._blocked = False

    def acked(self, frame_id):
        sample = self.estimator.acked(frame_id)
        # Only a sample taken while the in-flight cap held frames back shows the link is full:
        # held back by pacing alone, the sender only went as fast as its own (maybe low) estimate.
        if frame_id in self._capped_frames:
            self._capped_frames.discard(frame_id)
            if self.startup:
                self._check_full_rate(sample.rate)
        if sample is not None:
            link = self.estimator.rate_filter.value     # link_rate, without the call
            if link != self.share.link_rate:    # only this thread publishes: no lock to read it
                self.share.publish(link)
        return sample

    def _check_full_rate(self, rate):
        """STARTUP ends after STARTUP_ROUNDS capped samples in a row without 25% more rate."""
        if rate >= 1.25 * self._full_rate:
            self._full_rate, self._flat_rounds = rate, 0
            return
        self._flat_rounds += 1
        self.startup = self._flat_rounds < STARTUP_ROUNDS

    def forget(self):
        self.estimator.forget()
        self._capped_frames.clear()
        self.next_send_at = 0.0

    @property
    def frames_in_flight(self):
        return len(self.estimator.frames)


@dataclass(frozen=True)
class Choice:
    quality: int
    scale: float            # 1.0 = full resolution; moving regions only


class QualityPolicy:
    """JPEG quality and scale for the moving part of a frame, from the measured rate.

    `choose` runs for every frame, so the ladder (with each rung's size ratio) is built once for
    the target quality and scaling it was built for, and the ideal rung is kept for the inputs it
    was found for (rate, pixels, learned bytes per pixel): the same inputs, the same answer,
    without a walk down the ladder. Choices are frozen: the same object may be handed out again."""

    def __init__(self, clock=time.monotonic, target_quality=75, target_fps=TARGET_FPS, can_scale=True):
        self.clock = clock
        self.can_scale = can_scale      # False: the peer cannot take scaled regions; quality only
        self.target_quality = target_quality
        self.target_fps = target_fps
        self.bpp75 = INITIAL_BPP        # learned bytes per pixel at quality 75
        self.current = Choice(target_quality, 1.0)
        self._raised_at = clock()
        self._rungs_for, self._rungs = None, ()     # (target quality, can scale) -> [(Choice, size ratio, scale)]
        self._ideal_for, self._ideal_choice = None, None    # (rate, pixels, bpp75, fps, rungs) -> _ideal's answer

    def encoded(self, quality, pixels, size):
        """The encoder turned `pixels` pixels into `size` bytes of JPEG at `quality`: learn."""
        if pixels <= 0 or size <= 0:
            return
        bpp = size / pixels / _size_ratio(quality)
        self.bpp75 += BPP_WEIGHT * (bpp - self.bpp75)

    def choose(self, rate, pixels):
        """The Choice for a frame whose lossy part covers `pixels` pixels, on a link measured at
        `rate` bytes/s (None: not measured yet -> the target quality, full scale)."""
        cur = self.current
        # Not measured (or no lossy part), the usual frame on a link with room: the wanted quality
        # at full scale, known without the ladder's walk when it is what the last frame had.
        if rate is None and cur.scale == 1.0 and cur.quality == self.target_quality:
            return cur
        wanted = self._ideal(rate, pixels)
        if (wanted.scale, wanted.quality) > (cur.scale, cur.quality):      # _rank, inline
            now = self.clock()
            if now - self._raised_at < RAISE_INTERVAL:
                wanted = cur             # hold: at most one step up per RAISE_INTERVAL
            else:
                wanted = _one_step_up(cur, wanted, _ladder(self.target_quality, self.can_scale))
                self._raised_at = now
        self.current = wanted
        return wanted

    def _ideal(self, rate, pixels):
        """The best choice on the ladder whose predicted size (_predict) fits rate / target_fps.
        The ladder, best first: full scale down to MOTION_MIN_QUALITY, the same qualities at half
        scale, then smaller scales at MOTION_MIN_QUALITY, then lower qualities at the smallest
        scale."""
        if self._rungs_for != (self.target_quality, self.can_scale):
            self._rungs_for = (self.target_quality, self.can_scale)
            self._rungs = [(c, _size_ratio(c.quality), c.scale) for c in _ladder(*self._rungs_for)]
        rungs = self._rungs
        if rate is None or pixels <= 0:
            return rungs[0][0]          # the target quality at full scale
        key = (rate, pixels, self.bpp75, self.target_fps, rungs)
        if key == self._ideal_for:
            return self._ideal_choice
        budget, bpp = rate / self.target_fps, self.bpp75
        for choice, ratio, scale in rungs:
            if bpp * ratio * pixels * scale * scale <= budget:     # _predict, inline (same arithmetic)
                break
        self._ideal_for, self._ideal_choice = key, choice
        return choice

    def _predict(self, quality, scale, pixels):
        return self.bpp75 * _size_ratio(quality) * pixels * scale * scale


def _size_ratio(quality):
    """JPEG bytes at `quality` relative to quality 75 (interpolated in JPEG_SIZE)."""
    points = sorted(JPEG_SIZE.items())
    if quality <= points[0][0]:
        return points[0][1]
    for (q0, r0), (q1, r1) in zip(points, points[1:]):
        if quality <= q1:
            return r0 + (r1 - r0) * (quality - q0) / (q1 - q0)
    return points[-1][1]


def _steps(top):
    """Qualities to try, best first: the wanted one, then the lower QUALITY_STEPS."""
    return [top] + [q for q in QUALITY_STEPS if q < top]


def _ladder(top, can_scale=True):
    steps = _steps(top)
    if not can_scale:
        return [Choice(q, 1.0) for q in steps]
    full = [q for q in steps if q >= min(MOTION_MIN_QUALITY, top)]
    ladder = [Choice(q, 1.0) for q in full]
    ladder += [Choice(q, SCALES[1]) for q in full]
    ladder += [Choice(full[-1], scale) for scale in SCALES[2:]]
    ladder += [Choice(q, SCALES[-1]) for q in steps if q < full[-1]]
    return ladder


def _rank(choice):
    """Order of choices from worst to best (the ladder is ordered this way): scale, then quality."""
    return (choice.scale, choice.quality)


def _one_step_up(cur, wanted, ladder):
    """The next rung of the ladder above `cur`, not past `wanted`: one step in bytes at a time
    (from half scale at quality 75 to full scale at quality 40, say, not to full scale at 75)."""
    above = [c for c in ladder if _rank(cur) < _rank(c) <= _rank(wanted)]
    return min(above, key=_rank) if above else wanted
