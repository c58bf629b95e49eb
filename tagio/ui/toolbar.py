"""The session window's toolbar: Disconnect, full screen, view, monitor, quality, keys, clipboard,
screenshot, Files and Chat (enabled once the host's Hello offers them: set_capabilities).

Theory of operation. The toolbar is a view: it owns its widgets and the Tk variables behind them
(zoom, pointers, monitor, quality, clipboard, full screen) and calls the session window back through
one dict of callbacks (`actions`), by name. What each menu offers is a table here (ZOOMS, QUALITIES,
SPECIAL_KEYS), not a chain of ifs; the window maps the choices to session calls.

Narrow windows: the controls keep their order from the left, and those that do not fit go into an
overflow menu ("»", just left of the collapse handle) as equivalent entries: a button becomes a
command, a switch a check entry on the same Tk variable, a menu a cascade filled by the same
function as the toolbar's own menu (so both show the same choice). Which controls fit is recomputed
from their requested widths whenever the bar or a control changes size (<Configure>), and the menu
is rebuilt when the set or a control's state changes: every action stays reachable at any width.

Keyboard: every control takes focus, so Tab and Shift+Tab walk along the bar (controls in the
overflow are unmapped and skipped; the "»" button takes their place) and Space opens a menu
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
OVERFLOW = "\u00bb"
PADX = 2                # each control's pack padding on either side


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
    # the full-screen switch looks like the buttons beside it (raised), pressed in while on
    style.configure("ToolbarToggle.Toolbutton", padding=(8, 1), relief="raised")
    # the overflow button is a menu button without the drop-down arrow: "\u00bb" says it all
    style.layout("ToolbarMore.TMenubutton", _without_indicator(style.layout("TMenubutton")))
    style.configure("ToolbarMore.TMenubutton", padding=(8, 1), width=-2)


def _without_indicator(layout):
    """A ttk layout (a list of (element, options)) with its indicator elements left out."""
    kept = []
    for element, options in layout:
        if "indicator" in element:
            continue
        options = dict(options)
        if "children" in options:
            options["children"] = _without_indicator(options["children"])
        kept.append((element, options))
    return kept


def fits(widths, room) -> int:
    """How many of the controls (their widths, in order) fit side by side in `room` pixels."""
    used = 0
    for count, width in enumerate(widths):
        used += width
        if used > room:
            return count
    return len(widths)


def _slot(widget) -> int:
    """The width a control takes on the bar: what it asks for plus its padding."""
    return widget.winfo_reqwidth() + 2 * PADX


def _state(widget) -> str:
    return "disabled" if widget.instate(["disabled"]) else "normal"


def _command_entry(menu, widget):
    """A button's overflow entry: the same text, the same command (invoke: nothing when disabled)."""
    menu.add_command(label=widget.cget("text"), command=widget.invoke, state=_state(widget))


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
        self.view_only, self._clipboard_was = False, clipboard     # (set_view_only)
        self.controls, self.shown = [], 0      # toolbar order; the first `shown` are on the bar
        self._entries, self._fills = {}, {}    # control -> its overflow entry; menu button -> fill(menu)
        self._monitors = []
        self.row = ttk.Frame(self)
        # collapsed, a small handle over the top of the picture opens the bar again
        self.strip = ttk.Button(master, text=EXPAND, style="Toolbar.TButton", command=self.expand, takefocus=1)
        self._build()
        self.shown = len(self.controls)         # all of them until the bar has a width (_fit)
        self.set_monitors(1, [])
        self.row.pack(fill="x")

    # -- building ------------------------------------------------------------------------------
    def _button(self, text, action, **options):
        options.setdefault("style", "Toolbar.TButton")
        options.setdefault("width", 0)          # as wide as its text (ttk's default is wider)
        button = ttk.Button(self.row, text=text, command=self.actions[action] if action else None,
                            takefocus=1, **options)
        return self._add(button, _command_entry)

    def _switch(self, text, variable, action, **options):
        """A check button on `variable`; its overflow entry is a check entry on the same variable."""
        command = lambda: self.actions[action](variable.get())
        button = ttk.Checkbutton(self.row, text=text, variable=variable, command=command, takefocus=1, **options)
        return self._add(button, lambda menu, widget: menu.add_checkbutton(
            label=widget.cget("text"), variable=variable, command=command, state=_state(widget)))

    def _add(self, widget, entry):
        """Pack a control and say how it looks in the overflow menu: entry(menu, widget)."""
        widget.pack(side="left", padx=PADX)
        widget.bind("<Escape>", lambda _e: self.actions["focus_picture"]())
        widget.bind("<Configure>", self._fit, add="+")     # a new text may change what fits
        self.controls.append(widget)
        self._entries[widget] = entry
        return widget

    def _menu(self, text, fill):
        """A menu button whose menu `fill(menu)` fills; in the overflow it is a cascade filled alike."""
        button = ttk.Menubutton(self.row, text=text, takefocus=1, style="Toolbar.TMenubutton")
        menu = tk.Menu(button, tearoff=0)
        button["menu"] = menu
        fill(menu)
        self._fills[button] = fill
        self._add(button, self._cascade_entry)
        return button, menu

    def _cascade_entry(self, menu, button):
        sub = tk.Menu(menu, tearoff=0)
        self._fills[button](sub)
        menu.add_cascade(label=button.cget("text"), menu=sub, state=_state(button))

    def _build(self):
        # Packed first so that a narrow window squeezes the other controls, never this one.
        self.collapse_button = ttk.Button(self.row, text=COLLAPSE, width=2, command=self.collapse, takefocus=1,
                                          style="Toolbar.TButton")
        self.collapse_button.pack(side="right", padx=PADX)
        self.collapse_button.bind("<Escape>", lambda _e: self.actions["focus_picture"]())
        self.disconnect_button = self._button("Disconnect", "disconnect", style="ToolbarAccent.TButton")
        self.fullscreen_button = self._switch("Full screen", self.fullscreen_var, "fullscreen",
                                              style="ToolbarToggle.Toolbutton")
        self.view_button, self.view_menu = self._menu("View", self._fill_view)
        self.monitor_button, self.monitor_menu = self._menu("Monitor", self._fill_monitors)
        self.quality_button, self.quality_menu = self._menu("Quality", self._fill_quality)
        self.keys_button, self.keys_menu = self._menu("Keys", self._fill_keys)
        self.clipboard_button = self._switch("Clipboard", self.clipboard_var, "clipboard")
        self.screenshot_button = self._button("Screenshot\u2026", "screenshot")
        self.files_button = self._button("Files\u2026", "files", state="disabled")
        self.chat_button = self._button("Chat", "chat", state="disabled")
        self.overflow_button = ttk.Menubutton(self.row, text=OVERFLOW, takefocus=1,
                                              style="ToolbarMore.TMenubutton")
        self.overflow_menu = tk.Menu(self.overflow_button, tearoff=0)
        self.overflow_button["menu"] = self.overflow_menu
        self.overflow_button.bind("<Escape>", lambda _e: self.actions["focus_picture"]())
        self.collapse_button.lift()     # last in the stacking order: last for Tab, too
        self.row.bind("<Configure>", self._fit, add="+")

    def _fill_view(self, menu):
        for value, label in ZOOMS:
            menu.add_radiobutton(label=label, value=value, variable=self.zoom_var,
                                 command=lambda: self.actions["zoom"](self.zoom_var.get()))
        menu.add_separator()
        menu.add_checkbutton(label="Show both pointers", variable=self.pointers_var,
                             command=lambda: self.actions["pointers"](self.pointers_var.get()))

    def _fill_monitors(self, menu):
        """Each monitor with its size, then "All monitors" when there are several."""
        monitors = self._monitors
        choices = list(range(1, len(monitors) + 1)) + ([ALL_MONITORS] if len(monitors) > 1 else [])
        for index in choices:
            menu.add_radiobutton(label=monitor_label(index, monitors), value=index, variable=self.monitor_var,
                                 command=lambda i=index: self.actions["monitor"](i))

    def _fill_quality(self, menu):
        for name, (label, _q, _fps) in QUALITIES.items():
            menu.add_radiobutton(label=label, value=name, variable=self.quality_var,
                                 command=lambda: self.actions["quality"](self.quality_var.get()))

    def _fill_keys(self, menu):
        for label, keys in SPECIAL_KEYS:
            menu.add_command(label=label, command=lambda k=keys: self.actions["keys"](k))

    # -- narrow windows: the overflow menu ----------------------------------------------------------
    def _fit(self, _event=None):
        """Show the longest run of controls from the left that fits; the rest go to the overflow."""
        room = self.row.winfo_width() - _slot(self.collapse_button)
        if room <= 0:
            return          # not laid out yet
        widths = [_slot(widget) for widget in self.controls]
        if sum(widths) > room:
            room -= _slot(self.overflow_button)
        shown = fits(widths, room)
        if shown != self.shown:
            self.shown = shown
            self._repack()

    def _repack(self):
        for widget in self.controls + [self.overflow_button]:
            widget.pack_forget()
        for widget in self.controls[:self.shown]:
            widget.pack(side="left", padx=PADX)
        if self.hidden:
            self.overflow_button.pack(side="left", padx=PADX)
        self._refresh_overflow()

    @property
    def hidden(self):
        """The controls that do not fit and are in the overflow menu, in toolbar order."""
        return self.controls[self.shown:]

    def _refresh_overflow(self):
        """Rebuild the overflow menu from the hidden controls (their texts and states now)."""
        self.overflow_menu.delete(0, "end")
        for sub in self.overflow_menu.winfo_children():
            sub.destroy()
        for widget in self.hidden:
            self._entries[widget](self.overflow_menu, widget)

    # -- what the window tells it --------------------------------------------------------------
    def set_monitors(self, current, monitors):
        """Fill the monitor menu: each monitor with its size, then "All monitors" when there are
        several. A single monitor leaves the button disabled (nothing to choose)."""
        self._monitors = list(monitors)
        self.monitor_menu.delete(0, "end")
        self.monitor_var.set(current)
        self._fill_monitors(self.monitor_menu)
        self.monitor_button.configure(state="normal" if len(monitors) > 1 else "disabled",
                                      text=monitor_button_text(current, monitors))
        self._refresh_overflow()

    def set_capabilities(self, files, chat):
        """What the host offers (its Hello): Files needs a files folder on the host's side."""
        self.files_button.configure(state="normal" if files else "disabled")
        self.chat_button.configure(state="normal" if chat else "disabled")
        self._refresh_overflow()

    def set_view_only(self, view_only):
        """No input in view-only: the key menu and clipboard sync are of no use. The Clipboard
        switch is unticked (a view-only host shares no clipboard) and ticked again as it was if
        a later session is not view-only; the owner's clipboard choice is not told (not a choice)."""
        state = "disabled" if view_only else "normal"
        self.keys_button.configure(state=state)
        if view_only and not self.view_only:
            self._clipboard_was = self.clipboard_var.get()
            self.clipboard_var.set(False)
        elif self.view_only and not view_only:
            self.clipboard_var.set(self._clipboard_was)
        self.view_only = view_only
        self.clipboard_button.configure(state=state)
        self._refresh_overflow()

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
        (self.controls[0] if self.shown else self.overflow_button).focus_set()

    def destroy(self):
        super().destroy()
        # Tk variables must die on the Tk thread, not in a later garbage collection elsewhere
        # ("main thread is not in main loop"): drop every reference to them here, the switches'
        # overflow entries too (their closures hold the switch's variable).
        self.zoom_var = self.quality_var = self.pointers_var = None
        self.clipboard_var = self.fullscreen_var = self.monitor_var = None
        self._entries.clear()
