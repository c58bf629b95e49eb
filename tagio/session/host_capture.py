"""The host's capture thread: the screen -> changed tiles, paced by flow control and the fps cap.

Theory of operation. `HostCapture` is the part of HostSession (tagio.session.host) that runs on the
capture thread. Each round it

  1. waits until flow control (tagio.session.flow: paced at the measured delivery rate, about one
     bandwidth-delay product in flight, at most MAX_IN_FLIGHT frames) lets a frame go;
  2. paces to the fps cap on a fixed time grid (`next_tick`), and with X damage reports waits for
     the server to draw something;
  3. grabs with mss and finds changed 64x64 tiles. Where the X server reports damage
     (tagio.session.damage) only the damaged tiles are grabbed and compared with the host's screen
     copy (a 200x100 change: ~0.1 ms instead of ~2 ms for a whole 1080p grab and compare);
     elsewhere, and every FULL_POLL seconds as a safety net (a change the reports missed is
     found within FULL_POLL and one frame), the whole monitor is grabbed and compared in place
     with the screen copy (through MIT-SHM: in the shared segment), and only what differs is
     copied out. On Windows a scanline poll (capture_win32.ScanProbe, whose docstring gives how soon
     it sees a change) plays the part of X damage, with a safety sweep of its own instead of the
     whole-screen grab, and the tiles that changed lately are grabbed at every frame or with
     each scan (tiles.RecentChanges);
  4. queues one encode job: the changed grabs plus the tiles due for their lossless refresh.
     Nothing changed and nothing to refresh -> no frame (idle; after IDLE_AFTER it polls at
     IDLE_FPS only).

It also sends Cursor when the pointer moved, switches monitors (after every frame of the old one
is acknowledged, then Hello and MonitorList), and where a grab failure is passing (Windows: a UAC
prompt or the lock screen has the input desktop) pauses the picture with a notice drawn over it;
a full picture follows once capture works again. Elsewhere (the X server went away) the failure
ends the session.
"""

import time

from PIL import Image

from tagio.errors import ConfigError
from tagio.protocol import session as m
from tagio.session import capture_win32 as win
from tagio.session import cursor_win32
from tagio.session import motion
from tagio.session import tiles as t
from tagio.session.cursor import CursorProbe, CursorTracker
from tagio.session.damage import DamageProbe
from tagio.session.host_encode import INLINE_AREA
from tagio.session.xshm import Grabber

MAX_IN_FLIGHT = 32       # frames unacknowledged at most; the bytes in flight follow the link (flow.py)
MAX_UNSENT = 2           # frames captured but not yet handed to the channel (one encoding, one next)
IDLE_AFTER = 1.0         # seconds without any change before capture slows down ...
IDLE_FPS = 10            # ... to this many polls per second
FULL_POLL = 1.0          # seconds between whole-screen grabs when X damage events guide capture
                         # (a polled screen has its own safety sweep: capture_win32.SWEEP_SECONDS)
ALL_MONITORS = 0         # SelectMonitor index: every monitor as one picture (mss's monitors[0])
SECURE_CHECK = 1.0       # seconds between checks of the input desktop (Windows)
HOT_SLACK = 2.0          # the hot tiles of a polled screen are grabbed as one box up to this much larger
ON_GRID = 0.0005         # seconds after its tick a capture still counts as on the grid
NAP_MAX = 0.1            # pacing sleeps up to this long do not watch the stop Event
DRAIN_AFTER = 0.05       # seconds of waiting for flow control before damage reports are read
                         # (a pacing wait of a few ms leaves them to the next look: no recv)
WHOLE_SHARE = 0.25       # a whole-screen grab that changed more of the tiles than this is kept
                         # whole (one copy out of the grab), less is copied out as rectangles


def next_tick(tick, fps, clock, sleep):
    """The next capture tick on a 1/fps grid after `tick`, sleeping (`sleep(seconds)`) until then;
    `clock()` now when the grid is already behind by a whole interval (then a new grid starts)."""
    target = tick + 1.0 / fps
    now = clock()
    if target <= now - 1.0 / fps:
        return now
    if target > now:
        sleep(target - now)
    return target


