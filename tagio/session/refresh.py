"""Lossless top-off: tiles last sent lossy (JPEG, or JPEG at a reduced scale) are sent again
losslessly once they stay still, as soon as the link has room for them (pure logic, injected clock).

Theory of operation. Moving content goes out as JPEG, at a quality (and, on a slow link, a scale)
that flow.QualityPolicy sizes to the measured rate: that keeps the picture moving, but leaves
artefacts where the motion stops. So the host remembers every tile it last sent lossy (`sent`),
and a tile that has not changed for STILL_AFTER seconds is handed back by `due` for a lossless
resend (PNG). Text and UI never need it: few-colour content is PNG from the start.

How fast the top-off goes is a byte budget, a token bucket refilled from the delivery rate the flow
controller measures (flow.DeliveryEstimator):

  room    the bucket fills at what the live picture leaves of the rate (HEADROOM x rate minus the
          live picture's own bytes per second, which `sent` measures with an exponential average
          over LIVE_TAU), and never slower than FLOOR x rate. On a link with room, a region that
          stops moving gets its lossless version STILL_AFTER (~150 ms) later, plus its own
          serialization; on a full link the top-off is spread over time at the FLOOR share, so it
          always finishes, and the live picture keeps the rest.
  burst   the bucket holds at most BURST seconds of the rate: one frame's top-off adds at most
          that much serialization in front of the next change (a 1080p photo as PNG is megabytes:
          seconds on a 5 Mbit/s link if it went in one piece). The tiles a frame takes may
          overdraw the bucket by one tile; the debt is paid before the next ones go.
  cost    a tile's cost is the lossless bytes per tile the last top-offs came to (`refreshed`
          teaches it; photo-like PNG to begin with, the only content ever sent lossy).
  lazily  `due` runs for every frame, and in most frames nothing lossy waits (text and UI are
          never lossy): then it returns at once, and the bucket is refilled the next time a tile
          waits, for the whole time since (at the rate and live picture of then; the bucket holds
          at most BURST, which FLOOR x rate fills in a third of a second, so a bucket refilled in
          one step and one refilled frame by frame differ only right after a top-off). Tiles that
          wait but none of which has been still for STILL_AFTER (a moving photo) refill the bucket
          and return without sorting anything.

Tiles go oldest first (then top to bottom, left to right, so they merge into few rectangles). A
tile handed out by `due` is out for delivery until the encoder reports it (`refreshed`, or `sent`
again if it changed meanwhile); `put_back` returns tiles the caller could not send after all (a
notice is drawn over them). `holds_lossy` answers for both waiting and handed-out tiles: the viewer
has their lossy pixels until the top-off lands, and a Copy of them carries the loss along.

Before the rate is measured (`rate` None) every due tile goes at once, as before this budget.
All times are seconds from the injected clock; rates are bytes/s; tiles are (column, row).
"""

import time
from math import exp

STILL_AFTER = 0.15       # seconds a lossy tile must stay unchanged before its lossless version goes
HEADROOM = 0.9           # share of the measured rate the live picture and the top-off may use together
FLOOR = 0.15             # share of the rate the top-off always gets, however busy the live picture is
BURST = 0.05             # seconds of the rate the bucket holds: the most one frame's top-off adds
LIVE_TAU = 0.5           # seconds: time constant of the live picture's average bytes per second
INITIAL_TILE_COST = 64 * 64 * 2     # bytes: a 64x64 photo-like tile as PNG, before one was measured
COST_WEIGHT = 0.3        # weight of a new observation in the average cost per tile


