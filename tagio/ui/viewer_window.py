"""The Tk session window: the partner's screen, mouse and keyboard, and a status line.

Theory of operation. The seam with the session is one-way both ways. The ViewerSession's threads
never touch Tk; they post typed events (tagio.session.events) to `session.updates`, which this window
drains from an `after()` poll that reschedules itself until the window closes (idlelib's
poll_subprocess pattern), so only the Tk main thread touches widgets. Input and "frame drawn"
reports go back through the session's send_* methods and displayed(), which only hand the message to
the session's sender thread: nothing here ever waits on the network.

Drawing: one Tk photo image of the remote screen (at the display scale) shown on a Canvas. A changed
rectangle becomes a small ImageTk photo that is copied into the big one with `copy -to` - a
12-tile change costs well under a millisecond, where re-pasting the whole screen costs ~10 ms
(still the fastest way to show a whole new screen: measured against a Tk `put` of PPM data, 29-57
ms, and `copy -to` from a new photo, ~15 ms). The window tells the session which frame it has drawn
(`displayed`), and the session acknowledges frames only then, so the host sends what the window
can show instead of frames it would skip. While updates keep arriving (any within STREAMING_FOR
seconds) the queue is polled every FAST_POLL_MS (less waiting between decode and screen),
otherwise every POLL_MS.
"Fit" scales the remote screen to the window (pieces are resized before the copy, and a new window
size redraws once from the framebuffer); "1:1" shows it unscaled with scrollbars. Mouse positions
are mapped back through the same scale (and the scroll offset) so a click lands on the pixel under
the local pointer. Key events become text or named keys as tagio.ui.keys decides (printable text is
sent as characters, whatever the two layouts; shortcuts and special keys as key presses).
"""

import queue
import time
import tkinter as tk

from PIL import Image, ImageTk

from tagio.session import events as ev
from tagio.protocol.session import MAX_CLIPBOARD
from tagio.platform import WINDOWS
from tagio.ui.keys import KeyboardState
from tagio.ui.pointer import WheelAccumulator, button_role

POLL_MS = 15
FAST_POLL_MS = 4                # while frames are streaming in ...
STREAMING_FOR = 0.5             # ... i.e. for this many seconds after the last update
MAX_UPDATES_PER_POLL = 200      # keep the UI responsive even if the queue is full
STATUS_EVERY = 0.5              # seconds between status-line refreshes
CURSOR_SHAPE = (0, 0, 0, 16, 4, 12, 8, 19, 10, 18, 6, 11, 12, 11)   # a small arrow polygon


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


