"""The host side of a session: screen -> change detection -> encode -> channel, and input back.

Theory of operation. Six threads, joined by bounded queues, stopped by one Event:

  capture  waits until flow control (tagio.session.flow: paced at the measured delivery rate, about
           one bandwidth-delay product in flight, at most MAX_IN_FLIGHT frames) lets a frame go, paces to
           the fps cap on a fixed time grid, grabs with mss and finds changed 64x64 tiles. Where the
           X server reports damage (tagio.session.damage) only the damaged tiles are grabbed and
           compared with the host's screen copy (a 200x100 change: ~0.1 ms instead of ~2 ms for a
           whole 1080p grab and compare); elsewhere, and every FULL_POLL seconds as a safety net, the
           whole monitor is grabbed and compared. On Windows a scanline poll (capture_win32.ScanProbe)
           plays the part of X damage. Nothing changed and nothing to refresh -> no frame (idle).
           Also sends Cursor when the pointer moved. Where a grab failure is passing (Windows: a UAC
           prompt or the lock screen has the input desktop), the picture pauses with a notice drawn
           over it, and a full picture follows once capture works again; elsewhere (the X server
           went away) the failure ends the session.
  encode   merges the changed tiles into rectangles; rows that moved up or down since the previous
           frame (a scroll, tagio.session.motion) become ENC_COPY rectangles, sent first; the rest
           turns into fill / PNG / JPEG data, packed into Frame messages (<= MAX_MESSAGE each, FINAL
           on the last).
  send     the only writer of frames to the channel; hands each frame's size to flow control.
  receive  reads the channel and dispatches through a table: FrameAck feeds flow control; input goes
           to the inject queue (dropped in view-only mode); SetQuality/SelectMonitor adjust capture.
  inject   replays input with pynput (loaded lazily; without it the host is view-only).
  files    the file engine's pump (tagio.session.files): reads the data of accepted transfers and
           queues it behind the frames, at most files.WINDOW chunks at a time, so a frame never
           waits behind more than that while a transfer runs. Files are allowed only with
           `files_dir` (the one folder a viewer may list, fetch from and write to); chat always.
  heartbeat  pings a silent viewer and ends the session when it stays silent (heartbeat.py).

Clipboard (tagio.session.clipboard_sync): unless the session is view-only or `clipboard` is False,
a ClipboardLink watches this machine's clipboard and sends its changes, and the viewer's Clipboard
messages are applied here; it runs its own threads and is closed with the session.

Pull-based flow control, in bytes and time, means a slow link or slow viewer lowers the frame rate
while no queue grows, and a long RTT no longer does. JPEG quality adapts: it drops when acks come back
slowly and recovers towards the requested quality, and while flow control holds frames back it is
capped where a frame fits the measured rate (flow.QualityPolicy).
A peer that breaks the protocol ends the session with RemoteProtocolError (sent to it as Bye, and
re-raised by join()); the process itself never crashes.
"""

import logging
import queue
import threading
import time

from PIL import Image

from tagio.errors import ConfigError, RemoteProtocolError, SecureChannelError, TagioError, TransportError
from tagio.protocol import session as m
from tagio.protocol.version import CAP_FILES, CLIPBOARD
from tagio.session import capture_win32 as win
from tagio.session import cursor_win32
from tagio.session import motion
from tagio.session import tiles as t
from tagio.session.chat import ChatLog, chat_pieces
from tagio.session.cursor import CursorProbe, CursorTracker
from tagio.session.damage import DamageProbe
from tagio.session.files import FileEngine
from tagio.session.heartbeat import Heartbeat, answer
from tagio.session.flow import FlowControl, QualityPolicy
from tagio.session.inject import Injector, InjectorUnavailable
from tagio.session.workers import Workers, last_words

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32       # frames unacknowledged at most; the bytes in flight follow the link (flow.py)
MAX_UNSENT = 2           # frames captured but not yet handed to the channel (one encoding, one next)
MOTION_MIN_HEIGHT = 64   # changed regions at least this tall are searched for scrolled rows
POLICY_HOLD = 1.0        # seconds after flow control last held a frame back that its rate sizes frames
IDLE_AFTER = 1.0         # seconds without any change before capture slows down ...
IDLE_FPS = 10            # ... to this many polls per second
FULL_POLL = 1.0          # seconds between whole-screen grabs when X damage events guide capture
MAX_FPS = 60
SLOW_ACK = 0.25          # seconds: slower acks than this lower the JPEG quality
MIN_QUALITY = 30
MOTION_SHARE = 0.5       # at least this share of the screen changing in two frames in a row ...
MOTION_QUALITY_DROP = 20  # ... lowers JPEG quality by this much (75 -> 55: a 1080p photo ~280 KB -> ~160 KB)
INPUT_QUEUE = 256
ALL_MONITORS = 0         # SelectMonitor index: every monitor as one picture (mss's monitors[0])
SECURE_CHECK = 1.0       # seconds between checks of the input desktop (Windows)
BYE_TIMEOUT = 1.0
STOP_JOIN = 5.0         # seconds an ended session's threads get to stop before join() returns anyway


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


