"""The home window: "This desk" (ID + one-time password) and "Remote desk" (connect).

Theory of operation: HomeWindow is a passive view.  It builds the widgets, forwards user
actions to the callbacks it was given (the controller in app.py), and exposes small
setters (`set_identity`, `set_relay_status`, `set_partners`, ...) that the controller calls
from the Tk thread.  It holds no connection state of its own: enabling/disabling Connect
follows model.HomeMachine in the controller.  Only the Tk main thread may call it.

Texts that may be long wrap instead of widening the window (a long relay error once stretched it
to 6,480 px): a card's lines at the card's width, the relay status where the status bar ends after
"Retry now" and the notice have their room, recomputed on <Configure>. A card's label never asks
for more than the room it is given, and the status bar takes the window's width without asking
for any (pack_propagate off; its height follows what it shows), so the window keeps its width.
The window opens HOME_WIDTH wide (the cards ask for it), centred on the primary monitor
(home_geometry), with or without a window manager.
"""

import tkinter as tk
from tkinter import ttk

from tagio.client import words
from tagio.ui import theme


class HomeWindow(ttk.Frame):
    """Main window content.  `callbacks` maps action name -> callable:
    connect(text), copy_id(), copy_password(), new_password(), settings(), about(), pick(id),
    rename(id), remove(id), history()."""

    def __init__(self, master, fonts, callbacks):
        super().__init__(master, style="TFrame")
        self.fonts = fonts
        self.callbacks = callbacks
        self.partner_var = tk.StringVar(master=self)
        self.id_var = tk.StringVar(master=self, value="\u2014")
        self.password_var = tk.StringVar(master=self, value="\u2014")
        self.status_var = tk.StringVar(master=self, value="Starting\u2026")
        self.id_error_var = tk.StringVar(master=self)
        self.busy_var = tk.StringVar(master=self)
        self.notice_var = tk.StringVar(master=self)
        self._notice_after = None
        self._recent_ids, self._lan_ids = [], []
        self._lan_shown = False
        self.subtitles = []         # the cards' lines under their titles
        self._build_header()
        body = ttk.Frame(self, padding=(PAD_OUT, PAD_OUT, PAD_OUT, 4))
        body.pack(fill="both", expand=True)
        # The cards' width is set here, not by their texts: HOME_WIDTH together.
        card_width = (HOME_WIDTH - 2 * PAD_OUT) // 2     # (a column's minsize holds its padx)
        body.columnconfigure(0, weight=1, uniform="cards", minsize=card_width)
        body.columnconfigure(1, weight=1, uniform="cards", minsize=card_width)
        body.rowconfigure(0, weight=1)
        self._build_this_desk(body).grid(row=0, column=0, sticky="nsew", padx=(0, theme.GAP))
        self._build_remote_desk(body).grid(row=0, column=1, sticky="nsew", padx=(theme.GAP, 0))
        self._build_status_bar()

    # --- construction ---------------------------------------------------------------------

    def _action(self, name, *args):
        return lambda *_event: self.callbacks[name](*args)

    def _build_header(self):
        header = ttk.Frame(self, style="Header.TFrame", padding=(PAD_OUT, 10))
        header.pack(fill="x")
        ttk.Label(header, text="TagIO", style="Header.TLabel").pack(side="left")
        ttk.Label(header, text="  secure remote desktop", style="HeaderSub.TLabel").pack(side="left", pady=(8, 0))
        ttk.Button(header, text="About", style="Small.TButton",
                   command=self._action("about")).pack(side="right")
        self.settings_button = ttk.Button(header, text="Settings", style="Small.TButton",
                                          command=self._action("settings"))
        self.settings_button.pack(side="right", padx=(0, theme.GAP))

    def _card(self, parent, title, subtitle):
        card = ttk.Frame(parent, style="Card.TFrame", padding=CARD_PAD)
        ttk.Label(card, text=title, style="Heading.TLabel").pack(anchor="w")
        label = ttk.Label(card, text=subtitle, style="Muted.TLabel", wraplength=300, justify="left")
        label.pack(anchor="w", pady=(2, theme.PAD))
        _wrap_to_width(label, card, 2 * CARD_PAD)
        self.subtitles.append(label)
        return card

    def _build_this_desk(self, parent):
        card = self._card(parent, "This desk",
                          "Give your partner this ID and password to let them connect to this computer.")
        ttk.Label(card, text="Your ID", style="Muted.TLabel").pack(anchor="w")
        row = ttk.Frame(card, style="Plain.TFrame", padding=0)
        row.pack(fill="x", pady=(0, theme.PAD))
        self.id_label = ttk.Label(row, textvariable=self.id_var, style="Big.TLabel")
        self.id_label.pack(side="left")
        self.copy_id_button = ttk.Button(row, text="Copy", style="Small.TButton",
                                         command=self._action("copy_id"))
        self.copy_id_button.pack(side="right")
        ttk.Label(card, text="One-time password", style="Muted.TLabel").pack(anchor="w")
        row = ttk.Frame(card, style="Plain.TFrame", padding=0)
        row.pack(fill="x")
        self.password_label = ttk.Label(row, textvariable=self.password_var, style="Mono.TLabel")
        self.password_label.pack(side="left")
        self.new_password_button = ttk.Button(row, text="New", style="Small.TButton",
                                              command=self._action("new_password"))
        self.new_password_button.pack(side="right")
        self.copy_password_button = ttk.Button(row, text="Copy", style="Small.TButton",
                                               command=self._action("copy_password"))
        self.copy_password_button.pack(side="right", padx=(0, 4))
        ttk.Label(card, text="It changes after every session and after three wrong tries.",
                  style="Muted.TLabel").pack(anchor="w", pady=(theme.GAP, 0))
        return card

    def _build_remote_desk(self, parent):
        card = self._card(parent, "Remote desk", "Enter your partner's ID to see and control their computer.")
        ttk.Label(card, text="Partner ID", style="Muted.TLabel").pack(anchor="w")
        row = ttk.Frame(card, style="Plain.TFrame", padding=0)
        row.pack(fill="x")
        self.partner_entry = ttk.Entry(row, textvariable=self.partner_var, font=self.fonts["heading"],
                                       width=14, style="Entry.TEntry")
        self.partner_entry.pack(side="left", fill="x", expand=True)
        self.partner_var.trace_add("write", lambda *_: self.id_error_var.get() and self.set_id_error(""))
        self.partner_entry.bind("<Return>", self._connect_clicked)
        self.partner_entry.bind("<KP_Enter>", self._connect_clicked)
        # Connect and Cancel share one slot as wide as the wider of them: Cancel takes Connect's
        # place while a connect runs or waits for the partner to accept (packed beside it, it
        # widened the card, and the uniform cards the window: 862 -> 1052 px).
        slot = ttk.Frame(row, style="Plain.TFrame", padding=0)
        slot.pack(side="left", padx=(theme.GAP, 0))
        self.connect_button = ttk.Button(slot, text="Connect", style="Accent.TButton",
                                         command=self._connect_clicked)
        self.cancel_button = ttk.Button(slot, text="Cancel", command=self._action("cancel"))
        for button in (self.connect_button, self.cancel_button):
            button.grid(row=0, column=0, sticky="nsew")
        slot.columnconfigure(0, minsize=max(b.winfo_reqwidth() for b in (self.connect_button, self.cancel_button)))
        self.cancel_button.grid_remove()
        # One line under the entry: the inline ID error (red) or what is going on (grey).
        self.message_label = ttk.Label(card, style="Muted.TLabel", wraplength=320, justify="left")
        self.message_label.pack(anchor="w", pady=(4, 0))
        _wrap_to_width(self.message_label, card, 2 * CARD_PAD)
        self._build_partner_bar(card)
        self.recent_list = self._listbox(card, self._recent_ids)
        self.lan_title = ttk.Label(card, text="On this network", style="Muted.TLabel")
        self.lan_list = self._listbox(card, self._lan_ids, pack=False)
        return card

    def _build_partner_bar(self, card):
        """"Partners" with Rename / Remove (of the selected row) and the host's History."""
        bar = ttk.Frame(card, style="Plain.TFrame", padding=0)
        bar.pack(fill="x", pady=(theme.GAP, 2))
        ttk.Label(bar, text=words.PARTNERS_TITLE, style="Muted.TLabel").pack(side="left")
        self.history_button = ttk.Button(bar, text=words.HISTORY, style="Small.TButton",
                                         command=self._action("history"))
        self.history_button.pack(side="right")
        self.remove_button = ttk.Button(bar, text=words.REMOVE, style="Small.TButton",
                                        command=lambda: self._on_selected("remove"))
        self.remove_button.pack(side="right", padx=(0, 4))
        self.rename_button = ttk.Button(bar, text=words.RENAME, style="Small.TButton",
                                        command=lambda: self._on_selected("rename"))
        self.rename_button.pack(side="right", padx=(0, 4))

    def _on_selected(self, action):
        """Rename / Remove act on the selected partner (nothing selected: nothing happens)."""
        partner_id = self.selected_partner()
        if partner_id is not None:
            self.callbacks[action](partner_id)

    def selected_partner(self):
        selection = self.recent_list.curselection()
        if selection and selection[0] < len(self._recent_ids):
            return self._recent_ids[selection[0]]
        return None

    def _listbox(self, parent, ids, pack=True):
        box = tk.Listbox(parent, height=4, activestyle="none", relief="flat", borderwidth=4,
                         highlightthickness=1, highlightbackground=theme.BORDER,
                         highlightcolor=theme.ACCENT, background=theme.CARD, foreground=theme.TEXT,
                         selectbackground=theme.ACCENT, selectforeground="#ffffff",
                         font=self.fonts["body"])
        box.bind("<Double-Button-1>", lambda _e: self._pick(box, ids))
        box.bind("<Return>", lambda _e: self._pick(box, ids))
        if pack:
            box.pack(fill="both", expand=True)
        return box

    def _build_status_bar(self):
        bar = ttk.Frame(self, padding=STATUS_PADDING)
        bar.pack(fill="x", side="bottom")
        # Long texts wrap instead of widening the window (a relay error once stretched it to 6,480
        # px): the bar takes the width the window gives it and never asks for more; _fit_status
        # sets its height and where the status line wraps.
        bar.pack_propagate(False)
        self.status_bar = bar
        self.status_label = ttk.Label(bar, textvariable=self.status_var, style="Status.idle.TLabel",
                                      wraplength=STATUS_WRAP)
        self.status_label.pack(side="left")
        # Shown only while the relay is unreachable (its countdown is in the status text).
        self.retry_button = ttk.Button(bar, text="Retry now", command=self._action("retry"))
        self.notice_label = ttk.Label(bar, textvariable=self.notice_var, style="Status.idle.TLabel",
                                      wraplength=NOTICE_WRAP, justify="right")
        self.notice_label.pack(side="right")
        for widget in (bar, self.retry_button, self.notice_label):
            widget.bind("<Configure>", self._fit_status, add="+")
        self._fit_status()

    def _fit_status(self, _event=None):
        """The status line wraps where the bar ends, after "Retry now" and the notice take their
        room; the bar is as high as what it shows."""
        shown = [w for w in (self.retry_button, self.notice_label) if w.winfo_manager()]
        room = self.status_bar.winfo_width() - STATUS_PADDING[0] - STATUS_PADDING[2]
        if room > MIN_WRAP:         # (else not laid out yet: STATUS_WRAP until then)
            room -= sum(w.winfo_reqwidth() + theme.GAP for w in shown if w.winfo_reqwidth() > 1)
            _set_wrap(self.status_label, max(MIN_WRAP, room))
        height = max(w.winfo_reqheight() for w in [self.status_label] + shown)
        height += STATUS_PADDING[1] + STATUS_PADDING[3]
        if int(str(self.status_bar.cget("height")) or 0) != height:
            self.status_bar.configure(height=height)

    # --- user actions ------------------------------------------------------------------------

    def _connect_clicked(self, *_event):
        if str(self.connect_button.cget("state")) == "disabled":
            return "break"
        self.callbacks["connect"](self.partner_var.get())
        return "break"

    def _pick(self, box, ids):
        selection = box.curselection()
        if selection and selection[0] < len(ids):
            self.partner_var.set(ids[selection[0]])
            self.callbacks["pick"](ids[selection[0]])

    # --- setters for the controller (Tk thread only) -------------------------------------

    def set_identity(self, id_text: str, password: str):
        _set(self.id_var, id_text)
        _set(self.password_var, password or "\u2014")

    def set_retry(self, shown: bool):
        """Show "Retry now" next to the status while the relay link waits to try again."""
        if shown and not self.retry_button.winfo_manager():
            self.retry_button.pack(side="left", padx=(theme.GAP, 0), after=self.status_label)
        elif not shown and self.retry_button.winfo_manager():
            self.retry_button.pack_forget()
        self._fit_status()

    def set_relay_status(self, text: str, colour: str):
        if _set(self.status_var, "\u25cf  " + text):
            self.status_label.configure(style=f"Status.{colour}.TLabel")
            self._fit_status()

    def set_notice(self, text: str):
        """A passing remark in the status bar (cleared after NOTICE_MS)."""
        if self._notice_after is not None:
            self.after_cancel(self._notice_after)
        self.notice_var.set(text)
        self._fit_status()
        self._notice_after = self.after(NOTICE_MS, self._clear_notice)

    def _clear_notice(self):
        self._notice_after = None
        self.notice_var.set("")
        self._fit_status()

    def destroy(self):
        # A pending after() outlives the widget: it would fire into the deleted Tcl command
        # ("invalid command name ...clear_notice") in whatever Tk loop runs next.
        if self._notice_after is not None:
            self.after_cancel(self._notice_after)
            self._notice_after = None
        super().destroy()

    def set_id_error(self, message: str):
        self.id_error_var.set(message or "")
        self._show_message()

    def set_busy(self, busy: bool, text: str = "", cancellable: bool = False):
        """Disable Connect (and show `text`) while connecting or in a session; `cancellable`
        shows Cancel in Connect's place."""
        self.connect_button.state(["disabled"] if busy else ["!disabled"])
        self.busy_var.set(text if busy else "")
        shown, hidden = ((self.cancel_button, self.connect_button) if busy and cancellable
                         else (self.connect_button, self.cancel_button))
        hidden.grid_remove()
        shown.grid()
        self._show_message()

    def _show_message(self):
        error = self.id_error_var.get()
        self.message_label.configure(text=error or self.busy_var.get(),
                                     style="Error.TLabel" if error else "Muted.TLabel")

    def set_recent(self, rows):
        self._fill(self.recent_list, self._recent_ids, rows, words.NO_PARTNERS)

    def set_partners(self, rows):
        """rows: [(id, line, online state)]; the line of a partner online is green, offline grey."""
        self.set_recent([(pid, line) for pid, line, _state in rows])
        for index, (_pid, _line, state) in enumerate(rows):
            colour = ONLINE_COLOURS.get(state, theme.TEXT)
            if self.recent_list.itemcget(index, "foreground") != colour:
                self.recent_list.itemconfigure(index, foreground=colour)

    def set_lan(self, rows):
        """Show the LAN list only when the core offers one (rows is None otherwise)."""
        if rows is None:
            return
        if not self._lan_shown:
            self._lan_shown = True
            self.lan_title.pack(anchor="w", pady=(theme.GAP, 2))
            self.lan_list.pack(fill="both", expand=True)
        self._fill(self.lan_list, self._lan_ids, rows, "No other TagIO desks seen on this network")

    @staticmethod
    def _fill(box, ids, rows, placeholder):
        lines = [line for _pid, line in rows] or [placeholder]
        if list(box.get(0, "end")) == lines:
            return   # unchanged: keep the user's selection
        box.delete(0, "end")
        ids[:] = [pid for pid, _line in rows]
        for line in lines:
            box.insert("end", line)
        if not rows:   # a hint, not an entry: grey, and _pick ignores it (no id at that index)
            box.itemconfigure(0, foreground=theme.MUTED, selectforeground=theme.MUTED,
                              selectbackground=theme.CARD)


