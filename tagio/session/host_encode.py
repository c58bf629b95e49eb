"""The host's encode thread: changed tiles -> Frame messages, and the JPEG quality they get.

Theory of operation. `HostEncode` is the part of HostSession (tagio.session.host) that runs on the
encode thread. For each job from the capture thread it merges the changed tiles into rectangles;
rows that moved up or down since the previous frame (a scroll, tagio.session.motion) become
ENC_COPY rectangles, sent first (the search pauses while it keeps finding nothing:
motion.SearchGate); the rest turns into fill / PNG / JPEG data (tagio.session.tiles),
packed into Frame messages (<= MAX_MESSAGE each, FINAL on the last). Regions last sent as JPEG
that stayed still come back as lossless refreshes.

A small frame (at most INLINE_AREA pixels to encode, no scroll search) is encoded on the capture
thread itself when the encode thread is idle: handing it over (a queue, a thread woken up) costs
more than encoding a 60x50 change, which is what a small animation or typing makes 60 times a
second. Frames still reach the send queue in the order they were captured (`_encode_job`). Such a
frame takes a short road: its rectangle goes from the grab to its bytes (tiles.encode_grab: no
scaling, no speed timing, which apply only from scaled.MIN_AREA pixels) and into one Frame
message (protocol.session.encode_frame); its Python calls are much of its cost.

JPEG quality adapts three ways: it drops when acks come back slowly and recovers towards the
requested quality (`_adapt_quality`, called for each ack); it drops while most of the screen keeps
changing (`_frame_quality`); and while flow control holds frames back it is capped where a frame
fits the measured rate (flow.QualityPolicy, `_policy_choice`; large moving photos at a reduced
scale when even low quality does not fit: tagio.session.scaled). While most of the screen keeps
changing, large moving photos also go at a reduced scale when this host cannot encode them at
full scale within half a frame interval (scaled.SpeedChoice, `_speed_scale`): the CPU, not the
link, is then what holds the frame rate down.
"""

import time

from tagio.protocol import session as m
from tagio.session import motion, scaled
from tagio.session import tiles as t

POLICY_HOLD = 1.0        # seconds after flow control last held a frame back that its rate sizes frames
SLOW_ACK = 0.25          # seconds: slower acks than this lower the JPEG quality
MIN_QUALITY = 30
MOTION_SHARE = 0.5       # at least this share of the screen changing in two frames in a row ...
MOTION_QUALITY_DROP = 20  # ... lowers JPEG quality by this much (75 -> 55: a 1080p photo ~280 KB -> ~160 KB)
ONE_PIECE = 4 * t.TILE * t.TILE   # changes of one grab within this many pixels are encoded as one
INLINE_AREA = 16 * t.TILE * t.TILE  # frames up to this many pixels are encoded on the capture thread


def _motion_quality(quality):
    """The JPEG quality while most of the screen keeps changing (HostEncode._frame_quality)."""
    return max(MIN_QUALITY, quality - MOTION_QUALITY_DROP)


def _bounding_box(rects):
    """(x, y, w, h) around pixel rectangles (x, y, w, h); at least one is given."""
    x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
    x1, y1 = max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects)
    return x0, y0, x1 - x0, y1 - y0


def _uncovered(rect, covered_rows):
    """The horizontal bands of `rect` whose rows are not in `covered_rows`."""
    x, y, w, h = rect
    bands, top = [], None
    for row in range(y, y + h + 1):
        free = row < y + h and row not in covered_rows
        if free and top is None:
            top = row
        elif not free and top is not None:
            bands.append((x, top, w, row - top))
            top = None
    return bands