class StillRefresh:
    """Tiles waiting for their lossless version, and the byte budget that lets them go."""

    def __init__(self, clock=time.monotonic, still_after=STILL_AFTER):
        self.clock = clock
        self.still_after = still_after
        self.lossy = {}             # tile -> when it was last sent lossy (waiting for the top-off)
        self.out = {}               # tile -> its time in `lossy`: handed out by due(), not yet reported
        self.tile_cost = float(INITIAL_TILE_COST)
        self.tokens = 0.0           # bytes the top-off may still send (negative: debt)
        self._filled_at = clock()
        self._live_bytes = 0.0      # exponentially decayed bytes of the live picture
        self._live_at = self._filled_at

    # -- what the encoder reports ----------------------------------------------------------------
    def sent(self, tiles, lossy, size=0):
        """The live picture sent `tiles` (`size` bytes): lossy ones wait for the top-off, lossless
        ones need none."""
        now = self.clock()
        # _count_live, inline: this runs for every frame (_decayed without max() and a call)
        elapsed = now - self._live_at
        self._live_bytes = (self._live_bytes * exp(-elapsed / LIVE_TAU) if elapsed > 0.0 else self._live_bytes) + size
        self._live_at = now
        if not (lossy or self.lossy or self.out):
            return                      # lossless over a picture with nothing lossy: nothing to clear
        for tile in tiles:
            self.out.pop(tile, None)
            if lossy:
                self.lossy[tile] = now
            else:
                self.lossy.pop(tile, None)

    def refreshed(self, tiles, size):
        """The lossless top-off of `tiles` came to `size` bytes: they are done; learn the cost."""
        tiles = set(tiles)
        for tile in tiles:
            self.out.pop(tile, None)
            self.lossy.pop(tile, None)
        if tiles and size > 0:
            self.tile_cost += COST_WEIGHT * (size / len(tiles) - self.tile_cost)

    # -- what the capture asks -------------------------------------------------------------------
    def due(self, rate=None, skip=()):
        """Tiles whose lossless version may go now: still for `still_after`, not in `skip` (changed
        in this frame: they go anyway), oldest first, as many as the budget holds. `rate` is the
        measured delivery rate in bytes/s (None: not measured, no budget)."""
        if not self.lossy:
            return set()                # nothing waits (the usual frame): no budget to work out
        now = self.clock()
        budget = self._refill(now, rate)
        limit = now - self.still_after
        if min(self.lossy.values()) > limit:
            return set()                # none has been still long enough yet (a moving picture)
        waiting = [(when, tile[1], tile[0]) for tile, when in self.lossy.items()
                   if when <= limit and tile not in skip]
        picked = set()
        for _when, row, col in sorted(waiting):
            if budget is not None and self.tokens <= 0:
                break
            picked.add((col, row))
            if budget is not None:
                self.tokens -= self.tile_cost
        for tile in picked:
            self.out[tile] = self.lossy.pop(tile)
        return picked

    def put_back(self, tiles):
        """Tiles due() handed out that did not go after all: they wait again in their place, and
        their budget is given back."""
        for tile in tiles:
            if tile in self.out:
                self.lossy[tile] = self.out.pop(tile)
                self.tokens += self.tile_cost

    def holds_lossy(self, tiles):
        """True when the viewer holds lossy pixels in any of `tiles` (waiting or handed out)."""
        return any(tile in self.lossy or tile in self.out for tile in tiles)

    def reset(self):
        """A new picture (monitor switch): nothing is lossy any more."""
        self.lossy.clear()
        self.out.clear()

    # -- the budget ------------------------------------------------------------------------------
    def live_rate(self, now=None):
        """The live picture's bytes per second (exponential average over LIVE_TAU)."""
        now = self.clock() if now is None else now
        return self._decayed(now) / LIVE_TAU

    def _decayed(self, now):
        return self._live_bytes * exp(-max(0.0, now - self._live_at) / LIVE_TAU)

    def _refill(self, now, rate):
        """Add what the link had room for since the last call; the bucket size, or None without
        a measured rate."""
        elapsed, self._filled_at = max(0.0, now - self._filled_at), now
        if not rate:
            self.tokens = 0.0
            return None
        share = max(FLOOR * rate, HEADROOM * rate - self.live_rate(now))
        size = rate * BURST
        self.tokens = min(size, self.tokens + share * elapsed)
        return size