def _wrap_to_width(label, container, inset):
    """`label` wraps where `container` ends (less `inset`, its padding), as wide as the window
    lets it be, instead of at a fixed width well inside it."""
    container.bind("<Configure>", lambda event: _set_wrap(label, max(MIN_WRAP, event.width - inset)), add="+")


def _set_wrap(label, pixels):
    if int(str(label.cget("wraplength")) or 0) != pixels:      # (a new value lays the window out again)
        label.configure(wraplength=pixels)


def _set(var, value) -> bool:
    """Set a Tk variable only when it changes (the controller refreshes every poll)."""
    if var.get() == value:
        return False
    var.set(value)
    return True


PAD_OUT = 16
ONLINE_COLOURS = {"online": theme.STATUS_COLOURS["ok"], "offline": theme.MUTED}
NOTICE_MS = 10000
STATUS_WRAP = 380   # pixels: a longer relay status wraps (until the bar's width is known: _fit_status)
NOTICE_WRAP = 240   # pixels: the same for a notice
MIN_WRAP = 200      # pixels: the narrowest a wrapped text becomes
CARD_PAD = theme.PAD + 4
STATUS_PADDING = (PAD_OUT, 4, PAD_OUT, 8)     # left, top, right, bottom
HOME_WIDTH = 900            # pixels: the cards ask for this much together, whatever their texts say
SCREEN_SHARE = 0.9          # never more than this part of the primary monitor, either way


def home_geometry(required, area) -> str:
    """The home window's first geometry, "+X+Y" (or "WxH+X+Y" when it must shrink): the size its
    content `required` (w, h; at least HOME_WIDTH wide), within SCREEN_SHARE of the primary monitor `area` (left, top, width,
    height), centred on it. Without a window manager Tk would leave it at 0,0 (across two
    monitors: on whichever starts there)."""
    left, top, width, height = area
    w = max(1, min(required[0], int(width * SCREEN_SHARE)))
    h = max(1, min(required[1], int(height * SCREEN_SHARE)))
    place = f"+{left + (width - w) // 2}+{top + (height - h) // 2}"
    # A size is set only when the content would not fit: a set size stops following the content,
    # and the status line (and the list of desks on this network) come after this measure.
    return place if (w, h) == tuple(required) else f"{w}x{h}{place}"