def pace_tick(tick, fps, clock, sleep, wait_drawn=None):
    """The next capture time: the next tick on the 1/fps grid (next_tick), then, with damage
    reports (`wait_drawn(timeout) -> bool`, at once when something is already drawn), up to one
    more interval until the server draws. Drawing already there, or within ON_GRID of the tick,
    keeps the grid (a wake-up a fraction of a millisecond late must not shift it); drawing that
    came later starts the grid anew at its time. One wait per frame: each costs a system call."""
    if wait_drawn is None:
        return next_tick(tick, fps, clock, sleep)
    return pace_drawing(tick, fps, clock, sleep, wait_drawn)[0]


def pace_drawing(tick, fps, clock, sleep, wait_drawn, early=False):
    """pace_tick with damage reports -> (capture time, whether the drawing came ON_GRID or more
    after the tick).

    `early`: the last drawing came after its tick, and the next one likely will too (the
    application's timer runs slower than the grid). Then the wait for the drawing starts now
    instead of after a sleep to the tick: the thread wakes once a frame, at the drawing, instead
    of at the tick and again at the drawing. Drawing that comes before the tick still waits for
    the tick (a sleep), so the capture times are the same either way."""
    interval = 1.0 / fps
    if not early:
        tick = next_tick(tick, fps, clock, sleep)
        start = clock()
        wait_drawn(tick + interval - start)
        now = clock()
        return (tick if now - tick < ON_GRID else now), now - start >= ON_GRID
    target, now = tick + interval, clock()
    if target <= now - interval:
        target = now                # behind by a whole interval: a new grid (as next_tick)
    wait_drawn(target + interval - now)
    now = clock()
    if now < target:                # drawn before the tick: capture at the tick all the same
        sleep(target - now)
        return target, False
    late = now - target >= ON_GRID
    return (now if late else target), late


def grab(sct, box):
    """The BGRX bytes of `box`. A failing grab (mss raises even a bare AssertionError when the X
    server has gone away) is a ConfigError: one clear message, not an 'internal error'."""
    try:
        return sct.grab(box).raw
    except Exception as exc:    # whatever the capture library raises, the screen is out of reach
        raise _stopped(exc) from exc


def _stopped(exc):
    return ConfigError(f"screen capture stopped: {exc!r}")


def peek(sct, box):
    """The BGRX pixels of `box` to compare in place and drop: a grabber that can lend them
    (xshm.Grabber.peek) gives a memoryview that the next grab overwrites, others a fresh grab.
    ConfigError as grab()."""
    return _peeker(sct)(box)


def _peeker(sct):
    """peek() bound to `sct` once: a polled screen's scanlines are many grabs a frame."""
    lend = getattr(sct, "peek", None) or (lambda box: sct.grab(box).raw)

    def look(box):
        try:
            return lend(box)
        except Exception as exc:    # as grab()
            raise _stopped(exc) from exc
    return look



def _kept(pixels, start, end):
    """Bytes [start, end) of a grab for the encoder to keep: copied out of lent grab memory
    (peek), else the grab's own buffer, cut without a copy."""
    if isinstance(pixels, memoryview):
        return bytes(pixels[start:end])
    return pixels if start == 0 and end == len(pixels) else memoryview(pixels)[start:end]


def _every_tile(boxes, screen):
    """Do the boxes touch every tile of the screen? Then one whole grab, compared band by band
    and kept without a copy, is cheaper than grabbing and walking them row by row (a full-screen
    terminal that scrolls damages all of it but its border)."""
    cols, rows = t.tile_grid(screen.width, screen.height)
    if len(boxes) == 1:         # the usual frame: one rectangle touches every tile when it
        x, y, w, h = boxes[0]   # reaches into the four corner tiles
        return (x < t.TILE and y < t.TILE and x + w > (cols - 1) * t.TILE
                and y + h > (rows - 1) * t.TILE)
    if not boxes or (min(b[0] for b in boxes) >= t.TILE or min(b[1] for b in boxes) >= t.TILE
                     or max(b[0] + b[2] for b in boxes) <= (cols - 1) * t.TILE
                     or max(b[1] + b[3] for b in boxes) <= (rows - 1) * t.TILE):
        return False            # they miss a corner tile: no need to count (the usual case)
    return len(t.rects_tiles(boxes, screen.width, screen.height)) == cols * rows