class ViewerWindow(tk.Toplevel):
    def __init__(self, tk_master, viewer_session, title, *, fit=True, on_close=None):
        super().__init__(tk_master)
        self.session = viewer_session
        self.partner_title = title
        self._fit_var = tk.BooleanVar(self, value=fit)
        self.scale = 1.0
        self.remote_size = None
        self._photo = None
        self._image_item = None
        self._cursor_item = None
        self._cursor_photo = None
        self._cursor_hot = (0, 0)
        self._cursor_at = None
        self._last_motion = None
        self._keyboard = KeyboardState(self.tk.call("tk", "windowingsystem"))
        self._held_buttons = set()
        self._wheel_acc = WheelAccumulator(WINDOWS)     # touchpads send small deltas (tagio.ui.pointer)
        self._clipboard_seen = None
        self._canvas_size = None
        self._status_at = 0.0
        self._streaming_until = 0.0
        self._closed_text = None
        self._on_close = on_close
        self._poll_id = None
        self.drawn_rects = 0        # count of rectangles copied into the photo (for tests/diagnostics)
        self.shown_frame = None     # id of the newest frame on screen
        self.title(title)
        self.protocol("WM_DELETE_WINDOW", self.close)
        self._build()
        self._bind_input()
        self._poll_id = self.after(POLL_MS, self._poll)
        self.session.attach_display()

    # -- widgets ------------------------------------------------------------------------------
    def _build(self):
        self.geometry("1024x700")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self.canvas = tk.Canvas(self, bg="#202020", highlightthickness=0, takefocus=1)
        self.hbar = tk.Scrollbar(self, orient="horizontal", command=self.canvas.xview)
        self.vbar = tk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(xscrollcommand=self.hbar.set, yscrollcommand=self.vbar.set)
        self.canvas.grid(row=0, column=0, sticky="nsew")
        bar = tk.Frame(self)
        bar.grid(row=2, column=0, columnspan=2, sticky="ew")
        self.status = tk.Label(bar, anchor="w", text="Waiting for the partner's screen...")
        self.status.pack(side="left", fill="x", expand=True)
        tk.Checkbutton(bar, text="Fit to window", variable=self._fit_var, command=self._relayout,
                       takefocus=0).pack(side="right")
        tk.Button(bar, text="Ctrl+Alt+Del", command=self.send_ctrl_alt_del, takefocus=0).pack(side="right")
        self.monitor_button = tk.Menubutton(bar, text="Monitor", relief="raised", takefocus=0)
        self.monitor_menu = tk.Menu(self.monitor_button, tearoff=0)
        self.monitor_button["menu"] = self.monitor_menu
        self.canvas.bind("<Configure>", self._canvas_resized)

    def _canvas_resized(self, event):
        if self.fit and (event.width, event.height) != self._canvas_size:
            self._canvas_size = (event.width, event.height)
            self._relayout()

    @property
    def fit(self):
        """True: scale the remote screen to the window; False: 1:1 with scrollbars."""
        return bool(self._fit_var is not None and self._fit_var.get())

    def _show_scrollbars(self, show):
        for bar, spec in ((self.hbar, dict(row=1, column=0, sticky="ew")),
                          (self.vbar, dict(row=0, column=1, sticky="ns"))):
            bar.grid(**spec) if show else bar.grid_remove()

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
        self._relayout()

    def _relayout(self):
        """(Re)create the photo at the current scale and draw the whole framebuffer once."""
        if self.remote_size is None:
            return
        self.update_idletasks()
        fit = self.fit
        avail = (self.canvas.winfo_width(), self.canvas.winfo_height())
        self.scale = scale_to_fit(self.remote_size, avail) if fit else 1.0
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
        self._cursor_at = (x, y)
        sx, sy = x * self.scale, y * self.scale
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
        if self._cursor_at is not None:
            self._on_cursor(*self._cursor_at)

    def _on_monitors(self, current, monitors):
        self.monitor_menu.delete(0, "end")
        for index, (left, top, w, h) in enumerate(monitors, start=1):
            mark = "\u2022 " if index == current else "   "
            self.monitor_menu.add_command(label=f"{mark}{index}: {w}x{h} at {left},{top}",
                                          command=lambda i=index: self.session.select_monitor(i))
        if len(monitors) > 1:
            self.monitor_button.pack(side="right")
        else:
            self.monitor_button.pack_forget()

    def _on_closed(self, text):
        self._closed_text = text
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
        ev.Clipboard: lambda self, e: self._on_clipboard(e.text),
    }

    def _update_status(self, force=False):
        now = time.monotonic()
        if not force and now - self._status_at < STATUS_EVERY:
            return
        self._status_at = now
        self.status.configure(text=self.status_text())

    def status_text(self):
        if self._closed_text:
            return f"{self.partner_title} \u2014 session ended: {self._closed_text}"
        stats = self.session.stats
        size = f"{self.remote_size[0]}x{self.remote_size[1]}" if self.remote_size else "-"
        fps = self.session.recent_fps()
        return (f"{self.partner_title} \u2014 {self.session.path} \u2014 {size} \u2014 {fps:.0f} fps"
                f" \u2014 {stats.get('latency_ms', 0)} ms \u2014 {stats.get('bytes', 0) // 1024} KB")

    # -- input --------------------------------------------------------------------------------
    def _bind_input(self):
        c = self.canvas
        c.bind("<Motion>", self._motion)
        c.bind("<ButtonPress>", self._button_down)
        c.bind("<ButtonRelease>", self._button_up)
        c.bind("<MouseWheel>", self._wheel)             # Windows / macOS
        c.bind("<KeyPress>", lambda e: self._key(e, True))
        c.bind("<KeyRelease>", lambda e: self._key(e, False))
        c.bind("<Enter>", lambda e: c.focus_set())
        c.bind("<FocusOut>", lambda e: self.release_held())
        c.bind("<FocusIn>", lambda e: self.offer_clipboard())
        c.focus_set()

    def release_held(self):
        """Let go of every key and button we pressed on the host (our window lost the keyboard,
        so their releases would never reach us and the host would keep them held)."""
        self._send_keys(self._keyboard.release_all())
        for num in sorted(self._held_buttons):
            self._safe(self.session.send_mouse_button, num, False)
        self._held_buttons.clear()

    def offer_clipboard(self):
        """Send our clipboard text to the host when it changed since we last sent or received it
        (checked when the window gets the keyboard: the user copied something elsewhere)."""
        try:
            text = self.clipboard_get()
        except tk.TclError:
            return      # empty, or not text
        if text and text != self._clipboard_seen and len(text.encode("utf-8")) <= MAX_CLIPBOARD:
            self._clipboard_seen = text
            self._safe(self.session.send_clipboard, text)

    def _on_clipboard(self, text):
        self._clipboard_seen = text
        self.clipboard_clear()
        self.clipboard_append(text)

    def send_ctrl_alt_del(self):
        """The secure-attention sequence, as a button (a local Ctrl+Alt+Del never reaches us)."""
        keys = ("Control_L", "Alt_L", "Delete")
        for name in keys:
            self._safe(self.session.send_key, name, True)
        for name in reversed(keys):
            self._safe(self.session.send_key, name, False)

    def remote_point(self, event_x, event_y):
        """Canvas widget coordinates -> remote screen pixel (clamped to the screen)."""
        if self.remote_size is None:
            return None
        cx, cy = self.canvas.canvasx(event_x), self.canvas.canvasy(event_y)
        x = min(max(int(cx / self.scale), 0), self.remote_size[0] - 1)
        y = min(max(int(cy / self.scale), 0), self.remote_size[1] - 1)
        return x, y

    def _safe(self, fn, *args):
        """Input after the session ended is silently dropped; the status line says why.

        `fn` (a ViewerSession send_* method) only hands the message to the session's sender
        thread and returns: it never waits on the network and never raises for it (a path that
        stopped taking data ends the session, which the status line then shows)."""
        if self.session.running:
            fn(*args)

    def _motion(self, event):
        point = self.remote_point(event.x, event.y)
        if point is not None and point != self._last_motion:
            self._last_motion = point
            self._safe(self.session.send_mouse_move, *point)

    def _button_down(self, event):
        self.canvas.focus_set()
        self._button(event, True)

    def _button_up(self, event):
        self._button(event, False)

    def _button(self, event, pressed):
        point = self.remote_point(event.x, event.y)
        if point is None:
            return
        role = button_role(event.num, WINDOWS, shift=bool(event.state & 0x0001))
        kind, value = role if role is not None else (None, None)
        if kind == "scroll" and pressed:        # X11 wheel buttons
            self._safe(self.session.send_scroll, *value)
        elif kind == "keys" and pressed:        # Back/Forward side buttons: Alt+Left/Right
            for name in value:
                self._safe(self.session.send_key, name, True)
            for name in reversed(value):
                self._safe(self.session.send_key, name, False)
        elif kind == "button":
            (self._held_buttons.add if pressed else self._held_buttons.discard)(event.num)
            self._safe(self.session.send_mouse_button, event.num, pressed, *point)

    def _wheel(self, event):
        steps = self._wheel_acc.add(event.delta, time.monotonic())
        if not steps:
            return                              # part of a notch so far (touchpad)
        if event.state & 0x0001:
            self._safe(self.session.send_scroll, -steps, 0)
        else:
            self._safe(self.session.send_scroll, 0, steps)

    def _key(self, event, pressed):
        if pressed:
            actions = self._keyboard.press(event.keycode, event.keysym, event.char, event.state)
        else:
            actions = self._keyboard.release(event.keycode)
        self._send_keys(actions)
        return "break"      # keep Tab & co. from moving focus out of the canvas

    def _send_keys(self, actions):
        for action in actions:
            if action[0] == "text":
                self._safe(self.session.send_text, action[1])
            else:
                self._safe(self.session.send_key, action[1], action[2])

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
        if self._poll_id is not None:
            try:
                self.after_cancel(self._poll_id)
            except tk.TclError:
                pass
            self._poll_id = None
        self._fit_var = None    # a Tk variable must die on the Tk thread, not in a later GC elsewhere
        self.session.detach_display()           # nothing will draw the frames still waiting
        self._photo = self._cursor_photo = None
        super().destroy()
