"""The files and chat panel of a viewer session: local and remote folders side by side, a queue
with a progress bar per transfer and for the whole queue, and the session's chat.

Theory of operation. `FilesPanel(master, session, local_dir)` is a Toplevel on the Tk thread. It
never waits on the network and never walks a folder itself: a send (which walks the local tree)
runs in a worker thread it joins on close; a get or a listing only posts a message. What it shows
comes from polling (an after() loop, like the session window): `session.files.snapshot()` for the
queue, `session.files.listings` for the remote folder asked for, `session.chat.lines()` for the chat.
Nothing here touches a socket, and only this thread touches the widgets.

Each transfer has a row: its progress bar, bytes, rate and time left, Pause/Resume and Cancel. A
transfer we send pauses in place; one we receive is paused by cancelling it (the part stays) and
resumed by asking for it again, which continues after the verified part (no byte is sent twice).

After a reconnect the session window hands the panel the new session (`resume_with`): what our
transfers were still moving is taken up by the new session's file engine (FileEngine.carry) and
continues from where it stopped; the queue shows the carried transfers under their new ids and
keeps the rows of the ones that had ended.

The remote side is the host's files folder (the host must allow one: `--files-dir` on the command
line, "Allow partners to send and fetch files" in the GUI's Settings); paths there are relative,
"/" between names. New folder, Rename and Delete (after a confirmation) on the remote side each post
one request (FileEngine.make_dir / rename / delete); the poll shows the host's answer from
`session.files.changes` and lists the folder again. Tk has no drag and drop between widgets, so a
press on the local list and its release over the remote list sends what is selected there (into
the folder under the pointer, else the folder shown). A transfer lands under its own name in the
folder shown on the other side. When a file of that name is there, the choice in "If it exists"
decides (skip, overwrite, keep both); under "ask" the receiver refuses it and the panel asks
(files_exists.ExistsDialog), then sends or fetches those files again with the answer.

The folder lists are files_lists.FolderList (Up, Home, Refresh; links shown as what they point to).
"""

import os
import threading
import time
import tkinter as tk
from tkinter import ttk

from tagio.protocol import files as f
from tagio.ui.chat_panel import ChatView
from tagio.ui.files_exists import ExistsDialog, already_there, by_folder, remote_join
from tagio.ui.files_lists import FolderList, human_size, list_local, rate_and_time_left
from tagio.ui.prompts import ConfirmDialog, Dialog

POLL_MS = 200
BAR_STYLE = "Transfer.Horizontal.TProgressbar"
BAR_COLOUR, TROUGH_COLOUR = "#2f6fd0", "#dfe4ec"     # a filled bar reads as filled with any theme
ROWS_SHOWN = 4              # transfer rows in sight; more scroll (the panel keeps its height)
PAUSED = "paused"           # the reason a get we paused was cancelled with
ROW_TEXT = 64               # characters of a transfer row's words (name, bytes, rate, time left)
DRAG_PIXELS = 8             # a press that moved this far is a drag, not a click
POLICIES = [("ask", f.POLICY_ASK), ("skip", f.POLICY_SKIP), ("overwrite", f.POLICY_OVERWRITE),
            ("keep both", f.POLICY_KEEP_BOTH)]