def _changed_in(tiles, source, width, height):
    """The changed rectangles of one grabbed `source` (x, y, w, h): its dirty tiles merged, cut
    to the grab (a damage box need not be tile-aligned), and taken as one piece when they are
    close together and small."""
    if not tiles:       # a whole-screen grab that found nothing (sent for a lossless refresh)
        return []
    sx, sy, sw, sh = source
    if sw * sh <= ONE_PIECE:    # a small grab: its changes are one picture anyway
        c0, r0 = sx // t.TILE, sy // t.TILE
        if len(tiles) == ((sx + sw - 1) // t.TILE - c0 + 1) * ((sy + sh - 1) // t.TILE - r0 + 1):
            return [source]     # every tile it touches (a grab's tiles are among those): all of it
        cols, rows = [c for c, _r in tiles], [r for _c, r in tiles]
        around = (min(cols) * t.TILE, min(rows) * t.TILE, (max(cols) - min(cols) + 1) * t.TILE,
                  (max(rows) - min(rows) + 1) * t.TILE)
        return [t.clip_rect(around, source)]
    merged = t.merge_tiles(tiles, width, height)
    if source != (0, 0, width, height):
        merged = [part for part in (t.clip_rect(rect, source) for rect in merged) if part is not None]
    if len(merged) > 1:
        box = _bounding_box(merged)
        if box[2] * box[3] <= ONE_PIECE:    # one picture: each encode costs ~0.1 ms whatever its size
            return [box]
    return merged


class HostEncode:
    """The encode thread's half of HostSession (a mixin: the state lives on the session)."""

    # -- encode ------------------------------------------------------------------------------
    def _encode_loop(self):
        while True:
            job = self._workers.get(self._encode_q)
            if job is None or not self._encode_job(job):
                return

    def _encode_job(self, job):
        """Encode one frame and queue its messages for the send thread; False when stopping. Runs
        on the encode thread, or on the capture thread for a small frame while no other frame is
        queued or being encoded (`_encoding` counts those, under self._credit): frames reach the
        send queue in order either way, and only one thread at a time uses the encoder's state."""
        try:
            for data in self._encode_frame(*job):
                if not self._send_or_queue(data):
                    return False
            return True
        finally:
            with self._credit:
                self._encoding -= 1

    def _encode_frame(self, frame_id, captured, sources, stills, width, height, dirty_count):
        """The encoded Frame messages (bytes) of one captured frame."""
        choice = self._policy_choice(dirty_count)
        in_motion = self._in_motion(dirty_count, width, height)
        quality = min(_motion_quality(self.quality) if in_motion else self.quality, choice.quality)
        rects, copies, lossy_copies, scale = [], [], set(), choice.scale
        for raw, sx, sy, sw, sh, tiles, prev in sources:
            source = (sx, sy, sw, sh)
            changed = _changed_in(tiles, source, width, height)
            if prev is not None:            # a grab large enough for the scroll search
                changed = self._find_copies(copies, lossy_copies, raw, prev, source, changed)
            for x, y, w, h in changed:
                self._encode_moving(rects, raw, (sx, sy, sw), (x, y, w, h), quality, (width, height),
                                    self._speed_scale(scale, w * h) if in_motion else scale)
        for x, y, w, h, data in stills:     # lossless refresh of regions last sent as JPEG
            self._encode_rect(rects, t.region_image(data, w, 0, 0, w, h), (x, y), quality, True, (width, height))
        if lossy_copies:                    # copied JPEG pixels still want their lossless refresh
            with self._refresh_lock:
                self._refresh.sent(lossy_copies, True)
        self._learn_sizes(rects, quality)
        return self._pack_frames(frame_id, captured, copies + rects if copies else rects)

    def _encode_moving(self, rects, raw, source, rect, quality, screen, scale):
        """Encode the changed `rect` (x, y, w, h on the screen) of the grab `raw` of `source`
        (x, y, width); a JPEG of it (scaled or not) teaches the speed choice what it cost."""
        (sx, sy, sw), (x, y, w, h) = source, rect
        if w * h < scaled.MIN_AREA:     # the usual small change: never scaled, and not timed (it
            self._record(rects, t.encode_grab(raw, sw, (sx, sy), rect, quality), rect, False, screen)
            return                      # would teach SpeedChoice nothing)
        started, first = time.perf_counter(), len(rects)
        view = scaled.bgrx_view(raw, sw, x - sx, y - sy, w, h) if scale < 1.0 else None
        parts = scaled.encode_view(view, x, y, quality, scale) if view is not None else None
        if parts is not None:       # scaled straight from the grab: no full-size RGB copy
            self._record(rects, parts, (x, y, w, h), False, screen)
            self._speed.timed(w * h, time.perf_counter() - started, scale)
            return
        if view is not None:        # its probe found one or few colours: so would encode_region's
            scale = 1.0             # of the RGB picture (the same pixels), so do not ask it again
        img = t.region_image(raw, sw, x - sx, y - sy, w, h)
        self._encode_rect(rects, img, (x, y), quality, False, screen, scale)
        if all(r.encoding == m.ENC_JPEG for r in rects[first:]):
            self._speed.timed(w * h, time.perf_counter() - started)

    def _speed_scale(self, scale, pixels):
        """`scale` (the link's choice), or lower when this host cannot encode such a rectangle at
        full scale within its share of the frame interval (scaled.SpeedChoice); asked while the
        screen is in motion, and only for a viewer that takes scaled rectangles."""
        if not self._policy.can_scale:
            return scale
        return min(scale, self._speed.scale(pixels, 1.0 / self.fps_cap))

    def _encode_rect(self, rects, img, at, quality, lossless, screen, scale=1.0):
        """Encode `img` placed at `at` = (x, y) on a screen of size `screen` into `rects`; a large
        moving photo at a reduced `scale` when the policy asks (tagio.session.scaled)."""
        x, y = at
        parts = None if lossless or scale >= 1.0 else scaled.encode_region(img, x, y, quality, scale)
        parts = parts or t.encode_region(img, x, y, quality, lossless)
        self._record(rects, parts, (x, y, img.width, img.height), lossless, screen)

    def _record(self, rects, parts, rect, lossless, screen):
        """Add the encoded `parts` of `rect` (x, y, w, h) to `rects` and tell the refresh."""
        x, y, w, h = rect
        size, lossy = 0, False
        for part in parts:      # (one pass: usually a single part)
            rects.append(m.Rect(*part))
            size += len(part[5])
            lossy = lossy or part[4] in m.LOSSY_ENCODINGS
        if lossless:        # the top-off of still tiles (also teaches the refresh its cost)
            with self._refresh_lock:
                self._refresh.refreshed(t.rect_tiles(x, y, w, h), size)
            return
        # Lossy pixels anywhere in a tile make it wait for a lossless refresh; exact pixels clear
        # only the tiles they cover whole (a small change must not cancel a photo's refresh).
        tiles = (t.rect_tiles(x, y, w, h) if lossy
                 else t.covered_tiles(x, y, w, h, width=screen[0], height=screen[1]))
        with self._refresh_lock:
            self._refresh.sent(tiles, lossy, size)

    def _find_copies(self, copies, lossy_copies, raw, prev, source, changed):
        """The parts of the `changed` rectangles (screen coordinates) of one grabbed `source`
        (x, y, w, h) still to encode as pixels, after rows that are rows of the previous frame
        moved up or down went to `copies` (tagio.session.motion). The search covers the bounding
        box of the changes (a scrolling page changes tiles of uneven width); only rows of changed
        rectangles that no copy covers are left to encode."""
        sx, sy, sw, sh = source
        if prev is None or not changed:
            return changed
        box = _bounding_box(changed)
        if not motion.pays(box[3], sum(w * h for _x, _y, w, h in changed)) or not self._search_gate.open():
            return changed
        local = (box[0] - sx, box[1] - sy, box[2], box[3])
        grab_, region, hashes = self._row_hashes
        cached = hashes if grab_ is prev and region == local else None
        found = motion.detect(prev, raw, sw, sh, local, old_hashes=cached)
        self._row_hashes = (raw, local, found.hashes)       # raw becomes the next frame's prev
        self._search_gate.found(bool(found.copies))
        covered = set()
        for c in found.copies:
            src, dst = (c.src_x + sx, c.src_y + sy), (c.x + sx, c.y + sy)
            copies.append(m.copy_rect(*src, *dst, c.w, c.h))
            covered.update(range(dst[1], dst[1] + c.h))
            with self._refresh_lock:
                lossy = self._refresh.holds_lossy(t.rect_tiles(*src, c.w, c.h))
            if lossy:
                lossy_copies.update(t.rect_tiles(*dst, c.w, c.h))
        return [part for rect in changed for part in _uncovered(rect, covered)] if covered else changed

    def _policy_choice(self, dirty_tiles):
        """The quality and scale flow.QualityPolicy picks for this much change, while flow control
        is what holds frames back (otherwise the link has room: the wanted quality, full scale).
        No lock: `held_at` and the rate are single attributes that the threads replace whole (the
        estimator keeps its rate in WindowedFilter.value), and a rate one ack old sizes as well."""
        flow = self._flow
        rate = flow.estimator.rate if time.monotonic() - flow.held_at < POLICY_HOLD else None
        choice = self._policy.choose(rate, dirty_tiles * t.TILE * t.TILE)
        self.stats.update(policy_quality=choice.quality, policy_scale=choice.scale)
        return choice

    def _learn_sizes(self, rects, quality):
        # A plain loop: no comprehension or generator frames for a frame that (as most) has no
        # lossy rectangle at all. encoded() ignores an empty count as the lists did.
        pixels = size = 0
        for rect in rects:
            if rect.encoding in m.LOSSY_ENCODINGS:
                pixels += scaled.encoded_pixels(rect)
                size += len(rect.data)
        if size:
            self._policy.encoded(quality, pixels, size)

    def _frame_quality(self, dirty_tiles, width, height):
        """JPEG quality for this frame: lower while most of the screen keeps changing.

        Sustained full-screen motion (video, scrolling photos) hides detail, and the pixels are
        refreshed losslessly once they stand still, so spend fewer bytes per frame on it."""
        return _motion_quality(self.quality) if self._in_motion(dirty_tiles, width, height) else self.quality

    def _in_motion(self, dirty_tiles, width, height):
        """True when most of the screen changed in this frame and the one before (asked once per
        frame: it remembers this frame for the next)."""
        cols, rows = -(-width // t.TILE), -(-height // t.TILE)     # t.tile_grid, without a call
        moving = dirty_tiles >= MOTION_SHARE * cols * rows
        in_motion, self._moving = moving and self._moving, moving
        return in_motion

    def _pack_frames(self, frame_id, captured, rects):
        """The encoded Frame messages (bytes) of these rectangles: as many as MAX_MESSAGE needs,
        FINAL on the last. One rectangle (a small change) is always one message."""
        if len(rects) == 1:
            return [m.encode_frame(frame_id, m.FINAL, captured, self._latency_ms, rects)]
        messages, batch, size = [], [], 0
        for rect in rects:
            cost = len(rect.data) + 16
            if batch and (size + cost > m.MAX_MESSAGE - 64 or len(batch) >= m.MAX_RECTS):
                messages.append(m.encode_frame(frame_id, 0, captured, self._latency_ms, batch))
                batch, size = [], 0
            batch.append(rect)
            size += cost
        messages.append(m.encode_frame(frame_id, m.FINAL, captured, self._latency_ms, batch))
        return messages

    def _link_rate(self):
        """The measured delivery rate (bytes/s, None before the first ack): the lossless top-off's
        budget (a 1080p photo sent as PNG is megabytes: seconds on a 5 Mbit/s link). No lock: one
        attribute the receive thread replaces whole (see _policy_choice)."""
        return self._flow.estimator.rate

    def _adapt_quality(self, elapsed):
        # Slow acks mean the link (or the viewer) cannot keep up: trade quality for frame rate.
        if elapsed > SLOW_ACK:
            self.quality = max(MIN_QUALITY, self.quality - 10)
        elif self.quality < self.target_quality:
            self.quality += 1
        self.stats["quality"] = self.quality

