"""The session window's toolbar: Disconnect, full screen, view, monitor, quality, keys, clipboard,
screenshot, and places for Files and Chat.

Theory of operation. The toolbar is a view: it owns its widgets and the Tk variables behind them
(zoom, pointers, monitor, quality, clipboard, full screen) and calls the session window back through
one dict of callbacks (`actions`), by name. What each menu offers is a table here (ZOOMS, QUALITIES,
SPECIAL_KEYS), not a chain of ifs; the window maps the choices to session calls.

Keyboard: every control takes focus, so Tab and Shift+Tab walk along the bar and Space opens a menu
or presses a button; the window's local shortcut (Ctrl+Alt+Home) puts the focus on the first control
and Escape gives it back to the picture. The bar collapses to a small handle that opens
it again ("collapsed" is remembered by the window like the rest of the view). The bar is gridded
by the window; collapsing removes it from the grid and places the handle over the picture.
"""

import tkinter as tk
from tkinter import ttk

from tagio.ui import theme

# value of the zoom variable -> menu label. "fit" scales the picture to the window.
ZOOMS = (("fit", "Fit to window"), ("1.0", "1:1 (100%)"), ("0.5", "50%"), ("0.75", "75%"),
         ("1.5", "150%"), ("2.0", "200%"))
# name -> (menu label, JPEG quality, frame-rate cap sent as SetQuality; 0 keeps the host's cap)
QUALITIES = {
    "sharpest": ("Sharpest picture", 92, 0),
    "balanced": ("Balanced", 75, 0),
    "fastest": ("Fastest (lower quality)", 40, 0),
}
DEFAULT_QUALITY = "balanced"
# menu label -> keys pressed in order and released in reverse (the local keyboard never sends these:
# the local system takes them first)
SPECIAL_KEYS = (
    ("Ctrl+Alt+Del", ("Control_L", "Alt_L", "Delete")),
    ("Alt+Tab", ("Alt_L", "Tab")),
    ("Super (Windows key)", ("Super_L",)),
    ("Ctrl+Esc", ("Control_L", "Escape")),
    ("Print Screen", ("Print",)),
    ("Alt+F4", ("Alt_L", "F4")),
)
ALL_MONITORS = 0
COLLAPSE, EXPAND = "\u25b4", "\u25be \u2009Toolbar"


def monitor_label(index, monitors) -> str:
    """Menu label for one monitor index (0: all monitors as one picture, their bounding box)."""
    if index == ALL_MONITORS:
        right = max(left + w for left, _top, w, _h in monitors)
        bottom = max(top + h for _left, top, _w, h in monitors)
        left0, top0 = min(m[0] for m in monitors), min(m[1] for m in monitors)
        return f"All monitors \u2014 {right - left0}x{bottom - top0}"
    _left, _top, w, h = monitors[index - 1]
    return f"Monitor {index} \u2014 {w}x{h}"


def _styles(widget):
    """Compact toolbar styles (the home window's buttons are larger): derived from the theme's."""
    style = ttk.Style(widget)
    style.configure("Toolbar.TButton", padding=(8, 1))
    style.configure("Toolbar.TMenubutton", padding=(6, 1), width=-4)
    style.configure("ToolbarAccent.TButton", padding=(10, 1), background=theme.ACCENT, foreground="#ffffff",
                    bordercolor=theme.ACCENT)
    style.map("ToolbarAccent.TButton", background=[("active", "#b93a26")])


def monitor_button_text(current, monitors) -> str:
    """The Monitor button shows the choice: "Monitor 2", "All monitors" ("Monitor" before a list)."""
    if not monitors or current > len(monitors):
        return "Monitor"
    return monitor_label(current, monitors).split(" \u2014 ")[0]


