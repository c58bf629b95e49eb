"""Which parts of the X screen were drawn on since the last look (X DAMAGE extension).

Theory of operation (x11vnc's -xdamage does the same): polling a 1080p screen means grabbing and
comparing 8 MB every frame, ~2 ms of CPU even when nothing moved. The X server already knows what it
drew: a Damage object on the root window in RawRectangles mode sends one DamageNotify event per
drawing operation with the rectangle it touched. `DamageProbe.collect()` drains those events without
blocking and returns the rectangles (screen coordinates); the host then grabs and compares only the
tiles they cover, and `wait()` lets the capture thread sleep until something is drawn. Damage is
a hint, never trusted alone: the host still compares the pixels it grabs, and does a full grab at
start, after a monitor switch, when the event stream overflows (`None`) and every few seconds as a
safety net for drawing the server does not report.

`DamageProbe.open()` returns None off X11, without python-xlib or without the extension; the host then
polls the whole screen as before. The probe owns its own X connection and is used by one thread only
(the capture thread). An X server that goes away mid-session is a ConfigError from wait() and
collect(), one clear message instead of a python-xlib traceback.
"""

import contextlib
import select
import time

from tagio.errors import ConfigError

MAX_EVENTS = 2048       # more rectangles than this per collect: cheaper to grab everything (None)
MAX_READ = 4 * MAX_EVENTS   # events read per drain: a server drawing faster than we read cannot
                            # keep the capture thread here for ever (the rest waits for next time)
SUBTRACT_EVERY = 0.25   # seconds between two DamageSubtract requests while drawing goes on


class DamageProbe:
    def __init__(self, xdisplay, damage, event_type, lost=(OSError,)):
        self._display = xdisplay
        self._lost = lost           # what python-xlib raises when the server has gone away
        self._damage = damage
        self._event_type = event_type
        self._rects, self._overflow = [], False      # read but not yet collected
        self._reported, self._subtract_at = False, 0.0  # reports since the last subtract; next one
        self._buffered = True       # python-xlib's queue may hold events (False: it was seen empty)

    @classmethod
    def open(cls, display=None):
        """A probe for `display` (None: $DISPLAY), or None where the server cannot report damage."""
        try:
            from Xlib import display as xdisplay
            from Xlib.error import ConnectionClosedError
            from Xlib.ext import damage as xdamage
            conn = xdisplay.Display(display)
        except Exception:       # not X11, python-xlib missing, or no display: poll the screen instead
            return None
        try:
            if not conn.has_extension(xdamage.extname):
                conn.close()
                return None
            conn.damage_query_version()
            handle = conn.screen().root.damage_create(xdamage.DamageReportRawRectangles)
            event_type = conn.extension_event.DamageNotify
            conn.sync()     # a server that refuses the Damage object fails here, not in collect()
        except Exception:       # an X server with a broken DAMAGE extension
            conn.close()
            return None
        return cls(conn, handle, event_type, (ConnectionClosedError, OSError))

    @contextlib.contextmanager
    def _server_alive(self):
        try:
            yield
        except self._lost as exc:
            raise ConfigError(f"the X display went away: {exc}") from exc

    def wait(self, timeout):
        """Wait up to `timeout` seconds for the server to report drawing; True when it has.

        Lets the host capture as soon as something is drawn instead of on a fixed grid that beats
        against the application's own timer (a 60 Hz animation polled at 60 Hz loses frames).
        python-xlib reads the socket only inside its own calls, so after a read that left its
        queue empty the socket alone says whether reports came: a select(), not a ~50 us
        python-xlib call."""
        with self._server_alive():
            if self._rects or self._overflow or (self._buffered and self._display.pending_events()):
                return True
            ready, _, _ = select.select([self._display.fileno()], [], [], max(0.0, timeout))
            return bool(ready)

    def drain(self):
        """Read the reports waiting on the connection into the probe (at most MAX_EVENTS kept,
        then only an overflow mark). Never blocks. Called while capture waits for the viewer, so
        the X server never has to queue reports for us for long."""
        with self._server_alive():
            self._read_reports()

    def _read_reports(self):
        display, read = self._display, 0
        while read < MAX_READ:
            pending = min(display.pending_events(), MAX_READ - read)    # one look at the socket ...
            self._buffered = pending > 0
            if not pending:
                break
            for _ in range(pending):        # ... for every event it brought in (none of these blocks)
                self._take(display.next_event())
            read += pending
        self._subtract()

    def _take(self, event):
        if event.type != self._event_type:
            return
        self._reported = True
        if len(self._rects) >= MAX_EVENTS:
            self._overflow = True
            return
        area = event.area
        self._rects.append((area.x, area.y, area.width, area.height))

    def _subtract(self):
        """Empty the server's damage region now and then: in RawRectangles mode every drawing is
        reported anyway, and the region only grows (each report is merged into it). Once per
        SUBTRACT_EVERY, not per read: each request costs ~50 us of python-xlib."""
        now = time.monotonic()
        if self._reported and now >= self._subtract_at:
            self._display.damage_subtract(self._damage)
            self._display.flush()
            self._buffered = True       # flushing may have read reports into python-xlib's queue
            self._reported, self._subtract_at = False, now + SUBTRACT_EVERY

    def collect(self):
        """Rectangles (x, y, w, h) drawn since the last call, or None when there were too many to
        list (then treat the whole screen as damaged). Never blocks."""
        self.drain()
        rects, overflow = self._rects, self._overflow
        self._rects, self._overflow = [], False
        return None if overflow else rects

    def close(self):
        try:
            self._display.close()
        except Exception:       # the X server is already gone
            pass
