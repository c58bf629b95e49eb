"""The desks you know, as the windows show them: address-book rows, the online rounds, the
rename and history dialogs, and the "allowed without asking" list of the Settings dialog.

Theory of operation: the rows are computed by pure functions (`partner_rows`, `history_rows`)
from the stores in tagio.client.partners / history, so they are tested without Tk. Whether a
partner is online is asked of the relay (`lookup`: online / offline / unknown, nothing else) by
`OnlineRounds`: at most one round per ROUND_S, at most ROUND_SIZE partners per round (under the
relay's per-address limit), only while the home window is shown, and always in a worker thread
given by the controller: the Tk thread never waits on the network. The dialogs are non-blocking
Toplevels (prompts.Dialog) and only the Tk main thread may touch them.
"""

import time
import tkinter as tk
from tkinter import ttk

from tagio.client import words
from tagio.protocol.session import MAX_DESK_NAME, clean_name
from tagio.ui import model, theme
from tagio.ui.prompts import AnswerDialog, Dialog

ROUND_S = 30.0              # one online round per 30 s at most
ROUND_SIZE = 8              # partners asked per round (the relay allows a burst of 10 per address)
PACE_S = 0.5                # between two lookups: the relay refills 2 a second per address
MAX_SHOWN = 200             # rows in the home window's list (the book holds at most 200)
MAX_HISTORY_SHOWN = 500
RIGHT_NAMES = ("control", "clipboard", "files")


# --- rows (pure) ---------------------------------------------------------------------------------

def when_text(stamp, now=None) -> str:
    """'14:02' today, '3 Dec 14:02' this year, '3 Dec 2025' before; '' for never."""
    if not stamp:
        return ""
    now = time.time() if now is None else now
    then, today = time.localtime(stamp), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%d %b %H:%M", then).lstrip("0")
    return time.strftime("%d %b %Y", then).lstrip("0")


def path_text(path) -> str:
    return words.PATHS.get(path, (path or "", ""))[0]


def partner_line(partner, online=None, now=None) -> str:
    """'● 123 456 789   Anna   14:02 · Relayed' (dot: online, offline or not asked)."""
    dot = words.ONLINE_DOTS.get(online, words.ONLINE_DOTS[None])
    parts = [f"{dot} {model.display_id(partner.id)}"]
    if partner.shown_name:
        parts.append(partner.shown_name)
    seen = " \u00b7 ".join(t for t in (when_text(partner.last, now), path_text(partner.path)) if t)
    if seen:
        parts.append(seen)
    return "   ".join(parts)


def partner_rows(partners, online, now=None) -> list:
    """[(id, line, online state)] for the home window, newest first."""
    return [(p.id, partner_line(p, online.get(p.id), now), online.get(p.id)) for p in partners[:MAX_SHOWN]]


def duration_text(seconds) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def history_line(entry, now=None) -> str:
    who = model.display_id(entry.peer_id) + (f" ({entry.name})" if entry.name else "")
    return "   ".join((when_text(entry.started, now), who, duration_text(entry.seconds),
                       path_text(entry.path), words.HISTORY_CONTROL[entry.view_only]))


def history_rows(entries, now=None) -> list:
    return [history_line(e, now) for e in entries[:MAX_HISTORY_SHOWN]]


# --- online rounds ------------------------------------------------------------------------------

class OnlineRounds:
    """When to ask the relay who is online, and what it said. `due()` is asked on the Tk thread;
    `ask(client, ids)` runs in a worker; `states` maps ID -> "online" / "offline" (unknown IDs
    count as offline: the relay reveals nothing more)."""

    def __init__(self, clock=time.monotonic, every=ROUND_S):
        self.clock, self.every = clock, every
        self.states = {}
        self._last = None
        self.running = False

    def due(self, shown: bool, relay_online: bool) -> bool:
        if not shown or not relay_online or self.running:
            return False
        return self._last is None or self.clock() - self._last >= self.every

    def started(self):
        self.running, self._last = True, self.clock()

    def ask(self, relay, ids, stop=None, pace=PACE_S) -> dict:
        """Worker thread: one lookup per ID (at most ROUND_SIZE), `pace` seconds apart so that a
        round never drains the relay's per-address allowance a connect needs too; stops at the
        first error (the relay's rate limit included) or when `stop` is set, keeping what it learned."""
        from tagio.errors import TagioError
        found = {}
        for index, pid in enumerate(ids[:ROUND_SIZE]):
            if index and stop is not None and stop.wait(pace):
                break
            try:
                found[pid] = "online" if relay.lookup(pid, timeout=5.0) == "online" else "offline"
            except TagioError:
                break
        return found

    def finished(self, found):
        self.running = False
        self.states.update(found or {})


