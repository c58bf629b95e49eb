"""The folder lists of the files panel: one folder's names, sizes and dates, with Up, Home, Refresh.

Theory of operation. `FolderList` is a ttk frame on the Tk thread; it only shows rows it is given
(`show(path, rows)`) and calls back for Up, Home, Refresh and a double-click (open a folder): it
never reads a disk or the network itself. `list_local(folder)` reads one local folder for it
(small and fast: one scandir); the remote rows come from the partner's Listing.

A row is (name, kind, size, mtime_ns) or, for the local side, (name, kind, size, mtime_ns, link)
where `link` says the entry is a symbolic link: a link is shown as what it points to (a linked
folder is a folder one can open, with the link's size never shown as a file's), marked "(link)";
a link that points nowhere is marked "(broken link)". (The host never lists a link that leads
outside its files folder: files_disk.listing.)

Moving to another folder scrolls the list to its top; listing the same folder again (Refresh, a
transfer that ended) keeps the place and the selection (a click just before a transfer ended must
not come to nothing). The Size and Date columns are as wide as their widest text
in the list's font, so a date is never cut at the default width.

Also here: the words a queue row is made of (`human_size`, `rate_and_time_left`).
"""

import os
import time
import tkinter.font as tkfont
from tkinter import ttk

from tagio.protocol import files as f

DATE_FORMAT = "%Y-%m-%d %H:%M"
WIDEST_DATE = "2088-08-28 28:28"    # as wide as any date in DATE_FORMAT with the usual fonts
WIDEST_SIZE = "888.8 MB"
COLUMN_PAD = 16                     # pixels around a column's text (the cell's padding, a margin)
NAME_WIDTH = 200


def human_size(n) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def time_left(remaining, rate) -> str:
    """"12 s left", "3 min 5 s left", or "" when it cannot be told."""
    if rate <= 0 or remaining <= 0:
        return ""
    seconds = int(remaining / rate)
    return f"{seconds // 60} min {seconds % 60} s left" if seconds >= 60 else f"{seconds} s left"


def rate_and_time_left(done, total, rate) -> str:
    """", 1.2 MB/s, 8 s left" for a queue line ("" while nothing moves)."""
    if rate <= 0:
        return ""
    left = time_left(total - done, rate)
    return f", {human_size(rate)}/s" + (f", {left}" if left else "")


def _entry(item):
    """(name, kind, size, mtime_ns, link) of one scandir entry; a link is shown as its target."""
    link = item.is_symlink()
    try:
        st = item.stat(follow_symlinks=True)
    except OSError:             # a link that points nowhere: shown, marked, never opened
        st = item.stat(follow_symlinks=False)
        return item.name, f.KIND_FILE, None, st.st_mtime_ns, "broken"
    kind = f.KIND_DIR if item.is_dir(follow_symlinks=True) else f.KIND_FILE
    return item.name, kind, st.st_size, st.st_mtime_ns, link


def list_local(folder):
    """[(name, kind, size, mtime_ns, link)] of a local folder, folders first; [] when unreadable."""
    rows = []
    try:
        with os.scandir(folder) as items:
            for item in items:
                try:
                    rows.append(_entry(item))
                except OSError:     # gone while listed
                    continue
    except OSError:
        return []
    return sorted(rows, key=lambda r: (r[1] != f.KIND_DIR, r[0].lower()))


LINK_MARKS = {False: "", True: "  (link)", "broken": "  (broken link)"}


class FolderList(ttk.Frame):
    """A title, a path line with Up, Home and Refresh, and a list of name / size / date."""

    def __init__(self, master, title, on_up, on_home, on_refresh, on_open):
        super().__init__(master)
        ttk.Label(self, text=title).grid(row=0, column=0, sticky="w")
        self.path = ttk.Label(self, text="")
        self.path.grid(row=1, column=0, sticky="we")
        buttons = ttk.Frame(self)
        buttons.grid(row=1, column=1, sticky="e")
        self.up_button = ttk.Button(buttons, text="Up", command=on_up, width=4)
        self.home_button = ttk.Button(buttons, text="Home", command=on_home, width=6)
        self.refresh_button = ttk.Button(buttons, text="Refresh", command=on_refresh, width=8)
        for button in (self.up_button, self.home_button, self.refresh_button):
            button.pack(side="left")
        self.tree = ttk.Treeview(self, columns=("size", "date"), height=12, selectmode="extended")
        self._columns()
        self.tree.grid(row=2, column=0, columnspan=2, sticky="nsew")
        self.tree.bind("<Double-1>", lambda _e: on_open(self.selected()))
        self.columnconfigure(0, weight=1)
        self.rowconfigure(2, weight=1)
        self.kinds = {}
        self.shown_path = None

    def _columns(self):
        """Name stretches; Size and Date are as wide as their widest text in the list's font."""
        font = tkfont.Font(self, font=ttk.Style(self).lookup("Treeview", "font") or "TkDefaultFont")
        widths = {"#0": NAME_WIDTH, "size": font.measure(WIDEST_SIZE) + COLUMN_PAD,
                  "date": font.measure(WIDEST_DATE) + COLUMN_PAD}
        for col, text in (("#0", "Name"), ("size", "Size"), ("date", "Date")):
            self.tree.heading(col, text=text)
            self.tree.column(col, width=widths[col], minwidth=widths[col] if col != "#0" else 80,
                             stretch=col == "#0")

    def show(self, path, rows):
        """List `rows` of folder `path`; another folder than before starts at the top. The same
        folder again (Refresh, or a transfer that ended) keeps its place and what is selected."""
        moved, self.shown_path = path != self.shown_path, path
        kept = () if moved else self.tree.selection()
        self.path.configure(text=path or "/")
        self.tree.delete(*self.tree.get_children())
        self.kinds = {}
        for name, kind, size, mtime, *link in rows:
            link = link[0] if link else False
            date = time.strftime(DATE_FORMAT, time.localtime(mtime / 1e9))
            shown = name + ("/" if kind == f.KIND_DIR else "") + LINK_MARKS[link]
            sized = "" if kind == f.KIND_DIR or size is None else human_size(size)
            self.tree.insert("", "end", iid=name, text=shown, values=(sized, date))
            self.kinds[name] = None if link == "broken" else kind
        kept = [name for name in kept if self.tree.exists(name)]
        if kept:
            self.tree.selection_set(kept)
        if moved:
            self.tree.yview_moveto(0.0)

    def selected(self):
        return list(self.tree.selection())
