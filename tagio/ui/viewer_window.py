"""The Tk session window: the partner's screen with a toolbar on top and a status line below.

Theory of operation. The seam with the session is one-way both ways. The ViewerSession's threads
never touch Tk; they post typed events (tagio.session.events) to `session.updates`, which this window
drains from an `after()` poll that reschedules itself until the window closes (idlelib's
poll_subprocess pattern), so only the Tk main thread touches widgets; each event goes through one
table (_UPDATES) to its handler. Input and "frame drawn" reports go back through the session's
send_* methods and displayed(), which only hand the message to the session's sender thread: nothing
here ever waits on the network. While updates keep arriving (any within STREAMING_FOR seconds) the
queue is polled every FAST_POLL_MS (less waiting between decode and screen), otherwise every POLL_MS.

The window is put together from mixins, one concern each: the picture and the host's pointer
(tagio.ui.viewer_picture), input, the local shortcuts and the local pointer
(tagio.ui.viewer_input), the toolbar's actions and the remembered view (tagio.ui.viewer_actions);
the toolbar itself is tagio.ui.toolbar and the status figures are tagio.ui.status. What stays here
is the window's life: building it, the poll, what the host's Hello says (size, monitors, view-only,
Files and Chat offered: CAP_FILES, CAP_CHAT), the status line, reconnecting and closing.

View-only (the host's Hello says so): an eye badge over the picture, no input is sent. Key events
become text or named keys as tagio.ui.keys decides (printable text is sent as characters, whatever
the two layouts; shortcuts and special keys as key presses). A clipboard value too big to share
shows its notice in the status line for NOTICE_FOR seconds.
Reconnect: when the owner brings a broken session back (client/resume.py), `show_reconnecting()`
says so over the picture and in the status line (the last picture stays), and `resume_with(session)`
carries on with the new session in this same window: the picture is redrawn by the new session's
first frame, and the window's choices (clipboard, quality, monitor) are applied to it.
`view_prefs()` is what the owner remembers per partner; `final_prefs` keeps it once the window is
destroyed, and `prefs=` restores it in the next session with that partner.
"""

import queue
import time
import tkinter as tk

from tagio.client import words
from tagio.protocol.session import HELLO_VIEW_ONLY
from tagio.protocol.version import CAP_CHAT, CAP_FILES
from tagio.session import events as ev
from tagio.platform import WINDOWS
from tagio.ui import status
from tagio.ui.chat_panel import ChatView
from tagio.ui.keys import KeyboardState
from tagio.ui.pointer import WheelAccumulator
from tagio.ui.toolbar import DEFAULT_QUALITY, Toolbar
from tagio.ui.tooltip import Tooltip
from tagio.ui.viewer_actions import ViewerActions
from tagio.ui.viewer_input import ViewerInput
from tagio.ui.viewer_picture import ViewerPicture, coalesce

POLL_MS = 15
FAST_POLL_MS = 4                # while frames are streaming in ...
STREAMING_FOR = 0.5             # ... i.e. for this many seconds after the last update
MAX_UPDATES_PER_POLL = 200      # keep the UI responsive even if the queue is full
STATUS_EVERY = 0.5              # seconds between status-line refreshes
DEFAULT_GEOMETRY = "1024x700"
PICTURE_BG = "#202020"
NOTICE_FOR = 8.0                # seconds a clipboard notice stays in the status line


