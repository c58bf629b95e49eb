"""The session window's toolbar actions, and the view it remembers per partner.

Theory of operation. `ViewerActions` is a mixin of ViewerWindow: the toolbar (tagio.ui.toolbar) is
a view that calls the window back through one dict of callbacks (`_toolbar_actions`), and these
methods map each choice to the session or to the window. A monitor choice is SelectMonitor (0 =
all monitors as one picture), a quality choice is SetQuality (toolbar.QUALITIES), special keys are
Key presses (viewer_input.send_keys); none of them waits on the network (the session's sender
thread sends). Full screen is Tk's -fullscreen attribute; Ctrl+Alt+Enter leaves it (a local
shortcut, never sent). A screenshot saves the session's framebuffer (full resolution) to a file
chosen in a save dialog, which opens in the folder used last, else the user's Pictures folder,
else the home folder (screenshot_folder). Files opens the files panel (tagio.ui.files_panel) and
Chat shows or hides the chat panel on the right of the picture (tagio.ui.chat_panel), which also opens by itself
when the partner writes. The "Clipboard" switch turns the session's own ClipboardLink on and off
(tagio.session.clipboard_sync, not Tk's clipboard) and tells the owner.

The toolbar's Tk variables are the one record of the choices (zoom, pointers, quality, clipboard,
full screen); `view_prefs()` reads them, with the window's normal geometry and monitor, as what
the owner remembers per partner, and `_restore(prefs)` applies such a record when a window opens.
A short hint over the top of the picture (HINT_MS) says what just happened; it wraps to the
picture's width, also when that changes while it shows, so a long text is never cut off.
"""

import os
import time
import tkinter as tk
from pathlib import Path

from tagio.client import words
from tagio.ui.toolbar import QUALITIES

HINT_MS = 3000                  # how long a hint stays over the picture
HINT_MARGIN = 8                 # pixels between the hint and the picture's sides
HINT_MIN_WRAP = 120
PICTURES = "Pictures"           # the pictures folder's name in the home folder (Windows, most Linux)
_last_screenshot_folder = None  # where the last screenshot of this process went (Tk thread only)


def screenshot_folder(last=None, home=None, environ=None) -> str:
    """Where the screenshot dialog opens: the folder used last (while it exists), else the user's
    pictures folder (XDG_PICTURES_DIR of user-dirs.dirs, else Pictures in the home folder), else
    the home folder. Never the working directory: a program started from a menu has "/" there."""
    home = str(home or Path.home())
    for folder in (last, _xdg_pictures(home, environ), os.path.join(home, PICTURES)):
        if folder and os.path.isdir(folder):
            return folder
    return home


def _xdg_pictures(home, environ=None):
    """XDG_PICTURES_DIR from $XDG_CONFIG_HOME/user-dirs.dirs (a translated "Bilder"...), or None."""
    environ = os.environ if environ is None else environ
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    try:
        with open(os.path.join(config, "user-dirs.dirs"), encoding="utf-8") as f:
            lines = f.read(64 * 1024).splitlines()
    except (OSError, UnicodeError):
        return None
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == "XDG_PICTURES_DIR":
            return value.strip().strip('"').replace("$HOME", home)
    return None


class ViewerActions:
    """Mixin: needs toolbar, canvas, chat, hint (a tk.Label), session, monitor, partner_title, files_panel,
    _normal_geometry, _wanted_monitor, _hint_id, _cursor_at, _set_clipboard_sync, release_held(),
    _relayout(), _on_cursor() and _update_local_cursor() from the window."""

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
        """Ask where to save the remote screen (a Tk file dialog opened in screenshot_folder()),
        then save it; the folder chosen is where the next one opens."""
        from tkinter import filedialog
        global _last_screenshot_folder
        self.release_held()
        name = f"tagio-{time.strftime('%Y%m%d-%H%M%S')}.png"
        path = filedialog.asksaveasfilename(parent=self, title="Save the partner's screen",
                                            initialdir=screenshot_folder(_last_screenshot_folder),
                                            initialfile=name, defaultextension=".png",
                                            filetypes=[("PNG image", "*.png"), ("JPEG image", "*.jpg")])
        if path:
            _last_screenshot_folder = os.path.dirname(os.path.abspath(path))
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
        self.hint.configure(text=text, wraplength=self._hint_wrap())
        self.hint.place(in_=self.canvas, relx=0.5, y=12, anchor="n")
        self.hint.lift()
        if self._hint_id is not None:
            self.after_cancel(self._hint_id)
        self._hint_id = self.after(ms, self._hide_hint)

    def _hint_wrap(self):
        """Lines of the hint as wide as the picture allows (a long path wraps, never cut off)."""
        padding = 2 * int(self.hint.cget("padx")) + 2 * HINT_MARGIN
        return max(HINT_MIN_WRAP, self.canvas.winfo_width() - padding)

    def _fit_hint(self, _event=None):
        """The picture changed size (window, chat panel): a hint on show wraps to it again."""
        if self.hint.winfo_manager():
            self.hint.configure(wraplength=self._hint_wrap())

    def _hide_hint(self):
        self._hint_id = None
        self.hint.place_forget()

    def view_prefs(self):
        """What to remember of this window for the next session with the same partner."""
        return {"geometry": self._normal_geometry, "zoom": self.toolbar.zoom_var.get(),
                "monitor": self.monitor if self.monitor is not None else 1,
                "quality": self.toolbar.quality_var.get(), "fullscreen": self.fullscreen,
                "toolbar_collapsed": self.toolbar.collapsed, "show_both": self.show_both}