def _damaged_boxes(mon, rects):
    """The boxes to grab for damage `rects` (desktop coordinates), or None when they touch every
    tile (_every_tile: grab the whole screen instead)."""
    if not rects:
        return rects            # nothing drawn: the usual look between two frames of an animation
    screen, box = mon["screen"], mon["box"]
    left, top = box["left"], box["top"]
    if left or top:
        rects = [(x - left, y - top, w, h) for x, y, w, h in rects]
    boxes = t.damage_boxes(rects, screen.width, screen.height)
    return None if _every_tile(boxes, screen) else boxes


def _hot_boxes(mon, rects):
    """_fewer_boxes(rects), worked out again only when RecentChanges.rects gave a new list (it
    hands out the same list while the hot tiles stay the same: the usual frame)."""
    last = mon.get("hot_boxes")
    if last is None or last[0] is not rects:
        last = mon["hot_boxes"] = (rects, _fewer_boxes(rects))
    return last[1]


def _fewer_boxes(rects):
    """One box around `rects` when it is at most HOT_SLACK times their area, else `rects`: each grab
    (a round trip, a compare, a picture to encode) costs more than the still pixels it adds (the
    hot tiles of a small animation are two or three rectangles next to each other)."""
    if len(rects) < 2:
        return rects
    x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
    x1, y1 = max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects)
    if (x1 - x0) * (y1 - y0) > HOT_SLACK * sum(r[2] * r[3] for r in rects):
        return rects
    return [(x0, y0, x1 - x0, y1 - y0)]