class ViewerWindow(ViewerInput, ViewerActions, ViewerPicture, tk.Toplevel):
    """The session window. `prefs`: a remembered view (Settings.partner_views entry) to restore;
    `set_clipboard_sync(on)`: told when the user switches the session's clipboard sharing;
    `peer_ip`: the partner's address, when known, to tell a LAN path from a direct one; `partner`:
    its name for the status line (default: the title)."""

    def __init__(self, tk_master, viewer_session, title, *, fit=True, on_close=None, prefs=None,
                 set_clipboard_sync=None, peer_ip=None, partner=None):
        super().__init__(tk_master)
        self.session = viewer_session
        self.partner_title = partner or title       # how the status line names the partner
        prefs = dict(prefs or {})
        self.scale = 1.0
        self.remote_size = None
        self.view_only = False
        self._photo = None
        self._image_item = None
        self._cursor_item = None
        self._cursor_photo = None
        self._cursor_hot = (0, 0)
        self._cursor_at = None          # the host's pointer on its screen
        self._cursor_drawn_at = None    # where it is drawn on the canvas
        self._local_pointer_until = 0.0
        self._last_motion = None
        self._keyboard = KeyboardState(self.tk.call("tk", "windowingsystem"))
        self._held_buttons = set()
        self._local_keys = set()
        self._set_clipboard_sync = set_clipboard_sync
        self._notice = None             # (text, until) shown instead of the statistics
        self._wheel_acc = WheelAccumulator(WINDOWS)     # touchpads send small deltas (tagio.ui.pointer)
        self._canvas_size = None
        self._status_at = 0.0
        self._streaming_until = 0.0
        self._closed_text = None
        self.reconnecting = False       # the owner is bringing a broken session back
        self._on_close = on_close
        self._poll_id = None
        self._hint_id = None
        self._pointer_check_id = None   # an after_idle of viewer_input after a geometry change
        self._pointer_over = False      # the pointer moved over the picture and has not left it
        self._wanted_monitor = prefs.get("monitor")
        self._normal_geometry = prefs.get("geometry") or DEFAULT_GEOMETRY
        self._path_kind = status.path_kind(self.session.path, peer_ip)
        self._meter = status.RateMeter()
        self.monitor = None
        self.final_prefs = None     # the view as it was when the window closed (for the owner)
        self.drawn_rects = 0        # count of rectangles copied into the photo (for tests/diagnostics)
        self.shown_frame = None     # id of the newest frame on screen
        self.title(title)
        self.protocol("WM_DELETE_WINDOW", self.close)
        self._build(prefs, fit)
        self._bind_input()
        self.bind("<Configure>", self._window_moved, add="+")
        self._restore(prefs)
        self._poll_id = self.after(POLL_MS, self._poll)
        self.session.attach_display()

    # -- widgets ------------------------------------------------------------------------------
    def _build(self, prefs, fit):
        self.geometry(self._normal_geometry)
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        zoom = prefs.get("zoom") or ("fit" if fit else "1.0")
        link = self.session.clipboard
        self.toolbar = Toolbar(self, self._toolbar_actions(), zoom=zoom,
                               quality=prefs.get("quality") or DEFAULT_QUALITY,
                               show_both=prefs.get("show_both", False),
                               clipboard=link is not None and link.enabled)
        self.toolbar.grid(row=0, column=0, columnspan=3, sticky="ew")
        self.canvas = tk.Canvas(self, bg=PICTURE_BG, highlightthickness=0, takefocus=1)
        self.hbar = tk.Scrollbar(self, orient="horizontal", command=self.canvas.xview)
        self.vbar = tk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(xscrollcommand=self.hbar.set, yscrollcommand=self.vbar.set)
        self.canvas.grid(row=1, column=0, sticky="nsew")
        self._build_status()
        self.files_panel = None
        self.chat = ChatView(self, self.session, on_partner=lambda: self.toggle_chat(True, focus=False),
                             width=30)
        self.badge = EyeBadge(self.canvas)
        self.hint = tk.Label(self, bg="#000000", fg="#ffffff", padx=10, pady=5)
        self._show_message(words.WAITING_FOR_PICTURE, fill="#d0d0d0")
        self.canvas.bind("<Configure>", self._canvas_resized)
        self.canvas.bind("<Configure>", self._fit_hint, add="+")
        self._update_local_cursor()

    def _build_status(self):
        bar = tk.Frame(self)
        bar.grid(row=3, column=0, columnspan=3, sticky="ew")
        self.status_dot = tk.Canvas(bar, width=14, height=14, highlightthickness=0)
        self.status_dot.pack(side="left", padx=(6, 2))
        self._dot = self.status_dot.create_oval(2, 2, 12, 12, fill=status.path_label(self._path_kind)[1],
                                                outline="")
        self.status = tk.Label(bar, anchor="w", text=self.partner_title)
        self.status.pack(side="left", fill="x", expand=True)
        self.status_tip = Tooltip(self.status, self.status_details)

    # -- the session's updates ------------------------------------------------------------------
    def _poll(self):
        self._poll_id = None
        try:
            if self._drain():
                self._streaming_until = time.monotonic() + STREAMING_FOR
            self._update_status()
        finally:
            try:
                if self.winfo_exists():
                    fast = time.monotonic() < self._streaming_until
                    self._poll_id = self.after(FAST_POLL_MS if fast else POLL_MS, self._poll)
            except tk.TclError:
                pass        # the application itself is gone

    def _drain(self):
        """Handle the queued updates; True when there were any."""
        updates = self._take()
        for update in coalesce(updates, self.remote_size):
            self._UPDATES[type(update)](self, update)
        return bool(updates)

    def _take(self):
        updates = []
        for _ in range(MAX_UPDATES_PER_POLL):
            try:
                updates.append(self.session.updates.get_nowait())
            except queue.Empty:
                break
        return updates

    def _on_size(self, width, height, monitor):
        self.remote_size = (width, height)
        self.monitor = monitor
        self._set_view_only(bool(self.session.host_flags & HELLO_VIEW_ONLY))
        caps = self.session.capabilities
        self.toolbar.set_capabilities(bool(caps & CAP_FILES), bool(caps & CAP_CHAT))
        self._relayout()

    def _set_view_only(self, view_only):
        if view_only and not self.view_only:
            self.release_held()     # nothing more goes out; let go of what is held first
        self.view_only = view_only
        self.badge.show(view_only)
        self.toolbar.set_view_only(view_only)
        self._update_local_cursor()
        self._update_status(force=True)

    def _on_monitors(self, current, monitors):
        self.monitor = current
        self.toolbar.set_monitors(current, monitors)
        wanted, self._wanted_monitor = self._wanted_monitor, None
        if wanted is not None and wanted != current and (wanted == 0 and len(monitors) > 1
                                                         or 1 <= wanted <= len(monitors)):
            self.select_monitor(wanted)     # the monitor chosen last time with this partner

    def show_reconnecting(self):
        """The path broke and the owner is bringing the session back: say so over the picture."""
        self.reconnecting = True
        self.release_held()
        self._show_message(words.RECONNECTING)
        self._update_status(force=True)

    def resume_with(self, session, peer_ip=None):
        """The session came back: go on with `session` (started) in this window."""
        self.session.detach_display()
        self.session, self.reconnecting, self._closed_text = session, False, None
        self._path_kind = status.path_kind(session.path, peer_ip)
        self._meter = status.RateMeter()
        if session.clipboard is not None:
            session.clipboard.enabled = self.clipboard_sync
        self.set_quality(self.toolbar.quality_var.get())
        if self.monitor is not None:
            self.select_monitor(self.monitor)
        session.attach_display()
        self.chat.follow(session)                   # the conversation goes on with it
        if self.files_panel is not None and self.files_panel.winfo_exists():
            self.files_panel.resume_with(session)   # its transfers continue on the new session
        self._update_status(force=True)

    def _on_closed(self, text):
        if self.reconnecting:
            return              # the old session's end: the owner is bringing it back
        self._closed_text = text
        if self.shown_frame is None:
            self._set_message(f"Session ended: {words.ending(text)}")
        self._update_status(force=True)

    def _on_notice(self, text):
        self._notice = (text, time.monotonic() + NOTICE_FOR)
        self._update_status(force=True)

    # event type -> handler(self, event) (the events are tagio.session.events)
    _UPDATES = {
        ev.Size: lambda self, e: self._on_size(e.width, e.height, e.monitor),
        ev.Rects: lambda self, e: self._on_rects(e.frame_id, e.pieces, e.capture_time),
        ev.Refresh: lambda self, e: self._on_refresh(),
        ev.Cursor: lambda self, e: self._on_cursor(e.x, e.y),
        ev.CursorShape: lambda self, e: self._on_cursor_shape(e.hot_x, e.hot_y, e.image),
        ev.Monitors: lambda self, e: self._on_monitors(e.current, e.monitors),
        ev.Closed: lambda self, e: self._on_closed(e.reason),
        ev.Clipboard: lambda self, e: None,         # the session applied it already
        ev.ClipboardNotice: lambda self, e: self._on_notice(e.message),
    }

    # -- status ---------------------------------------------------------------------------------
    def _update_status(self, force=False):
        now = time.monotonic()
        if not force and now - self._status_at < STATUS_EVERY:
            return
        self._status_at = now
        self._meter.add(self.session.stats.get("bytes", 0))
        self.status.configure(text=self.status_text())
        colour = "#9e9e9e" if self._closed_text else status.path_label(self._path_kind)[1]
        self.status_dot.itemconfigure(self._dot, fill=colour)

    def status_text(self):
        if self.reconnecting:
            return f"{self.partner_title} \u2014 {words.RECONNECTING}"
        if self._closed_text:
            return f"{self.partner_title} \u2014 session ended: {words.ending(self._closed_text)}"
        if self._notice is not None and time.monotonic() < self._notice[1]:
            return self._notice[0]
        stats = self.session.stats
        line = status.summary(self._path_kind, stats.get("latency_ms", 0), self.session.recent_fps(),
                              self._meter.mbit_per_s())
        return f"{self.partner_title} \u2014 {line}" + (f" \u2014 {words.VIEW_ONLY_BADGE}" if self.view_only else "")

    def status_details(self):
        """The status tooltip's text."""
        stats = self.session.stats
        return status.details(self.partner_title, self._path_kind, self.session.path, self.remote_size,
                              stats.get("latency_ms", 0), self.session.recent_fps(),
                              self._meter.mbit_per_s(), stats.get("bytes", 0), self.view_only)

    # -- closing ------------------------------------------------------------------------------
    def close(self):
        """Destroy the window (the session itself is stopped by its owner) and call on_close."""
        callback, self._on_close = self._on_close, None
        self.release_held()         # the host must not keep a key held after the window is gone
        try:
            self.destroy()
        except tk.TclError:
            pass
        if callback is not None:
            callback()

    def destroy(self):
        # Cancel the poll first: a pending after() to a destroyed widget's command is a Tcl error.
        for name in ("_poll_id", "_hint_id", "_pointer_check_id"):
            after_id = getattr(self, name)
            if after_id is not None:
                try:
                    self.after_cancel(after_id)
                except tk.TclError:
                    pass
                setattr(self, name, None)
        if self.final_prefs is None:
            try:
                self.final_prefs = self.view_prefs()
            except tk.TclError:
                pass        # half gone already: nothing to remember
        self.status_tip.hide()
        self.session.detach_display()           # nothing will draw the frames still waiting
        self._photo = self._cursor_photo = None
        super().destroy()


class EyeBadge:
    """The view-only sign: an eye and "View only" in the picture's top right corner."""

    def __init__(self, canvas):
        self.frame = tk.Canvas(canvas, width=118, height=28, highlightthickness=0, bg="#1f2933")
        self.frame.create_oval(8, 7, 34, 21, outline="#ffffff", width=2)       # the eye
        self.frame.create_oval(16, 9, 26, 19, fill="#ffffff", outline="")      # its pupil
        self.frame.create_text(42, 14, text=words.VIEW_ONLY_BADGE, anchor="w", fill="#ffffff")
        self.shown = False

    def show(self, on):
        self.shown = on
        if on:
            self.frame.place(relx=1.0, x=-8, y=8, anchor="ne")
        else:
            self.frame.place_forget()
