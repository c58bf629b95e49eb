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

from tagio.errors import ConfigError

MAX_EVENTS = 2048       # more rectangles than this per collect: cheaper to grab everything (None)
MAX_READ = 4 * MAX_EVENTS   # events read per drain: a server drawing faster than we read cannot
                            # keep the capture thread here for ever (the rest waits for next time)


class DamageProbe:
    def __init__(self, xdisplay, damage, event_type, lost=(OSError,)):
        self._display = xdisplay
        self._lost = lost           # what python-xlib raises when the server has gone away
        self._damage = damage
        self._event_type = event_type
        self._rects, self._overflow = [], False      # read but not yet collected

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
        against the application's own timer (a 60 Hz animation polled at 60 Hz loses frames)."""
        with self._server_alive():
            if self._rects or self._overflow or self._display.pending_events():
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
        display, got = self._display, False
        for _ in range(MAX_READ):
            if not display.pending_events():
                break
            event = display.next_event()
            if event.type != self._event_type:
                continue
            got = True
            if len(self._rects) >= MAX_EVENTS:
                self._overflow = True
                continue
            area = event.area
            self._rects.append((area.x, area.y, area.width, area.height))
        if got:
            display.damage_subtract(self._damage)     # keep the server's region small
            display.flush()

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