# --- dialogs ------------------------------------------------------------------------------------

class RenameDialog(AnswerDialog):
    """A name for one partner, shown only here; `on_done(name or None)`."""

    def __init__(self, parent, partner_id, name, on_done):
        super().__init__(parent, words.RENAME_TITLE)
        self.on_done = on_done
        ttk.Label(self.body, text=model.display_id(partner_id), style="Heading.TLabel").pack(anchor="w")
        ttk.Label(self.body, text=words.RENAME_HINT, style="Muted.TLabel").pack(anchor="w", pady=(2, 8))
        self.name_var = tk.StringVar(master=self, value=name)
        self.entry = ttk.Entry(self.body, textvariable=self.name_var, width=32, style="Entry.TEntry")
        self.entry.pack(fill="x")
        self.ok_button, _cancel = self.buttons(("Save", self.submit, "Accent.TButton"),
                                               ("Cancel", self.cancel, "TButton"))
        self.entry.bind("<Return>", lambda _e: self.submit())
        self.show()
        self.entry.focus_set()
        self.entry.select_range(0, "end")

    def submit(self):
        self._finish(clean_name(self.name_var.get(), MAX_DESK_NAME))

class HistoryDialog(Dialog):
    """The host's session history, newest first (read only)."""

    def __init__(self, parent, entries, fonts):
        super().__init__(parent, words.HISTORY_TITLE)
        ttk.Label(self.body, text=words.HISTORY_TITLE, style="Heading.TLabel").pack(anchor="w")
        lines = history_rows(entries)
        self.listbox = tk.Listbox(self.body, height=12, width=70, activestyle="none", relief="flat",
                                  background=theme.CARD, foreground=theme.TEXT, font=fonts["body"],
                                  highlightthickness=1, highlightbackground=theme.BORDER)
        self.listbox.pack(fill="both", expand=True, pady=(8, 0))
        for line in lines or [words.NO_HISTORY]:
            self.listbox.insert("end", line)
        (self.ok_button,) = self.buttons(("Close", self.cancel, "Accent.TButton"))
        self.show()
        self.ok_button.focus_set()


class TrustedSection:
    """The Settings dialog's list of desks let in without asking, each with Revoke. Revoking
    takes effect at once (the book saves itself), whatever the dialog's Save or Cancel."""

    def __init__(self, parent, book, fonts):
        self.book = book
        ttk.Label(parent, text=words.TRUSTED_TITLE, style="Card.TLabel").pack(anchor="w", pady=(6, 0))
        row = ttk.Frame(parent, style="Plain.TFrame")
        row.pack(fill="x")
        self.listbox = tk.Listbox(row, height=3, width=48, activestyle="none", relief="flat",
                                  background=theme.CARD, foreground=theme.TEXT, font=fonts["body"],
                                  highlightthickness=1, highlightbackground=theme.BORDER)
        self.listbox.pack(side="left", fill="x", expand=True)
        self.revoke_button = ttk.Button(row, text=words.REVOKE, style="Small.TButton", command=self.revoke)
        self.revoke_button.pack(side="left", padx=(theme.GAP, 0), anchor="n")
        self.ids = []
        self.fill()

    def fill(self):
        trusted = self.book.trusted()
        self.ids = list(trusted)
        self.listbox.delete(0, "end")
        for pid, (rights, name) in trusted.items():
            allowed = ", ".join(k for k in RIGHT_NAMES if getattr(rights, k)) or "see only"
            self.listbox.insert("end", "   ".join(t for t in (model.display_id(pid), name, allowed) if t))
        if not trusted:
            self.listbox.insert("end", words.NO_TRUSTED)

    def revoke(self):
        selection = self.listbox.curselection()
        if selection and selection[0] < len(self.ids):
            self.book.revoke(self.ids[selection[0]])
            self.fill()