class Toolbar(ttk.Frame):
    """The bar along the top of the session window. `actions`: name -> callback (see _build)."""

    def __init__(self, master, actions, *, zoom="fit", quality=DEFAULT_QUALITY, clipboard=True,
                 show_both=False):
        super().__init__(master, padding=(4, 2))
        _styles(self)
        self.actions = actions
        self.zoom_var = tk.StringVar(self, value=zoom)
        self.quality_var = tk.StringVar(self, value=quality)
        self.pointers_var = tk.BooleanVar(self, value=show_both)
        self.clipboard_var = tk.BooleanVar(self, value=clipboard)
        self.fullscreen_var = tk.BooleanVar(self, value=False)
        self.monitor_var = tk.IntVar(self, value=1)
        self.collapsed = False
        self.row = ttk.Frame(self)
        # collapsed, a small handle over the top of the picture opens the bar again
        self.strip = ttk.Button(master, text=EXPAND, style="Toolbar.TButton", command=self.expand, takefocus=1)
        self.controls = []
        self._build()
        self.row.pack(fill="x")

    # -- building ------------------------------------------------------------------------------
    def _button(self, text, action, **options):
        options.setdefault("style", "Toolbar.TButton")
        options.setdefault("width", 0)          # as wide as its text (ttk's default is wider)
        button = ttk.Button(self.row, text=text, command=self.actions[action] if action else None,
                            takefocus=1, **options)
        return self._add(button)

    def _add(self, widget):
        widget.pack(side="left", padx=2)
        widget.bind("<Escape>", lambda _e: self.actions["focus_picture"]())
        self.controls.append(widget)
        return widget

    def _menu(self, text):
        button = ttk.Menubutton(self.row, text=text, takefocus=1, style="Toolbar.TMenubutton")
        menu = tk.Menu(button, tearoff=0)
        button["menu"] = menu
        self._add(button)
        return button, menu

    def _build(self):
        # Packed first so that a narrow window squeezes the other controls, never this one.
        self.collapse_button = ttk.Button(self.row, text=COLLAPSE, width=2, command=self.collapse, takefocus=1,
                                          style="Toolbar.TButton")
        self.collapse_button.pack(side="right", padx=2)
        self.collapse_button.bind("<Escape>", lambda _e: self.actions["focus_picture"]())
        self.disconnect_button = self._button("Disconnect", "disconnect", style="ToolbarAccent.TButton")
        self.fullscreen_button = self._add(ttk.Checkbutton(
            self.row, text="Full screen", style="Toolbutton", variable=self.fullscreen_var,
            command=lambda: self.actions["fullscreen"](self.fullscreen_var.get()), takefocus=1))
        self.view_button, self.view_menu = self._menu("View")
        for value, label in ZOOMS:
            self.view_menu.add_radiobutton(label=label, value=value, variable=self.zoom_var,
                                           command=lambda: self.actions["zoom"](self.zoom_var.get()))
        self.view_menu.add_separator()
        self.view_menu.add_checkbutton(label="Show both pointers", variable=self.pointers_var,
                                       command=lambda: self.actions["pointers"](self.pointers_var.get()))
        self.monitor_button, self.monitor_menu = self._menu("Monitor")
        self.quality_button, self.quality_menu = self._menu("Quality")
        for name, (label, _q, _fps) in QUALITIES.items():
            self.quality_menu.add_radiobutton(label=label, value=name, variable=self.quality_var,
                                              command=lambda: self.actions["quality"](self.quality_var.get()))
        self.keys_button, self.keys_menu = self._menu("Keys")
        for label, keys in SPECIAL_KEYS:
            self.keys_menu.add_command(label=label, command=lambda k=keys: self.actions["keys"](k))
        self.clipboard_button = self._add(ttk.Checkbutton(
            self.row, text="Clipboard", variable=self.clipboard_var, takefocus=1,
            command=lambda: self.actions["clipboard"](self.clipboard_var.get())))
        self.screenshot_button = self._button("Screenshot\u2026", "screenshot")
        self.files_button = self._button("Files", None, state="disabled")
        self.chat_button = self._button("Chat", None, state="disabled")
        self.collapse_button.lift()     # last in the stacking order: last for Tab, too
        self.set_monitors(1, [])

    # -- what the window tells it --------------------------------------------------------------
    def set_monitors(self, current, monitors):
        """Fill the monitor menu: each monitor with its size, then "All monitors" when there are
        several. A single monitor leaves the button disabled (nothing to choose)."""
        self.monitor_menu.delete(0, "end")
        self.monitor_var.set(current)
        choices = list(range(1, len(monitors) + 1)) + ([ALL_MONITORS] if len(monitors) > 1 else [])
        for index in choices:
            self.monitor_menu.add_radiobutton(label=monitor_label(index, monitors), value=index,
                                              variable=self.monitor_var,
                                              command=lambda i=index: self.actions["monitor"](i))
        self.monitor_button.configure(state="normal" if len(monitors) > 1 else "disabled",
                                      text=monitor_button_text(current, monitors))

    def set_view_only(self, view_only):
        """No input in view-only: the key menu and clipboard sync are of no use."""
        state = "disabled" if view_only else "normal"
        self.keys_button.configure(state=state)

    # -- collapsing and focus --------------------------------------------------------------------
    def collapse(self):
        """Give the bar's height to the picture; a handle at the top centre brings it back."""
        self.collapsed = True
        self.grid_remove()
        self.strip.place(in_=self.actions["picture"](), relx=0.5, y=0, anchor="n")
        self.strip.lift()
        self.actions["focus_picture"]()

    def expand(self):
        self.collapsed = False
        self.strip.place_forget()
        self.grid()

    def focus_first(self):
        """Open the bar if needed and put the keyboard on its first control."""
        if self.collapsed:
            self.expand()
        self.disconnect_button.focus_set()

    def destroy(self):
        super().destroy()
        # Tk variables must die on the Tk thread, not in a later garbage collection elsewhere.
        self.zoom_var = self.quality_var = self.pointers_var = None
        self.clipboard_var = self.fullscreen_var = self.monitor_var = None