class FilesPanel(tk.Toplevel):
    def __init__(self, master, session, local_dir=None, title="Files and chat"):
        super().__init__(master)
        self.title(title)
        self.session = session
        self.local_dir = os.path.abspath(local_dir or os.path.expanduser("~"))
        self.remote_dir = ""
        self._listing_req = None
        self._workers = []
        self._bars = {}             # tid -> (frame, label, progressbar, pause button, cancel button)
        self._rows = {}             # tid -> the last snapshot row
        self._gets = {}             # tid -> (paths, local folder, policy) of our gets (to ask again)
        self._earlier = {}          # tid -> last row of a transfer of an earlier session (reconnect)
        # Where our transfers came from, to send or fetch again what the partner found already
        # there (files_exists): tid -> (local folder, remote folder). A send worker adds its tids
        # (one dict item set at a time: the Tk thread reads them on its next poll).
        self._origins = {}
        self._examined = set()      # tids of ended transfers looked at for names already there
        self._exists = []           # (direction, origin, paths) to ask about, the first being asked
        self._exists_dialog = None
        self._rates = {}            # tid -> (time, bytes, bytes per second)
        self._last_rate = 0.0
        self._changes = set()       # reqs of our make_dir / rename / delete not answered yet
        self._drag = None           # (x, y, moved) of a press on the local list
        self._closing = False
        self._worker_error = None   # set by a send worker, shown by the poll
        self.policy = tk.StringVar(master=self, value="ask")
        self._build()
        self.show_local()
        self.refresh_remote()
        self.protocol("WM_DELETE_WINDOW", self.close)
        self._after = self.after(POLL_MS, self._poll)

    # ------------------------------------------------------------------ layout

    def _build(self):
        # The chat, the queue and the status line are packed first, at the bottom: a short window
        # shortens the folder lists, never hides the chat's entry.
        style = ttk.Style(self)
        style.configure(BAR_STYLE, background=BAR_COLOUR, troughcolor=TROUGH_COLOUR)
        self._build_chat()
        self._build_queue()
        self.status = ttk.Label(self, text="")
        self.status.pack(side="bottom", fill="x", padx=6)
        lists = ttk.Frame(self)
        lists.pack(fill="both", expand=True, padx=6, pady=6)
        self.local = FolderList(lists, "This computer", self.local_up, self.local_home, self.show_local,
                                self.open_local)
        self.local.grid(row=0, column=0, sticky="nsew")
        middle = ttk.Frame(lists)
        middle.grid(row=0, column=1, padx=6)
        self.send_button = ttk.Button(middle, text="Send \u2192", command=self.send_selected)
        self.send_button.pack(pady=4)
        self.get_button = ttk.Button(middle, text="\u2190 Get", command=self.get_selected)
        self.get_button.pack(pady=4)
        ttk.Label(middle, text="If it exists:").pack(pady=(12, 0))
        ttk.Combobox(middle, textvariable=self.policy, values=[p[0] for p in POLICIES],
                     state="readonly", width=10).pack()
        self.remote = FolderList(lists, "Partner's files folder", self.remote_up, self.remote_home,
                                 self.refresh_remote, self.open_remote)
        self.remote.grid(row=0, column=2, sticky="nsew")
        self._build_remote_actions()
        self._bind_drag()
        lists.columnconfigure(0, weight=1)
        lists.columnconfigure(2, weight=1)
        lists.rowconfigure(0, weight=1)

    def _build_queue(self):
        box = ttk.LabelFrame(self, text="Transfers")
        box.pack(side="bottom", fill="x", padx=6, pady=4)
        top = ttk.Frame(box)
        top.pack(fill="x")
        self.total_label = ttk.Label(top, text="Queue empty")
        self.total_label.pack(side="left")
        ttk.Button(top, text="Cancel all", command=self.cancel_all).pack(side="right")
        self.total_bar = ttk.Progressbar(box, maximum=1.0, length=400, style=BAR_STYLE)
        self.total_bar.pack(fill="x", pady=2)
        self._build_rows(box)

    def _build_rows(self, box):
        """The transfer rows in a scrollable area ROWS_SHOWN rows high: many transfers never make
        the panel taller (its chat and Send would go off a small screen)."""
        area = ttk.Frame(box)
        area.pack(fill="x")
        probe = ttk.Button(area, text="Pause")     # a row is as high as its buttons
        row_height = probe.winfo_reqheight()
        probe.destroy()
        self.rows_view = tk.Canvas(area, height=ROWS_SHOWN * row_height, highlightthickness=0,
                                   borderwidth=0, bg=ttk.Style(self).lookup("TFrame", "background") or None)
        scroll = ttk.Scrollbar(area, orient="vertical", command=self.rows_view.yview)
        self.rows_view.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.rows_view.pack(side="left", fill="x", expand=True)
        self.rows = ttk.Frame(self.rows_view)
        self._rows_height = 0
        inside = self.rows_view.create_window(0, 0, window=self.rows, anchor="nw")
        self.rows_view.bind("<Configure>", lambda e: self.rows_view.itemconfigure(inside, width=e.width))
        self.rows.bind("<Configure>", self._rows_resized)
        self._wheel(self.rows_view)

    def _rows_resized(self, event):
        """The rows changed (a row was added: rows never change height otherwise): scroll over
        all of them and show the newest. (The event's size, not the canvas's bbox: that is
        updated later, one row short.)"""
        taller, self._rows_height = event.height > self._rows_height, event.height
        self.rows_view.configure(scrollregion=(0, 0, event.width, event.height))
        if taller:      # not when only the width changed: a row the user scrolled to stays
            self.rows_view.yview_moveto(1.0)

    def _wheel(self, widget):
        """The mouse wheel over the transfer rows scrolls them."""
        for event, units in (("<Button-4>", -1), ("<Button-5>", 1)):
            widget.bind(event, lambda _e, u=units: self.rows_view.yview_scroll(u, "units"), add="+")
        widget.bind("<MouseWheel>", lambda e: self.rows_view.yview_scroll(-1 if e.delta > 0 else 1, "units"),
                    add="+")

    def _build_chat(self):
        box = ttk.LabelFrame(self, text="Chat")
        box.pack(side="bottom", fill="x", padx=6, pady=4)
        self.chat = ChatView(box, self.session, height=5)
        self.chat.pack(fill="both", expand=True)
        self.chat_text, self.chat_entry = self.chat.text, self.chat.entry

    def _build_remote_actions(self):
        row = ttk.Frame(self.remote)
        row.grid(row=3, column=0, columnspan=2, sticky="w", pady=(4, 0))
        self.mkdir_button = ttk.Button(row, text="New folder", command=self.ask_new_folder)
        self.rename_button = ttk.Button(row, text="Rename", command=self.ask_rename)
        self.delete_button = ttk.Button(row, text="Delete", command=self.ask_delete)
        for button in (self.mkdir_button, self.rename_button, self.delete_button):
            button.pack(side="left", padx=(0, 4))

    def _bind_drag(self):
        tree = self.local.tree
        tree.bind("<ButtonPress-1>", lambda e: setattr(self, "_drag", (e.x_root, e.y_root, False)), add="+")
        tree.bind("<B1-Motion>", self._drag_motion, add="+")
        tree.bind("<ButtonRelease-1>", self._drag_drop, add="+")

    def resume_with(self, session):
        """The session came back after its path broke: go on with `session` (started). Our cut
        transfers continue on it from where they stopped; their old rows make way for new ones."""
        old, self.session = self.session, session
        self.chat.session = session
        carried = session.files.carry(old.files)
        for old_tid, new_tid in carried.items():
            bar = self._bars.pop(old_tid, None)
            if bar is not None:
                bar[0].destroy()
            self._rows.pop(old_tid, None)
            for table in (self._gets, self._origins):
                if old_tid in table:
                    table[new_tid] = table.pop(old_tid)
        self._earlier.update((r["tid"], r) for r in old.files.snapshot() if r["tid"] not in carried)
        self.refresh_remote()

    # ------------------------------------------------------------------ folders

    def show_local(self):
        self.local.show(self.local_dir, list_local(self.local_dir))

    def local_up(self):
        self.local_dir = os.path.dirname(self.local_dir) or self.local_dir
        self.show_local()

    def local_home(self):
        self.local_dir = os.path.expanduser("~")
        self.show_local()

    def open_local(self, names):
        if names and self.local.kinds.get(names[0]) == f.KIND_DIR:
            self.local_dir = os.path.join(self.local_dir, names[0])
            self.show_local()

    def refresh_remote(self):
        self._listing_req = self.session.files.list_dir(self.remote_dir)

    def remote_up(self):
        self.remote_dir = self.remote_dir.rpartition("/")[0]
        self.refresh_remote()

    def remote_home(self):
        """The top of the partner's files folder (the only folder it lets us see)."""
        self.remote_dir = ""
        self.refresh_remote()

    def open_remote(self, names):
        if names and self.remote.kinds.get(names[0]) == f.KIND_DIR:
            self.remote_dir = f"{self.remote_dir}/{names[0]}".lstrip("/")
            self.refresh_remote()

    # ------------------------------------------------------------------ actions

    def _policy(self):
        return dict(POLICIES)[self.policy.get()]

    def send_selected(self, dest=None):
        paths = [os.path.join(self.local_dir, n) for n in self.local.selected()]
        if not paths:
            return self.say("Select files or folders on this computer first.")
        self._start_send(paths, self.remote_dir if dest is None else dest, self._policy(), self.local_dir)

    def _start_send(self, paths, dest, policy, local_dir):
        worker = threading.Thread(target=self._send, args=(paths, dest, policy, local_dir),
                                  name="files-send", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()

    def _send(self, paths, dest, policy, local_dir):
        """Worker: walking the folders may take a while; the Tk thread must not wait for it."""
        try:
            for tid in self.session.send_files(paths, dest, policy):
                self._origins[tid] = (local_dir, dest)
        except Exception as exc:     # FileRefused, or the session ended: shown on the next poll
            self._worker_error = str(exc)

    def get_selected(self):
        names = self.remote.selected()
        if not names:
            return self.say("Select files or folders in the partner's folder first.")
        paths = [f"{self.remote_dir}/{n}".lstrip("/") for n in names]
        self._get(paths, self.local_dir, self._policy())

    def _get(self, paths, local_dir, policy):
        try:
            tid = self.session.get_files(paths, local_dir, policy)
        except Exception as exc:     # the local folder vanished, too many transfers
            return self.say(str(exc))
        self._gets[tid] = (paths, local_dir, policy)
        self._origins[tid] = (local_dir, paths[0].rpartition("/")[0])

    def toggle(self, tid):
        """Pause or resume one transfer."""
        row = self._rows.get(tid)
        if row is None or row["ok"] is True:
            return
        if row["direction"] == "send":
            return self.session.files.pause(tid, not row["paused"])
        if row["ok"] is None:
            return self.session.files.cancel(tid, PAUSED)
        if self._resumable(row):    # a paused (cancelled) get: ask again; its part is resumed
            frame = self._bars.pop(tid)[0]
            frame.destroy()
            self._get(*self._gets.pop(tid))

    def _resumable(self, row):
        """A get we paused (receiving is paused by cancelling it): Resume asks for it again. (Not
        one that failed or was refused: that needs a person to look, not a button.)"""
        return row["ok"] is False and row["message"] == PAUSED and row["tid"] in self._gets

    def cancel(self, tid):
        self._gets.pop(tid, None)
        self.session.files.cancel(tid, "cancelled by the user")

    def cancel_all(self):
        for row in self.session.files.snapshot():
            if row["ok"] is None:
                self.cancel(row["tid"])

    def _remote_path(self, name):
        return f"{self.remote_dir}/{name}".lstrip("/")

    def ask_new_folder(self):
        NameDialog(self, "New folder", "Name of the new folder in the partner's folder:", "",
                   lambda name: self._change("make_dir", self._remote_path(name)))

    def ask_rename(self):
        names = self.remote.selected()
        if len(names) != 1:
            return self.say("Select one file or folder in the partner's folder to rename.")
        old = names[0]
        NameDialog(self, "Rename", f"New name for {old}:", old,
                   lambda new: new != old and self._change("rename", self._remote_path(old),
                                                          self._remote_path(new)))

    def ask_delete(self):
        names = self.remote.selected()
        if not names:
            return self.say("Select files or folders in the partner's folder to delete.")
        what = f"\u201c{names[0]}\u201d" if len(names) == 1 else f"these {len(names)} items"
        ConfirmDialog(self, "Delete", f"Delete {what} on the partner's computer? A folder is deleted "
                                      f"with everything in it. This cannot be undone.",
                      lambda yes: yes and [self._change("delete", self._remote_path(n)) for n in names],
                      yes="Delete", no="Cancel")

    def _change(self, method, *args):
        try:
            self._changes.add(getattr(self.session.files, method)(*args))
        except Exception as exc:     # the session ended
            self.say(str(exc))

    def _drag_motion(self, event):
        if self._drag and not self._drag[2] and max(abs(event.x_root - self._drag[0]),
                                                    abs(event.y_root - self._drag[1])) >= DRAG_PIXELS:
            self._drag = (*self._drag[:2], True)
            self.local.tree.configure(cursor="hand2")
            self.say("Drop on the partner's folder to send.")

    def _drag_drop(self, event):
        """A drag from the local list released over the remote list: send what is selected."""
        drag, self._drag = self._drag, None
        if not drag or not drag[2]:
            return
        self.local.tree.configure(cursor="")
        self.say("")
        tree = self.remote.tree
        if self.winfo_containing(event.x_root, event.y_root) is not tree:
            return
        row = tree.identify_row(event.y_root - tree.winfo_rooty())
        into = row and self.remote.kinds.get(row) == f.KIND_DIR
        self.send_selected(self._remote_path(row) if into else None)

    def say(self, text):
        self.status.configure(text=text)

    # ------------------------------------------------------------------ the poll

    def _poll(self):
        if self._closing:
            return
        try:
            self._poll_listing()
            self._poll_queue()
            self._poll_changes()
            error = self._worker_error
            if error:
                self._worker_error = None
                self.say(error)
        finally:
            if not self._closing:
                self._after = self.after(POLL_MS, self._poll)

    def _poll_listing(self):
        listing = self.session.files.listings.get(self._listing_req)
        if listing is None:
            return
        self._listing_req = None
        if listing["error"]:
            self.say(listing["error"])
        self.remote.show(listing["path"], sorted(listing["entries"],
                                                 key=lambda r: (r[1] != f.KIND_DIR, r[0].lower())))

    def _poll_queue(self):
        rows = [r for r in self.session.files.snapshot()
                if r["tid"] in self._bars or r["tid"] not in self._rows]   # a resumed get's old row is gone
        rows = [r for t, r in self._earlier.items() if t in self._bars] + rows
        done = total = rate = 0
        for row in rows:
            self._rows[row["tid"]] = row
            rate += self._rate(row)
            self._show_row(row)
            done, total = done + row["bytes"], total + row["total"]
        finished = [r for r in rows if r["ok"] is not None]
        self.total_bar.configure(value=(done / total) if total else (1.0 if rows else 0.0))
        self.total_label.configure(text=f"{len(finished)} of {len(rows)} transfers done, "
                                        f"{human_size(done)} of {human_size(total)}"
                                        f"{rate_and_time_left(done, total, rate)}" if rows else "Queue empty")
        if any(r["ok"] for r in finished) and self._remote_changed(finished):
            self.refresh_remote()
            self.show_local()
        self._ask_about_existing(finished)

    def _ask_about_existing(self, finished):
        """Files an ended transfer of ours found already there (refused under "ask"): one
        question per transfer, one at a time."""
        for row in finished:
            origin = self._origins.get(row["tid"])
            if row["ok"] or row["tid"] in self._examined or origin is None:
                continue        # (no origin yet: a send worker has not said its tid; next poll)
            self._examined.add(row["tid"])
            paths = already_there(row.get("refused", ()))
            if paths:
                self._exists.append((row["direction"], origin, paths))
        if self._exists and self._exists_dialog is None:
            direction, _origin, paths = self._exists[0]
            self._exists_dialog = ExistsDialog(self, direction, paths, self._existing_answered)

    def _existing_answered(self, policy):
        direction, (local_dir, remote_dir), paths = self._exists.pop(0)
        self._exists_dialog = None
        if policy == f.POLICY_SKIP:
            return
        for folder, group in by_folder(paths).items():      # each again into its own folder
            if direction == "send":
                self._start_send([os.path.join(local_dir, p) for p in group], remote_join(remote_dir, folder),
                                 policy, os.path.join(local_dir, folder))
            else:
                self._get([remote_join(remote_dir, p) for p in group], os.path.join(local_dir, folder),
                          policy)

    def _rate(self, row):
        """Bytes per second of one transfer, smoothed over the polls (0 once it ended)."""
        now = time.monotonic()
        then, before, rate = self._rates.get(row["tid"], (now, row["bytes"], 0.0))
        if now > then:
            rate = 0.7 * rate + 0.3 * (row["bytes"] - before) / (now - then)
        self._rates[row["tid"]] = (now, row["bytes"], rate)
        return rate if row["ok"] is None and not row["paused"] else 0.0

    def _remote_changed(self, finished):
        seen = getattr(self, "_finished_seen", 0)
        self._finished_seen = len(finished)
        return len(finished) > seen

    def _show_row(self, row):
        tid = row["tid"]
        if tid not in self._bars:
            frame = ttk.Frame(self.rows)
            frame.pack(fill="x")
            label = ttk.Label(frame, width=ROW_TEXT)
            label.pack(side="left")
            cancel = ttk.Button(frame, text="Cancel", width=7, command=lambda: self.cancel(tid))
            cancel.pack(side="right")
            pause = ttk.Button(frame, text="Pause", width=7, command=lambda: self.toggle(tid))
            pause.pack(side="right")
            bar = ttk.Progressbar(frame, maximum=1.0, length=240, style=BAR_STYLE)
            bar.pack(side="left", fill="x", expand=True)
            for widget in (frame, label, bar):
                self._wheel(widget)
            self._bars[tid] = (frame, label, bar, pause, cancel)
        _frame, label, bar, pause, cancel = self._bars[tid]
        arrow = "\u2192" if row["direction"] == "send" else "\u2190"
        resumable = self._resumable(row)
        ended = ("paused" if resumable else "cancelled" if row["message"] == PAUSED
                 else f"failed: {row['message']}")
        state = {True: "done", False: ended}.get(
            row["ok"], "paused" if row["paused"] else row["state"])
        rate = self._rates.get(tid, (0, 0, 0.0))[2] if row["ok"] is None and not row["paused"] else 0.0
        amount = f"{human_size(row['bytes'])} of {human_size(row['total'])}"
        speed = rate_and_time_left(row["bytes"], row["total"], rate)
        label.configure(text=f"{arrow} {row['name']}  {amount}{speed}  {state}"[:120])
        pause.configure(text="Resume" if row["paused"] or resumable else "Pause",
                        state="normal" if row["ok"] is None or resumable else "disabled")
        cancel.configure(state="normal" if row["ok"] is None or resumable else "disabled")
        bar.configure(value=row["bytes"] / row["total"] if row["total"] else
                      (1.0 if row["ok"] else 0.0))

    def _poll_changes(self):
        """Answers to our new folder / rename / delete: say a refusal, list the folder again."""
        answers = dict(self.session.files.changes)
        oldest = min(answers, default=None)
        done = {req for req in self._changes if req in answers or (oldest is not None and req < oldest)}
        if not done:
            return
        self._changes -= done
        errors = [answers[req] for req in sorted(done) if answers.get(req)]
        self.say(errors[0] if errors else "")
        self.refresh_remote()

    # ------------------------------------------------------------------ closing

    def close(self):
        """Close the panel (transfers go on with the session). Joins the send workers briefly:
        each only walks a folder and posts an offer."""
        for worker in self._workers:
            worker.join(2.0)
        self.destroy()

    def destroy(self):
        """Also when the session window closes with the panel open: stop the poll first."""
        self._closing = True
        self.after_cancel(self._after)
        super().destroy()
        self.policy = None      # a Tk variable must die on the Tk thread, not in a later collection


class NameDialog(Dialog):
    """Asks for one file or folder name; `done(name)` only for a name given (OK or Return)."""

    def __init__(self, parent, title, message, initial, done):
        super().__init__(parent, title)
        self.done = done
        ttk.Label(self.body, text=message).pack(anchor="w")
        self.entry = ttk.Entry(self.body, width=40)
        self.entry.insert(0, initial)
        self.entry.select_range(0, "end")
        self.entry.pack(fill="x", pady=(6, 0))
        self.entry.bind("<Return>", lambda _e: self.ok())
        self.ok_button, _cancel = self.buttons(("OK", self.ok, "Accent.TButton"), ("Cancel", self.cancel, "TButton"))
        self.show()
        self.entry.focus_set()

    def ok(self):
        name, done = self.entry.get().strip(), self.done
        if not name or "/" in name:
            return self.bell()
        self.done = None
        self.destroy()
        done(name)