def grab(sct, box):
    """The BGRX bytes of `box`. A failing grab (mss raises even a bare AssertionError when the X
    server has gone away) is a ConfigError: one clear message, not an 'internal error'."""
    try:
        return sct.grab(box).raw
    except Exception as exc:    # whatever the capture library raises, the screen is out of reach
        raise ConfigError(f"screen capture stopped: {exc!r}") from exc


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


def bye_text(exc):
    """What to tell the partner when an error ends the session (no secrets: errors carry none)."""
    if isinstance(exc, RemoteProtocolError):
        return f"protocol error: {exc}"[:200]
    if isinstance(exc, (TransportError, SecureChannelError)):
        return "connection lost"
    return f"host error: {exc}"[:200]


class HostSession:
    def __init__(self, channel, *, monitor=1, view_only=False, fps_cap=30, quality=75, on_event=None,
                 display=None, clipboard=True, files_dir=None, grabber=None):
        self.channel = channel
        self.clipboard = None       # ClipboardLink while the clipboard is shared
        self._clipboard_wanted = clipboard
        self.view_only = view_only
        self.fps_cap = min(max(int(fps_cap), 1), MAX_FPS)
        self.quality = self.target_quality = min(max(int(quality), 1), 100)
        self.on_event = on_event or (lambda name, **fields: None)
        self.display = display      # X display for capture (None: $DISPLAY)
        self._grabber_factory = grabber     # tests: a stand-in for mss.MSS (called with **kwargs)
        self.pause_on_grab_failure = win.WINDOWS    # a failed grab pauses (Windows) or ends the session
        self.pause_retry = win.PAUSE_RETRY
        self.scan_for_changes = win.WINDOWS         # no damage reports: scanline polling (capture_win32)
        self.paused = False
        self._secure, self._secure_at = None, 0.0   # capture_win32.SecureDesktop (Windows), next check
        self.refuse_secure_attention = win.WINDOWS  # Ctrl+Alt+Del: say why instead of sending it
        self._sas = win.SecureAttentionWatch()
        self._notice = None                         # text for the capture thread to show the viewer
        self._notice_hold = win.NoticeHold()
        self._elevated = None                       # capture_win32.ElevatedForeground (Windows)
        self.stats = {"frames": 0, "bytes": 0, "fps": 0.0, "latency_ms": 0, "quality": self.quality}
        self._monitor_wanted = monitor
        self._monitor_switch = threading.Event()    # set by SelectMonitor (same index = full refresh)
        self._credit = threading.Condition()
        self._in_flight = {}         # frame id -> capture time
        self._flow = FlowControl(max_frames=MAX_IN_FLIGHT)     # under self._credit
        self._unsent = 0             # frames captured, not yet sent (under self._credit)
        # Encode thread only. can_scale=False until the protocol carries scaled rectangles.
        self._policy = QualityPolicy(target_quality=self.quality, can_scale=False)
        self._row_hashes = (None, None, None)   # (last grab, region, its row hashes): encode thread
        self._latency_ms = 0
        self._encode_q = queue.Queue(maxsize=2)
        self._send_q = queue.Queue(maxsize=8)
        self._input_q = queue.Queue(maxsize=INPUT_QUEUE)
        self._refresh = t.StillRefresh()
        self._refresh_lock = threading.Lock()
        self._fps_times = []
        self._injector = None
        self._teardown = threading.Lock()     # input is closed once (stop() and join() race)
        self._moving = False
        self._cursor = None         # CursorTracker, owned by the capture thread
        self._workers = Workers("host", on_error=self._ended_by_error)
        self.files = FileEngine(lambda msg: self._queue(m.Files(msg)), root=files_dir, first_tid=1,
                                on_event=self.on_event, screen_rate=self._screen_held_rate)
        self.chat = ChatLog()
        self._heartbeat = Heartbeat()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self):
        if not self.view_only:
            self._open_injector()
        if self._clipboard_wanted and not self.view_only:
            self._open_clipboard()
        w = self._workers
        w.spawn("capture", self._capture_loop)
        w.spawn("encode", self._encode_loop)
        w.spawn("send", self._send_loop)
        w.spawn("receive", self._receive_loop)
        w.spawn("inject", self._inject_loop)
        w.spawn("files", lambda: self.files.pump(w.stopping))
        self._heartbeat.heard()
        w.spawn("heartbeat", lambda: self._heartbeat.run(w.stopping, self._offer))

    def _open_injector(self):
        self._elevated = self._elevated or win.ElevatedForeground.open(time.monotonic)
        try:
            self._injector = Injector().open(self.display)
        except InjectorUnavailable as exc:
            self.view_only = True
            self.on_event("view_only", reason=str(exc))

    def _capabilities(self):
        """What this session offers the viewer: no clipboard bits unless the clipboard is shared
        (view-only, or switched off), so the viewer does not even send its own; files only with a
        files folder."""
        offered = m.SESSION_CAPABILITIES
        if self.clipboard is None:
            offered &= ~CLIPBOARD
        if self.files.root is None:             # no files folder: nothing to list, fetch or write
            offered &= ~CAP_FILES
        return offered

    def _open_clipboard(self):
        from tagio.session.clipboard_sync import ClipboardLink
        self.clipboard = ClipboardLink.open(
            self._queue, lambda text: self.on_event("clipboard_notice", message=text), display=self.display)

    def _close_clipboard(self):
        if self.clipboard is not None:
            self.clipboard.close()      # idempotent, and safe from two threads at once

    def stop(self, reason="host ended the session"):
        """Say Bye, stop and join every thread. Never raises; join() reports a failure."""
        if not self._workers.stopping.is_set():
            self._workers.stop()
            last_words(self.channel, m.encode(m.Bye(reason[:200])), BYE_TIMEOUT)
        self._close_channel()
        self._workers.join(timeout=5, reraise=False)
        self._release_input()
        self._close_clipboard()

    def join(self, timeout=None):
        """Wait for the session to end; re-raise the error that ended it, if any."""
        self._workers.stopping.wait(timeout)
        if self._workers.stopping.is_set():
            self._close_channel()
            if timeout is None:         # ended: the threads get STOP_JOIN, not for ever
                timeout = STOP_JOIN
        try:
            self._workers.join(timeout)
            self._report_stuck()
        finally:
            self._release_input()
            if not self._workers.alive():
                self._close_clipboard()

    def _report_stuck(self):
        """A thread that outlived its session's end is our bug: the session still ends (a host
        must not keep a ghost session), and the log names the thread."""
        stuck = self._workers.stuck() if self._workers.stopping.is_set() else []
        if stuck:
            log.error("host session ended but threads did not stop within %.0f s: %s", STOP_JOIN,
                      ", ".join(stuck))

    def send_clipboard(self, text):
        """Offer this text as the host's clipboard to the viewer (any thread; ignored once
        stopping). Raises LocalProtocolError over MAX_CLIPBOARD: never a silent truncation."""
        self._queue(m.Clipboard.of_text(text))

    def send_chat(self, text):
        """Send one chat line to the viewer (any thread). Raises ValueError for an empty or huge line."""
        for piece in chat_pieces(text):
            self._queue(m.Chat(piece))
        self.chat.add("me", text)

    @property
    def running(self):
        return not self._workers.stopping.is_set()

    def _ended_by_error(self, exc):
        if isinstance(exc, TagioError):
            self.on_event("error", message=str(exc))
        last_words(self.channel, m.encode(m.Bye(bye_text(exc))), BYE_TIMEOUT)
        self._close_channel()

    def _close_channel(self):
        self.files.close()
        with self._credit:
            self._credit.notify_all()
        try:
            self.channel.close()
        except Exception:       # closing twice or a dead transport: nothing left to do
            pass

    def _release_input(self):
        """Close input injection once its thread is gone, and only once: stop() (the Disconnect
        button's thread, or a quitting host) and join() (the session's owner) both get here, at
        the same time. Two closes of one X connection at once left Xlib's request lock held, and
        the host hung for ever in the second."""
        with self._teardown:
            if self._injector is None or self._workers.alive():
                return
            injector, self._injector = self._injector, None
        injector.close()

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
                    damage = win.ScanProbe(lambda box: grab(sct, box))
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
            return mss.MSS(**kwargs)
        except Exception as exc:    # no display, no X server, no permission: a setup problem, said once
            where = kwargs.get("display") or "this display"
            raise ConfigError(f"cannot capture the screen of {where}: {exc}") from exc

    def _capture_with(self, sct, damage=None):
        mon = self._watch(damage, self._switch_monitor(sct, self._monitor_wanted))
        self._frame_id, tick, changed_at = 0, 0.0, time.monotonic()
        while not self._workers.stopping.is_set():
            if self._monitor_switch.is_set():
                mon = self._watch(damage, self._next_monitor(sct, damage))
                if mon is None:
                    return
            if not self._wait_credit(damage):
                return
            tick = self._pace(tick, damage, idle=tick - changed_at > IDLE_AFTER)
            if self._send_cursor():
                changed_at = tick       # a moving pointer keeps the full frame rate
            captured = time.monotonic()
            try:
                self._check_desktop(captured)
                sources = self._grab_changes(sct, mon, damage, captured)
            except ConfigError as exc:
                if not self.pause_on_grab_failure:
                    raise
                mon = self._watch(damage, self._pause(sct, mon, damage, exc))
                if mon is None:
                    return
                continue
            dirty = set().union(*(src[5] for src in sources))
            if self._notice is not None and not self._show_notice(mon, captured):
                return
            with self._refresh_lock:
                due = (self._notice_hold.filter(self._refresh.due() - dirty, captured)
                       if not self._link_busy() else set())
            if not dirty and not due:
                continue
            changed_at = tick
            screen = mon["screen"]
            stills = [(x, y, w, h, screen.region(x, y, w, h))
                      for x, y, w, h in t.merge_tiles(due, screen.width, screen.height)]
            if not self._emit(captured, sources, stills, screen, len(dirty)):
                return

    def _emit(self, captured, sources, stills, screen, dirty_count):
        """Queue one frame for the encoder; False when stopping."""
        self._frame_id += 1
        job = (self._frame_id, captured, sources, stills, screen.width, screen.height, dirty_count)
        with self._credit:
            self._in_flight[self._frame_id] = captured
            self._unsent += 1
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

    def _link_busy(self):
        """Flow control held a frame back within POLICY_HOLD: the lossless refresh waits, as a
        1080p photo sent as PNG is megabytes (seconds on a 5 Mbit/s link, in front of every change)."""
        with self._credit:
            return time.monotonic() - self._flow.held_at < POLICY_HOLD

    def _screen_held_rate(self):
        """While the frames fill their in-flight budget (the path, not the screen, limits them):
        the rate they get through, else None (FileEngine's screen_rate: files take no more)."""
        with self._credit:
            est = self._flow.estimator
            return est.rate if est.frames and est.in_flight >= self._flow.budget() else None

    def _grab_changes(self, sct, mon, damage, now):
        """Grab what may have changed -> [(raw, x, y, w, h, dirty tiles, prev)], one per grabbed
        rectangle that holds a change. `raw` is a fresh buffer the encoder may read while we capture
        on; `prev` the same rectangle's pixels before (None: not worth a scroll search)."""
        screen, box = mon["screen"], mon["box"]
        rects = damage.collect() if damage is not None else None
        tiles = None
        if rects is not None and screen.buf is not None and now < mon["full_at"]:
            moved = [(x - box["left"], y - box["top"], w, h) for x, y, w, h in rects]
            tiles = t.rects_tiles(moved, screen.width, screen.height)
            cols, rows = t.tile_grid(screen.width, screen.height)
            tiles = None if len(tiles) == cols * rows else tiles
        if tiles is None:       # no damage reports, first grab, safety poll, or everything changed
            mon["full_at"] = now + FULL_POLL
            raw, prev = grab(sct, box), screen.buf      # replace() never changes the old buffer
            return [(raw, 0, 0, screen.width, screen.height, screen.replace(raw), prev)]
        sources = []
        for x, y, w, h in t.merge_tiles(tiles, screen.width, screen.height):
            raw = grab(sct, {"left": box["left"] + x, "top": box["top"] + y, "width": w, "height": h})
            prev = screen.region(x, y, w, h) if h >= MOTION_MIN_HEIGHT else None    # for scroll search
            dirty = screen.update(x, y, w, h, raw)
            if dirty:
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
        return {"index": index, "box": box, "screen": screen, "full_at": 0.0}

    def _wait_credit(self, damage=None, below=None):
        """Wait until flow control lets another frame go (or, with `below`, until fewer than `below`
        frames are unacknowledged); False when stopping."""
        while True:
            with self._credit:
                if self._workers.stopping.is_set():
                    return False
                if below is not None:
                    if len(self._in_flight) < below:
                        return True
                elif (self._unsent < MAX_UNSENT and len(self._in_flight) < MAX_IN_FLIGHT
                      and self._flow.can_send()):
                    return True
                self._credit.wait(self._flow.wait_time() or 0.1)   # pacing, else an ack or a send
            if damage is not None:
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
        application's own frame timing and a change is picked up within a millisecond."""
        fps = min(self.fps_cap, IDLE_FPS) if idle else self.fps_cap
        tick = next_tick(tick, fps, time.monotonic, self._workers.stopping.wait)
        if damage is None or damage.wait(0):
            return tick         # already drawn: stay on the grid (a late wake-up must not shift it)
        damage.wait(tick + 1.0 / fps - time.monotonic())
        return max(tick, time.monotonic())

    def _send_cursor(self):
        msg = self._cursor.poll() if self._cursor is not None else None
        if msg is not None:
            self._queue(msg)
        return msg is not None

    def _queue(self, msg):
        self._workers.put(self._send_q, m.encode(msg))

    def _offer(self, msg):
        """Queue a heartbeat message without waiting: a full send queue means the path is stuck,
        and the heartbeat's own silence check ends the session then."""
        try:
            self._send_q.put_nowait(m.encode(msg))
        except queue.Full:
            pass

    # -- encode ------------------------------------------------------------------------------
    def _encode_loop(self):
        while True:
            job = self._workers.get(self._encode_q)
            if job is None:
                return
            for data in self._encode_frame(*job):
                if not self._workers.put(self._send_q, data):
                    return

    def _encode_frame(self, frame_id, captured, sources, stills, width, height, dirty_count):
        quality = min(self._frame_quality(dirty_count, width, height), self._policy_quality(dirty_count))
        rects, copies, lossy_copies = [], [], set()
        for raw, sx, sy, sw, sh, tiles, prev in sources:
            changed = t.merge_tiles(tiles, width, height)
            for x, y, w, h in self._find_copies(copies, lossy_copies, raw, prev, (sx, sy, sw, sh), changed):
                img = t.region_image(raw, sw, x - sx, y - sy, w, h)
                self._encode_rect(rects, img, x, y, quality, False)
        for x, y, w, h, data in stills:     # lossless refresh of regions last sent as JPEG
            img = Image.frombytes("RGB", (w, h), data, "raw", "BGRX")
            self._encode_rect(rects, img, x, y, quality, True)
        if lossy_copies:                    # copied JPEG pixels still want their lossless refresh
            with self._refresh_lock:
                self._refresh.sent(lossy_copies, True)
        self._learn_sizes(rects, quality)
        return [m.encode(msg) for msg in self._pack_frames(frame_id, captured, copies + rects)]

    def _encode_rect(self, rects, img, x, y, quality, lossless):
        parts = t.encode_region(img, x, y, quality, lossless)
        rects.extend(m.Rect(*p) for p in parts)
        lossy = any(p[4] == m.ENC_JPEG for p in parts)
        with self._refresh_lock:
            self._refresh.sent(t.rect_tiles(x, y, img.width, img.height), lossy)

    def _find_copies(self, copies, lossy_copies, raw, prev, source, changed):
        """The parts of the `changed` rectangles (screen coordinates) of one grabbed `source`
        (x, y, w, h) still to encode as pixels, after rows that are rows of the previous frame
        moved up or down went to `copies` (tagio.session.motion). The search covers the bounding
        box of the changes (a scrolling page changes tiles of uneven width); only rows of changed
        rectangles that no copy covers are left to encode."""
        sx, sy, sw, sh = source
        if prev is None or not changed or _bounding_box(changed)[3] < MOTION_MIN_HEIGHT:
            return changed
        box = _bounding_box(changed)
        local = (box[0] - sx, box[1] - sy, box[2], box[3])
        grab_, region, hashes = self._row_hashes
        cached = hashes if grab_ is prev and region == local else None
        found = motion.detect(prev, raw, sw, sh, local, old_hashes=cached)
        self._row_hashes = (raw, local, found.hashes)       # raw becomes the next frame's prev
        covered = set()
        for c in found.copies:
            src, dst = (c.src_x + sx, c.src_y + sy), (c.x + sx, c.y + sy)
            copies.append(m.copy_rect(*src, *dst, c.w, c.h))
            covered.update(range(dst[1], dst[1] + c.h))
            with self._refresh_lock:
                lossy = bool(t.rect_tiles(*src, c.w, c.h) & self._refresh.lossy.keys())
            if lossy:
                lossy_copies.update(t.rect_tiles(*dst, c.w, c.h))
        return [part for rect in changed for part in _uncovered(rect, covered)] if covered else changed

    def _policy_quality(self, dirty_tiles):
        """The quality flow.QualityPolicy picks for this much change, while flow control is what
        holds frames back (otherwise the link has room: the wanted quality)."""
        with self._credit:
            est, held = self._flow.estimator, time.monotonic() - self._flow.held_at < POLICY_HOLD
            rate = est.rate if held else None
        choice = self._policy.choose(rate, dirty_tiles * t.TILE * t.TILE)
        self.stats["policy_quality"] = choice.quality
        return choice.quality

    def _learn_sizes(self, rects, quality):
        jpeg = [r for r in rects if r.encoding == m.ENC_JPEG]
        if jpeg:
            self._policy.encoded(quality, sum(r.w * r.h for r in jpeg), sum(len(r.data) for r in jpeg))

    def _frame_quality(self, dirty_tiles, width, height):
        """JPEG quality for this frame: lower while most of the screen keeps changing.

        Sustained full-screen motion (video, scrolling photos) hides detail, and the pixels are
        refreshed losslessly once they stand still, so spend fewer bytes per frame on it."""
        cols, rows = t.tile_grid(width, height)
        moving = dirty_tiles >= MOTION_SHARE * cols * rows
        in_motion, self._moving = moving and self._moving, moving
        return max(MIN_QUALITY, self.quality - MOTION_QUALITY_DROP) if in_motion else self.quality

    def _pack_frames(self, frame_id, captured, rects):
        """Split rectangles over as many Frame messages as MAX_MESSAGE needs; FINAL on the last."""
        messages, batch, size = [], [], 0
        for rect in rects:
            cost = len(rect.data) + 16
            if batch and (size + cost > m.MAX_MESSAGE - 64 or len(batch) >= m.MAX_RECTS):
                messages.append(m.Frame(frame_id, 0, captured, self._latency_ms, batch))
                batch, size = [], 0
            batch.append(rect)
            size += cost
        messages.append(m.Frame(frame_id, m.FINAL, captured, self._latency_ms, batch))
        return messages

    # -- send --------------------------------------------------------------------------------
    def _send_loop(self):
        frame_bytes = 0
        while True:
            data = self._workers.get(self._send_q)
            if data is None:
                return
            if data[0] == 2:        # a Frame part: count it; the FINAL part hands the frame to flow control
                frame_bytes += len(data)
                if data[5] & m.FINAL:
                    self._frame_sent(int.from_bytes(data[1:5], "big"), frame_bytes)
                    frame_bytes = 0
            self.channel.send(data)
            self.stats["bytes"] += len(data)
            self.files.sent(data)
            if data[0] == 2 and data[5] & m.FINAL:      # Frame type code, flags byte after frame id
                self._count_frame()

    def _frame_sent(self, frame_id, size):
        # Before channel.send: the viewer's ack must never find the frame unknown to flow control.
        with self._credit:
            self._flow.sent(frame_id, size)
            self._unsent -= 1
            self._credit.notify_all()

    def _count_frame(self):
        now = time.monotonic()
        self._fps_times = [x for x in self._fps_times if x > now - 1.0] + [now]
        self.stats["frames"] += 1
        self.stats["fps"] = float(len(self._fps_times))

    # -- receive -----------------------------------------------------------------------------
    def _receive_loop(self):
        while not self._workers.stopping.is_set():
            msg = m.decode(self.channel.recv())
            self._heartbeat.heard()
            handler = self._HANDLERS.get(type(msg))
            if handler is None:
                raise RemoteProtocolError(f"viewer sent a host-only message: {type(msg).__name__}")
            handler(self, msg)

    def _on_ack(self, msg):
        with self._credit:
            captured = self._in_flight.pop(msg.frame_id, None)
            if captured is None:
                raise RemoteProtocolError(f"acknowledgement for unknown frame {msg.frame_id}")
            self._flow.acked(msg.frame_id)
            self._credit.notify_all()
            est = self._flow.estimator
            self.stats.update(rate_kbit=int((est.rate or 0) * 8 / 1000), rtt_ms=int((est.min_rtt or 0) * 1000),
                              budget_kb=self._flow.budget() // 1024)
        elapsed = time.monotonic() - captured
        self._latency_ms = int(elapsed * 1000)
        self.stats["latency_ms"] = self._latency_ms
        self._adapt_quality(elapsed)

    def _adapt_quality(self, elapsed):
        # Slow acks mean the link (or the viewer) cannot keep up: trade quality for frame rate.
        if elapsed > SLOW_ACK:
            self.quality = max(MIN_QUALITY, self.quality - 10)
        elif self.quality < self.target_quality:
            self.quality += 1
        self.stats["quality"] = self.quality

    def _on_input(self, msg):
        if self.view_only:
            return      # view-only: the viewer may send input, it is simply not applied
        if isinstance(msg, m.Key) and self._sas.feed(msg.key, msg.pressed) and self.refuse_secure_attention:
            self.on_event("warning", message=win.SAS_NOTICE)
            self._notice = win.SAS_NOTICE   # the capture thread draws it for the viewer
            return      # Windows would drop it anyway; the Ctrl and Alt releases still go through
        self._workers.put(self._input_q, msg)

    def _on_quality(self, msg):
        self.quality = self.target_quality = self._policy.target_quality = msg.quality
        if msg.fps_cap:
            self.fps_cap = msg.fps_cap

    def _on_select_monitor(self, msg):
        self._monitor_wanted = msg.index
        self._monitor_switch.set()

    def _on_clipboard(self, msg):
        if self.clipboard is not None:
            self.clipboard.received(msg)    # not in view-only: then there is no link
        self.on_event("clipboard", text=msg.text)

    def _on_files(self, msg):
        self.files.handle(msg.msg)

    def _on_chat(self, msg):
        self.chat.add("partner", msg.text)
        self.on_event("chat", text=msg.text)

    def _on_bye(self, msg):
        self.on_event("closed", reason=msg.text or "viewer left")
        self._workers.stop()
        self._close_channel()

    def _on_ping(self, msg):
        self._offer(answer(msg))

    def _on_pong(self, msg):
        pass            # heard() already noted it

    _HANDLERS = {
        m.Ping: _on_ping, m.Pong: _on_pong, m.FrameAck: _on_ack, m.Mouse: _on_input, m.Key: _on_input, m.Scroll: _on_input,
        m.Text: _on_input, m.SetQuality: _on_quality, m.SelectMonitor: _on_select_monitor,
        m.Clipboard: _on_clipboard, m.Bye: _on_bye, m.Files: _on_files, m.Chat: _on_chat,
    }

    # -- inject ------------------------------------------------------------------------------
    def _check_elevated(self, msg):
        """Windows: a press into an elevated program's window is dropped by the system; say so
        (once per window and ELEVATED_REPEAT) on both sides. The input still goes out."""
        pressing = getattr(msg, "pressed", False) or getattr(msg, "action", None) in (m.MOUSE_PRESS, m.MOUSE_CLICK)
        if self._elevated is None or not (pressing or isinstance(msg, m.Text)):
            return
        try:
            blocked = self._elevated.blocked_window()
        except OSError:         # a window that went away while we asked
            return
        if blocked is not None:
            self.on_event("warning", message=win.ELEVATED_NOTICE)
            self._notice = win.ELEVATED_NOTICE

    def _inject_loop(self):
        try:
            while True:
                msg = self._workers.get(self._input_q)
                if msg is None:
                    return
                self._check_elevated(msg)
                try:
                    self._injector.handle(msg)
                except KeyError as exc:
                    self.on_event("warning", message=f"unknown key {exc.args[0]!r} ignored")
        finally:
            # Here, not only in join()/stop(): the session may end (Bye, error, lost peer) long
            # before its owner joins it, and a held Ctrl must not stay down meanwhile. This thread
            # owns the injector, so releasing here cannot race with a key still being pressed.
            if self._injector is not None:
                self._injector.release_all()
