"""The Tk session window: the partner's screen with a toolbar on top and a status line below.

Theory of operation. The seam with the session is one-way both ways. The ViewerSession's threads
never touch Tk; they post typed events (tagio.session.events) to `session.updates`, which this window
drains from an `after()` poll that reschedules itself until the window closes (idlelib's
poll_subprocess pattern), so only the Tk main thread touches widgets. Input and "frame drawn"
reports go back through the session's send_* methods and displayed(), which only hand the message to
the session's sender thread: nothing here ever waits on the network. Input handling, the local
shortcuts and the pointer live in tagio.ui.viewer_input (a mixin of this window); the toolbar in
tagio.ui.toolbar; the status figures in tagio.ui.status.

Drawing: one Tk photo image of the remote screen (at the display scale) shown on a Canvas. A changed
rectangle becomes a small ImageTk photo that is copied into the big one with `copy -to` - a
12-tile change costs well under a millisecond, where re-pasting the whole screen costs ~10 ms
(still the fastest way to show a whole new screen: measured against a Tk `put` of PPM data, 29-57
ms, and `copy -to` from a new photo, ~15 ms). The window tells the session which frame it has drawn
(`displayed`), and the session acknowledges frames only then, so the host sends what the window
can show instead of frames it would skip. While updates keep arriving (any within STREAMING_FOR
seconds) the queue is polled every FAST_POLL_MS (less waiting between decode and screen),
otherwise every POLL_MS. Until the first frame is drawn the picture area says that it waits.
"Fit" scales the remote screen to the window (pieces are resized before the copy, and a new window
size redraws once from the framebuffer); "1:1" and the other zooms show it at a fixed scale with
scrollbars. Mouse positions are mapped back through the same scale (and the scroll offset) so a
click lands on the pixel under the local pointer.

Toolbar actions map to session calls: a monitor choice is SelectMonitor (0 = all monitors as one
picture), a quality choice is SetQuality (toolbar.QUALITIES), special keys are Key presses. Full
screen is Tk's -fullscreen attribute; Ctrl+Alt+Enter leaves it (a local shortcut, never sent). A
screenshot saves the session's framebuffer (full resolution) to a file chosen in a save dialog.
View-only (the host's Hello says so): an eye badge over the picture, no input is sent.
Files opens the files panel (tagio.ui.files_panel) and Chat shows or hides the chat panel on the
right of the picture (tagio.ui.chat_panel), which also opens by itself when the partner writes;
both buttons are enabled only when the host's Hello offers them (CAP_FILES, CAP_CHAT).
Key events become text or named keys as tagio.ui.keys decides (printable text is sent as characters,
whatever the two layouts; shortcuts and special keys as key presses). The clipboard is shared by the
session itself (tagio.session.clipboard_sync, not Tk's clipboard): the toolbar's "Clipboard" switch
turns the session's link on and off, and a value too big to share shows its notice in the status
line for NOTICE_FOR seconds.
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

from PIL import Image, ImageTk

from tagio.client import words
from tagio.protocol.session import HELLO_VIEW_ONLY
from tagio.protocol.version import CAP_CHAT, CAP_FILES
from tagio.session import events as ev
from tagio.platform import WINDOWS
from tagio.ui import status
from tagio.ui.chat_panel import ChatView
from tagio.ui.keys import KeyboardState
from tagio.ui.pointer import WheelAccumulator
from tagio.ui.toolbar import DEFAULT_QUALITY, QUALITIES, Toolbar
from tagio.ui.tooltip import Tooltip
from tagio.ui.viewer_input import ViewerInput

POLL_MS = 15
FAST_POLL_MS = 4                # while frames are streaming in ...
STREAMING_FOR = 0.5             # ... i.e. for this many seconds after the last update
MAX_UPDATES_PER_POLL = 200      # keep the UI responsive even if the queue is full
STATUS_EVERY = 0.5              # seconds between status-line refreshes
CURSOR_SHAPE = (0, 0, 0, 16, 4, 12, 8, 19, 10, 18, 6, 11, 12, 11)   # a small arrow polygon
DEFAULT_GEOMETRY = "1024x700"
PICTURE_BG = "#202020"
HINT_MS = 3000                  # how long a hint stays over the picture
NOTICE_FOR = 8.0                # seconds a clipboard notice stays in the status line


def coalesce(updates, screen):
    """Replace a backlog of rectangles covering at least a screenful by one redraw from the
    framebuffer (which already holds them): when the viewer falls behind, it catches up with one
    paste instead of drawing every frame it missed. Other updates keep their order."""
    if screen is None or any(isinstance(u, ev.Size) for u in updates):
        return updates
    rects = [u for u in updates if isinstance(u, ev.Rects)]
    area = sum(img.width * img.height for u in rects for _, _, img in u.pieces)
    if area < screen[0] * screen[1]:
        return updates
    kept = [u for u in updates if not isinstance(u, (ev.Rects, ev.Refresh))]
    return kept + [ev.Refresh(), ev.Rects(rects[-1].frame_id, [], rects[-1].capture_time)]


def scale_to_fit(remote, available):
    """Scale factor to fit `remote` (w, h) into `available` (w, h); never above 1."""
    if not remote or available[0] < 2 or available[1] < 2:
        return 1.0
    return min(1.0, available[0] / remote[0], available[1] / remote[1])


class ViewerWindow(ViewerInput, tk.Toplevel):
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
        self.canvas.create_text(0, 0, text=words.WAITING_FOR_PICTURE, fill="#d0d0d0", tags="message",
                                font=("TkDefaultFont", 14))
        self.canvas.bind("<Configure>", self._canvas_resized)
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

    def _toolbar_actions(self):
        return {"disconnect": self.close, "fullscreen": self.set_fullscreen, "zoom": self.set_zoom,
                "pointers": self.set_show_both, "monitor": self.select_monitor, "quality": self.set_quality,
                "keys": self.send_keys, "clipboard": self.set_clipboard_sync, "screenshot": self.ask_screenshot,
                "focus_picture": self.canvas_focus, "picture": lambda: self.canvas,
                "files": self.open_files, "chat": self.toggle_chat}

    def _restore(self, prefs):
        """Apply a remembered view: quality now, monitor once the host listed its monitors."""
        if prefs.get("quality") in QUALITIES:
            self.set_quality(prefs["quality"])
        if prefs.get("toolbar_collapsed"):
            self.toolbar.collapse()
        if prefs.get("fullscreen"):
            self.set_fullscreen(True)       # before the window maps: it opens full screen

    def canvas_focus(self):
        try:
            self.canvas.focus_set()
        except tk.TclError:
            pass        # the window is closing

    def focus_toolbar(self):
        self.toolbar.focus_first()

    def _canvas_resized(self, event):
        self.canvas.coords("message", event.width // 2, event.height // 2)
        if self.fit and (event.width, event.height) != self._canvas_size:
            self._canvas_size = (event.width, event.height)
            self._relayout()

    def _window_moved(self, event):
        if event.widget is self and not self.fullscreen:
            self._normal_geometry = self.geometry()

    @property
    def zoom(self):
        """"fit", or the scale of the picture as a float (1.0 = 1:1)."""
        value = self.toolbar.zoom_var.get() if self.toolbar.zoom_var is not None else "fit"
        return "fit" if value == "fit" else float(value)

    @property
    def fit(self):
        """True: scale the remote screen to the window; False: a fixed zoom with scrollbars."""
        return self.zoom == "fit"

    @property
    def fullscreen(self):
        try:
            return bool(self.attributes("-fullscreen"))
        except tk.TclError:
            return False

    @property
    def show_both(self):
        var = self.toolbar.pointers_var
        return bool(var is not None and var.get())

    @property
    def clipboard_sync(self):
        var = self.toolbar.clipboard_var
        return bool(var is not None and var.get())

    def _show_scrollbars(self, show):
        for bar, spec in ((self.hbar, dict(row=2, column=0, sticky="ew")),
                          (self.vbar, dict(row=1, column=1, sticky="ns"))):
            bar.grid(**spec) if show else bar.grid_remove()

    # -- toolbar actions ------------------------------------------------------------------------
    def set_zoom(self, value):
        self.toolbar.zoom_var.set(str(value))
        self._relayout()

    def set_fullscreen(self, on):
        """Full screen on or off. Ctrl+Alt+Enter (handled here, never sent) leaves it again."""
        self.attributes("-fullscreen", bool(on))
        self.toolbar.fullscreen_var.set(bool(on))
        if on:
            self._show_hint(words.FULL_SCREEN_HINT)
        self.canvas_focus()

    def toggle_fullscreen(self):
        self.set_fullscreen(not self.fullscreen)

    def set_show_both(self, on):
        self.toolbar.pointers_var.set(bool(on))
        self._update_local_cursor()
        if self._cursor_at is not None:
            self._on_cursor(*self._cursor_at)

    def select_monitor(self, index):
        """Ask the host for monitor `index` (0: all monitors as one picture)."""
        self._wanted_monitor = None
        if self.session.running:
            self.session.select_monitor(index)
        self.canvas_focus()

    def set_quality(self, name):
        label, quality, fps_cap = QUALITIES[name]
        self.toolbar.quality_var.set(name)
        if self.session.running:
            self.session.set_quality(quality, fps_cap)

    def set_clipboard_sync(self, on):
        self.toolbar.clipboard_var.set(bool(on))
        link = self.session.clipboard
        if link is not None:
            link.enabled = bool(on)
        if self._set_clipboard_sync is not None:
            self._set_clipboard_sync(bool(on))

    def open_files(self):
        """The files panel of this session (one; brought to the front when open already)."""
        from tagio.ui.files_panel import FilesPanel
        if self.files_panel is not None and self.files_panel.winfo_exists():
            return self.files_panel.lift()
        self.files_panel = FilesPanel(self, self.session, title=f"Files \u2014 {self.partner_title}")

    def toggle_chat(self, on=None, focus=True):
        """Show (on=True), hide (False) or flip the chat panel on the right of the picture. Shown by
        a partner's line (focus=False) it leaves the keyboard where it is: the user may be typing
        to the partner's screen."""
        shown = bool(self.chat.winfo_manager())
        if on is None:
            on = not shown
        if on and not shown:
            self.chat.grid(row=1, column=2, rowspan=2, sticky="ns", padx=(4, 4), pady=4)
            if focus:
                self.chat.entry.focus_set()
        elif not on and shown:
            self.chat.grid_remove()
            self.canvas_focus()

    def ask_screenshot(self):
        """Ask where to save the remote screen (a Tk file dialog), then save it."""
        from tkinter import filedialog
        self.release_held()
        name = f"tagio-{time.strftime('%Y%m%d-%H%M%S')}.png"
        path = filedialog.asksaveasfilename(parent=self, title="Save the partner's screen",
                                            initialfile=name, defaultextension=".png",
                                            filetypes=[("PNG image", "*.png"), ("JPEG image", "*.jpg")])
        if path:
            self.save_screenshot(path)
        self.canvas_focus()

    def save_screenshot(self, path):
        """Save the remote screen as received (full resolution, whatever the zoom); False when
        there is no picture yet. A file that cannot be written is said on the picture."""
        fb = self.session.framebuffer
        if fb is None:
            return False
        try:
            fb.save(path)
        except (OSError, ValueError) as exc:
            self._show_hint(f"Could not save the screenshot: {exc}")
            return False
        self._show_hint(f"Saved {path}")
        return True

    def _show_hint(self, text, ms=HINT_MS):
        """A short message over the top of the picture (full screen hint, screenshot saved)."""
        self.hint.configure(text=text)
        self.hint.place(in_=self.canvas, relx=0.5, y=12, anchor="n")
        self.hint.lift()
        if self._hint_id is not None:
            self.after_cancel(self._hint_id)
        self._hint_id = self.after(ms, self._hide_hint)

    def _hide_hint(self):
        self._hint_id = None
        self.hint.place_forget()

    def view_prefs(self):
        """What to remember of this window for the next session with the same partner."""
        return {"geometry": self._normal_geometry, "zoom": self.toolbar.zoom_var.get(),
                "monitor": self.monitor if self.monitor is not None else 1,
                "quality": self.toolbar.quality_var.get(), "fullscreen": self.fullscreen,
                "toolbar_collapsed": self.toolbar.collapsed, "show_both": self.show_both}

    # -- drawing ------------------------------------------------------------------------------
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

    def _relayout(self):
        """(Re)create the photo at the current scale and draw the whole framebuffer once."""
        if self.remote_size is None:
            return
        self.update_idletasks()
        fit = self.fit
        avail = (self.canvas.winfo_width(), self.canvas.winfo_height())
        self.scale = scale_to_fit(self.remote_size, avail) if fit else self.zoom
        w, h = (max(1, round(v * self.scale)) for v in self.remote_size)
        if self._photo is None or (self._photo.width(), self._photo.height()) != (w, h):
            self._photo = ImageTk.PhotoImage("RGB", (w, h), master=self)
            self.canvas.delete("screen")
            self._image_item = self.canvas.create_image(0, 0, anchor="nw", image=self._photo, tags="screen")
            self.canvas.tag_lower("screen")
        self.canvas.configure(scrollregion=(0, 0, w, h))
        self._show_scrollbars(not fit)
        self._on_refresh()
        if self._cursor_at is not None:
            self._on_cursor(*self._cursor_at)       # same remote spot at the new scale

    def _on_refresh(self):
        fb = self.session.framebuffer
        if fb is not None and self._photo is not None:
            self._put(0, 0, fb)
        self.session.displayed()                # the framebuffer holds every frame decoded so far
        shape = self.session.cursor_shape       # its update may have been dropped
        if shape is not None:
            self._on_cursor_shape(*shape)

    def _on_rects(self, frame_id, pieces, capture_time):
        if self._photo is not None:
            for x, y, img in pieces:
                self._put(x, y, img)
            self.shown_frame = frame_id
            self.canvas.delete("message")       # the picture is here: no more "waiting"
        self.session.displayed(frame_id)

    def _put(self, x, y, img):
        """Copy one remote rectangle into the photo at the display scale."""
        if self.scale != 1.0:
            x0, y0 = int(x * self.scale), int(y * self.scale)
            x1 = int((x + img.width) * self.scale)
            y1 = int((y + img.height) * self.scale)
            if x1 <= x0 or y1 <= y0:
                return
            img, x, y = img.resize((x1 - x0, y1 - y0), Image.BILINEAR), x0, y0
        if (x, y) == (0, 0) and img.size == (self._photo.width(), self._photo.height()):
            self._photo.paste(img)      # a whole screen: one blit, no intermediate photo
        else:
            piece = ImageTk.PhotoImage(img, master=self)
            self.tk.call(str(self._photo), "copy", str(piece), "-to", x, y)
        self.drawn_rects += 1

    def _on_cursor(self, x, y):
        """The host's pointer is at (x, y) on its screen."""
        self._cursor_at = (x, y)
        if self._host_pointer_shown():
            self._place_cursor(x * self.scale, y * self.scale)

    def _place_cursor(self, sx, sy):
        """Draw the host's pointer with its hot spot at canvas point (sx, sy)."""
        self._cursor_drawn_at = (sx, sy)
        if self._cursor_photo is not None:
            hx, hy = self._cursor_hot
            coords = (sx - hx * self.scale, sy - hy * self.scale)
            if self._cursor_item is None:
                self._cursor_item = self.canvas.create_image(*coords, anchor="nw", image=self._cursor_photo)
            else:
                self.canvas.coords(self._cursor_item, *coords)
                self.canvas.itemconfigure(self._cursor_item, image=self._cursor_photo)
        else:
            shape = [v + (sx if i % 2 == 0 else sy) for i, v in enumerate(CURSOR_SHAPE)]
            if self._cursor_item is None:
                self._cursor_item = self.canvas.create_polygon(*shape, fill="white", outline="black")
            else:
                self.canvas.coords(self._cursor_item, *shape)
        self.canvas.tag_raise(self._cursor_item)

    def _on_cursor_shape(self, hot_x, hot_y, image):
        """Draw the host's own pointer picture from now on (scaled like the screen)."""
        if self.scale != 1.0:
            size = (max(1, round(image.width * self.scale)), max(1, round(image.height * self.scale)))
            image = image.resize(size, Image.BILINEAR)
        self._cursor_photo = ImageTk.PhotoImage(image, master=self)
        self._cursor_hot = (hot_x, hot_y)
        if self._cursor_item is not None:
            self.canvas.delete(self._cursor_item)     # a polygon arrow becomes an image item
            self._cursor_item = None
        if self._cursor_drawn_at is not None:
            self._place_cursor(*self._cursor_drawn_at)  # the new picture where the old one was
        if self._cursor_at is not None:
            self._on_cursor(*self._cursor_at)

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
        self.canvas.delete("message")
        self.canvas.create_text(max(self.canvas.winfo_width(), 2) // 2, max(self.canvas.winfo_height(), 2) // 2,
                                text=words.RECONNECTING, fill="#ffffff",
                                tags="message", font=("TkDefaultFont", 14))
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
        if self.files_panel is not None and self.files_panel.winfo_exists():
            self.files_panel.resume_with(session)   # its transfers continue on the new session
        self._update_status(force=True)

    def _on_closed(self, text):
        if self.reconnecting:
            return              # the old session's end: the owner is bringing it back
        self._closed_text = text
        if self.shown_frame is None:
            self.canvas.itemconfigure("message", text=f"Session ended: {words.ending(text)}")
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
        for name in ("_poll_id", "_hint_id"):
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