class HostCapture:
    """The capture thread's half of HostSession (a mixin: the state lives on the session)."""

    _drawn_late = False     # _pace: the last capture's drawing came after its tick

    # -- capture -----------------------------------------------------------------------------
    def _capture_loop(self):
        Image.core.set_blocks_max(16)    # measured: 11 ms -> 2 ms per 1080p image (no page faults)
        kwargs = {"display": self.display} if self.display else {}
        probe = CursorProbe.open(self.display) or cursor_win32.Win32CursorProbe.open()
        if probe is not None:
            self._cursor = CursorTracker(probe.position, probe.shape)
        elif self._injector is not None:
            self._cursor = CursorTracker(self._injector.pointer_absolute)
        damage = DamageProbe.open(self.display)
        self._secure = self._secure or win.SecureDesktop.open()
        win.capture_blt_off()           # Windows: no pointer flicker on the host (a no-op elsewhere)
        try:
            with self._grabber(kwargs) as sct:
                if damage is None and self.scan_for_changes:
                    damage = win.ScanProbe(_peeker(sct))   # scanlines compared in place
                self._capture_with(sct, damage)
        finally:
            for opened in (probe, damage):
                if opened is not None:
                    opened.close()

    def _grabber(self, kwargs):
        try:
            if self._grabber_factory is not None:
                return self._grabber_factory(**kwargs)
            import mss      # lazy: importing is cheap, but the grabber needs the display at open time
            return Grabber.open(mss.MSS(**kwargs), kwargs.get("display"))     # X11: MIT-SHM by hand
        except Exception as exc:    # no display, no X server, no permission: a setup problem, said once
            where = kwargs.get("display") or "this display"
            raise ConfigError(f"cannot capture the screen of {where}: {exc}") from exc

    def _capture_with(self, sct, damage=None):
        mon = self._watch(damage, self._switch_monitor(sct, self._monitor_wanted))
        self._frame_id, tick, changed_at = 0, 0.0, time.monotonic()
        stopping, switch, clock = self._workers.stopping, self._monitor_switch, time.monotonic
        while not stopping.is_set():
            if switch.is_set():
                mon = self._watch(damage, self._next_monitor(sct, damage))
                if mon is None:
                    return
            if not self._wait_credit(damage):
                return
            tick = self._pace(tick, damage, idle=tick - changed_at > IDLE_AFTER)
            captured = clock()
            if self._cursor is not None and self._send_cursor(captured):
                changed_at = tick       # a moving pointer keeps the full frame rate
            try:
                if self._secure is not None:        # Windows only: a call saved elsewhere
                    self._check_desktop(captured)
                sources = self._grab_changes(sct, mon, damage, captured)
            except ConfigError as exc:
                if not self.pause_on_grab_failure:
                    raise
                mon = self._watch(damage, self._pause(sct, mon, damage, exc))
                if mon is None:
                    return
                continue
            dirty = sources[0][5] if len(sources) == 1 else set().union(*(src[5] for src in sources))
            if self._notice is not None and not self._show_notice(mon, captured):
                return
            # Lossless top-off, budgeted by the measured rate (refresh.py). Nothing lossy waits in
            # the usual frame: then no rate, no lock, no budget. Read without the lock: a tile the
            # encoder adds meanwhile is not due before STILL_AFTER anyway.
            if self._refresh.lossy:
                rate = self._link_rate()
                with self._refresh_lock:
                    picked = self._refresh.due(rate, skip=dirty)
                    due = self._notice_hold.filter(picked, captured)
                    if due is not picked:       # the notice holds some back (or brings its own)
                        self._refresh.put_back(picked - due)
            else:
                due = self._notice_hold.filter((), captured)    # the notice's tiles once it ends
            if not dirty and not due:
                continue
            changed_at = tick
            screen = mon["screen"]
            stills = [(x, y, w, h, screen.region(x, y, w, h))
                      for x, y, w, h in t.merge_tiles(due, screen.width, screen.height)] if due else []
            if not self._emit(captured, sources, stills, screen, len(dirty)):
                return

    def _emit(self, captured, sources, stills, screen, dirty_count):
        """Queue one frame for the encoder, or encode it here when it is small and the encoder
        idle (host_encode); False when stopping."""
        self._frame_id += 1
        job = (self._frame_id, captured, sources, stills, screen.width, screen.height, dirty_count)
        small = not stills and (sources[0][3] * sources[0][4] if len(sources) == 1 else
                                sum(src[3] * src[4] for src in sources)) <= INLINE_AREA
        credit = self._credit
        credit.acquire()        # (as in _wait_credit: not Condition's own `with`)
        try:
            self._in_flight[self._frame_id] = captured
            self._unsent += 1
            inline = small and self._encoding == 0     # the encoder is idle: no frame can overtake
            self._encoding += 1
        finally:
            credit.release()
        if inline:
            return self._encode_job(job)
        return self._workers.put(self._encode_q, job)

    def _show_notice(self, mon, now):
        """Keep the pending notice over the top of the viewer's picture for a while; False when
        stopping."""
        text, self._notice = self._notice, None
        tiles = self._draw_notice(mon, text, now)
        if tiles is None:
            return False
        self._notice_hold.start(tiles, now)
        return True

    def _draw_notice(self, mon, text, now):
        """Queue a frame with `text` drawn over the top of the last picture: its tiles, or None when
        stopping. The host's copy of the screen keeps the real pixels."""
        screen = mon["screen"]
        band, band_h = win.notice_band(screen.buf, screen.width, screen.height, text)
        tiles = t.rects_tiles([(0, 0, screen.width, band_h)], screen.width, screen.height)
        if not self._emit(now, [(band, 0, 0, screen.width, band_h, tiles, None)], [], screen, 0):
            return None
        return tiles

    @staticmethod
    def _watch(damage, mon):
        """Tell a polling change source which monitor (and screen copy) to compare with."""
        if mon is not None and hasattr(damage, "watch"):
            damage.watch(mon)
        return mon

    # -- pause (the secure desktop on Windows) --------------------------------------------------
    def _check_desktop(self, now):
        """Windows, once a second: is a UAC prompt or the lock screen up? Some systems hand out a
        black picture then instead of failing the grab. Raises ConfigError to pause."""
        if self._secure is None or now < self._secure_at:
            return
        self._secure_at = now + SECURE_CHECK
        if self._secure.active():
            raise ConfigError("the input desktop is the secure desktop (UAC prompt or lock screen)")

    def _capture_works(self, sct, probe):
        try:
            grab(sct, probe)
        except ConfigError:
            return False
        return self._secure is None or not self._secure.active()

    def _pause(self, sct, mon, damage, exc):
        """Capture failed for a passing reason: show the notice over the last picture, wait until a
        grab works again, then start the monitor afresh (Hello + a full picture). None when stopping."""
        self.paused = True
        self.on_event("capture_paused", reason=win.PAUSE_NOTICE, error=str(exc))
        if self._draw_notice(mon, win.PAUSE_NOTICE, time.monotonic()) is None:
            return None
        probe = {k: mon["box"][k] for k in ("left", "top")} | {"width": 1, "height": 1}
        while not self._workers.stopping.wait(self.pause_retry):
            if not self._capture_works(sct, probe):
                continue
            if not self._wait_credit(damage, below=1):   # the notice frame reaches the viewer first
                return None
            self.paused = False
            self.on_event("capture_resumed")
            return self._switch_monitor(sct, self._monitor_wanted)
        return None

    def _grab_changes(self, sct, mon, damage, now):
        """Grab what may have changed -> [(raw, x, y, w, h, dirty tiles, prev)], one per grabbed
        rectangle that holds a change. `raw` is a fresh buffer the encoder may read while we capture
        on; `prev` the same rectangle's pixels before (None: not worth a scroll search). A screen
        polled by scanlines has the tiles that changed lately grabbed first, at every frame or
        with each scan (tiles.RecentChanges), then asks the scan (which keeps its own rate and
        safety sweep: capture_win32.ScanProbe) what changed elsewhere; it is grabbed whole only
        the first time. With X damage the whole screen is grabbed every FULL_POLL seconds as a
        safety net (_grab_whole: compared in place, so a change the reports missed is found
        within FULL_POLL and a frame, and finding none costs no copy)."""
        screen = mon["screen"]
        polled, first = isinstance(damage, win.ScanProbe), screen.buf is None
        due = first or (not polled and now >= mon["full_at"])
        sources = []
        if polled and not due:      # lately changed tiles: every frame, or with the scan (RecentChanges)
            hot_rects = mon["hot"].rects(screen.width, screen.height, known=damage.due())
            sources = self._grab_boxes(sct, mon, _hot_boxes(mon, hot_rects), hot=True)
        rects = damage.collect() if damage is not None else None
        boxes = None if first or rects is None else _damaged_boxes(mon, rects)
        if boxes:
            sources += self._grab_boxes(sct, mon, boxes)
        if boxes is None or due:    # no damage reports, first grab, safety grab, everything changed
            mon["full_at"] = now + FULL_POLL
            sources += self._grab_whole(sct, mon)   # (after the boxes: it finds only what they missed)
        if polled and sources and not first:   # the first grab "changes" every tile
            mon["hot"].changed(set().union(*(source[5] for source in sources)))
        return sources

    @staticmethod
    def _grab_whole(sct, mon):
        """Grab the whole monitor and compare it with the screen copy in place (peek: through
        MIT-SHM the shared segment itself) -> the sources that hold a change. The safety grab of
        a screen X damage guides usually finds nothing new: that costs the server's copy into
        the segment and a memcmp here (~1 ms for 1080p), not an 8 MB copy into fresh memory plus
        a copy-on-write of the screen copy (~5 ms, once a second). A few changed tiles are
        copied out as rectangles (written into the copy like damage boxes); a change of more
        than WHOLE_SHARE of the screen, or the first grab, is copied whole and taken as the
        copy (ScreenCopy.replace, no copy-on-write)."""
        screen = mon["screen"]
        pixels = peek(sct, mon["box"])
        dirty = screen.compare(pixels)
        cols, rows = t.tile_grid(screen.width, screen.height)
        if len(dirty) > WHOLE_SHARE * cols * rows:
            raw = bytes(pixels) if isinstance(pixels, memoryview) else pixels
            prev = screen.buf                   # replace() never changes the old buffer
            return [(raw, 0, 0, screen.width, screen.height, screen.replace(raw, dirty), prev)]
        sources = []
        for x, y, w, h in t.merge_tiles(dirty, screen.width, screen.height):
            raw = t.region_bytes(pixels, screen.width, x, y, w, h)
            prev = screen.region(x, y, w, h) if motion.pays(h, w * h) else None
            sources.append((raw, x, y, w, h, screen.update(x, y, w, h, raw), prev))
        return sources

    @staticmethod
    def _grab_boxes(sct, mon, boxes, hot=False):
        """Grab each box (x, y, w, h on the monitor) and compare it with the screen copy: the
        sources that hold a change. Boxes of lately changed tiles (`hot`, mostly still around a
        small animation) are compared tile by tile and cut to the rows that changed: the tiles
        found also keep them hot, so they must be the changed ones. A small box (a typical
        damage box) is compared coarsely and cut the same way (ScreenCopy.update_small). The
        grab is compared where it lies (peek: in the shared segment through MIT-SHM) and only
        the rows that changed are copied out for the encoder."""
        screen, box, sources, look = mon["screen"], mon["box"], [], _peeker(sct)
        left, top = box["left"], box["top"]
        for x, y, w, h in boxes:
            pixels = look({"left": left + x, "top": top + y, "width": w, "height": h})
            pays = motion.pays(h, w * h)
            prev = screen.region(x, y, w, h) if pays else None     # for scroll search
            if w * h <= t.COARSE_AREA:
                dirty, rows = screen.update_small(x, y, w, h, pixels)
            elif hot:
                dirty, rows = screen.update_rows(x, y, w, h, pixels)
            else:
                dirty, rows = screen.update(x, y, w, h, pixels), None
            if not dirty:
                continue
            first, end = rows or (0, h)
            raw = _kept(pixels, first * w * 4, end * w * 4)
            if end - first != h:        # cut to the rows that changed
                y, h = y + first, end - first
                if pays:
                    prev = prev[first * w * 4:end * w * 4] if motion.pays(h, w * h) else None
            sources.append((raw, x, y, w, h, dirty, prev))
        return sources

    def _next_monitor(self, sct, damage=None):
        """Switch to the monitor asked for once every frame of the old one is acknowledged (None
        when stopping). Until then some may still wait in the encode or send queue and would reach
        the viewer after the new Hello: drawn on the wrong screen, or outside a smaller one (which
        ends the session)."""
        if not self._wait_credit(damage, below=1):
            return None
        self._monitor_switch.clear()
        return self._switch_monitor(sct, self._monitor_wanted)

    def _switch_monitor(self, sct, index):
        """Capture monitor `index` from now on: 1.. as in mss, ALL_MONITORS (0) for mss's monitors[0],
        the bounding box of every monitor as one picture; an index that does not exist means 1.
        The injector and the cursor take the box's top-left as their origin, so a viewer's (x, y)
        in the picture lands on the same desktop pixel whichever box is shown."""
        monitors = sct.monitors[1:] or sct.monitors[:1]
        if index == ALL_MONITORS and sct.monitors:
            mon = sct.monitors[0]
        else:
            index = index if 1 <= index <= len(monitors) else 1
            mon = monitors[index - 1]
        box = {k: mon[k] for k in ("left", "top", "width", "height")}
        if self._injector is not None:
            self._injector.set_monitor(box["left"], box["top"], box["width"], box["height"])
        if self._cursor is not None:
            self._cursor.origin = (box["left"], box["top"])
            self._cursor.reset()
        self._monitor_wanted = index
        with self._refresh_lock:
            self._refresh.reset()
        flags = (m.HELLO_VIEW_ONLY if self.view_only else m.HELLO_INPUT)
        self._queue(m.Hello(m.SESSION_VERSION, flags, box["width"], box["height"], index, self._capabilities()))
        listing = [(x["left"], x["top"], x["width"], x["height"]) for x in monitors[:m.MAX_MONITORS]]
        self._queue(m.MonitorList(index, listing))
        self.on_event("monitor", index=index, width=box["width"], height=box["height"])
        screen = t.ScreenCopy(box["width"], box["height"])
        return {"index": index, "box": box, "screen": screen, "full_at": 0.0, "hot": t.RecentChanges()}

    def _wait_credit(self, damage=None, below=None):
        """Wait until flow control lets another frame go (or, with `below`, until fewer than `below`
        frames are unacknowledged); False when stopping. Nothing unacknowledged (the usual case on
        a fast link) needs no word from flow control: it never holds back the first frame, and
        is seen without taking the lock (the caller has just looked at the stop Event)."""
        if below is None and not self._in_flight and self._unsent < MAX_UNSENT:
            return True     # without the lock: only this thread adds frames, so this stays true
        credit, drain_at = self._credit, time.monotonic() + DRAIN_AFTER
        while True:
            credit.acquire()    # (Condition's `with` is a Python call around the lock's own)
            try:
                if self._workers.stopping.is_set():
                    return False
                in_flight = len(self._in_flight)
                if below is not None:
                    if in_flight < below:
                        return True
                elif self._unsent < MAX_UNSENT and (
                        not in_flight or in_flight < MAX_IN_FLIGHT and self._flow.can_send()):
                    return True
                credit.wait(self._flow.wait_time() or 0.1)     # pacing, else an ack or a send
            finally:
                credit.release()
            if damage is not None and time.monotonic() >= drain_at:
                damage.drain()      # a lagging viewer must not make the X server queue reports

    def _pace(self, tick, damage=None, idle=False):
        """Sleep until one frame interval after the previous tick; return the new tick.

        Ticks lie on a fixed grid (the previous tick + 1/fps, not the moment the sleep ended), so
        sleeps that overrun by a fraction of a millisecond do not add up: a 60 Hz cap gives 60
        captures a second, not 57. A capture that fell behind starts a new grid instead of
        bursting to catch up. A screen that has been still for IDLE_AFTER is polled at IDLE_FPS
        only: an idle host costs almost nothing, and the first change after a pause waits at most
        1/IDLE_FPS longer. With damage reports the tick is only the earliest capture: the capture
        itself waits (up to one more interval) for the server to draw something, so it follows the
        application's own frame timing and a change is picked up within a millisecond. When the
        last drawing came after its tick, that wait starts at once (pace_drawing's `early`: one
        wake-up a frame instead of two); only for intervals up to NAP_MAX, so that the stop Event
        is never kept waiting longer than by a sleep to the tick and a wait for the drawing."""
        fps = min(self.fps_cap, IDLE_FPS) if idle else self.fps_cap
        if damage is None:
            return next_tick(tick, fps, time.monotonic, self._nap)
        early = self._drawn_late and fps * NAP_MAX >= 1
        # Right after the sleep to the tick the capture follows at once: X damage reads what
        # came then and there (look), saving collect() its own read.
        wait = damage.wait if early else getattr(damage, "look", damage.wait)
        tick, self._drawn_late = pace_drawing(tick, fps, time.monotonic, self._nap, wait, early)
        return tick

    def _nap(self, seconds):
        """Sleep until the next tick: time.sleep for a frame interval (one clock_nanosleep, half
        the CPU of an Event.wait, which builds a lock and a waiter each time), the stop Event for
        longer naps so that stop() is not kept waiting."""
        if seconds <= NAP_MAX:
            time.sleep(seconds)
        else:
            self._workers.stopping.wait(seconds)

    def _send_cursor(self, now=None):
        cursor = self._cursor
        if cursor is None:
            return False
        msg = cursor.poll(now)
        if msg is None:
            return False
        self._send_or_queue(m.encode(msg))
        return True
