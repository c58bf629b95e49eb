"""End to end: the GUI viewer's files panel and chat against a real command-line host.

A relay process (`tagio_relay_server.py`), `tagio-gui.py --cli host --files-dir DIR --chat-stdin` on
a private Xvfb display, and the GUI app (tagio.ui.app.App with a real Client) in this process on
the shared Xvfb, all over 127.0.0.1. Driven like a person with xdotool: connect from the home
window, open Files from the session window's toolbar, select a folder in "This computer" and press
Send, pause it half way to see the progress bars (a screenshot of the panel is saved, its path
printed), resume, get the tree back into another folder, and chat both ways from the session
window's chat panel. The Pause must land mid-way whatever the speed of the path and the load of
the machine: the sending engine is held at the first chunk past half of the data (`hold_half_way`)
until the panel shows the transfer paused, so the click never comes after the last byte went.
Checked on disk: every file's SHA-256, the folders (empty ones too) and modification times.
$HOME is a temporary folder (the files panel opens on it).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tkinter.font as tkfont
import unittest
from pathlib import Path
from tkinter import ttk

from tests.desk import artifact_shot
from tests.files_hold import hold_half_way
from tests.test_e2e import GUI, ROOT
from tests.test_e2e_files import _attach, make_tree, tree_digest
from tests.test_ui_app import UiCase
from tests.xvfb import Xvfb, skip_unless_xvfb

PASSWORD = "files-gui-e2e-permanent-1"
MOVIE = 48 * 1024 * 1024        # one big file: the bars are half filled inside it when paused


@skip_unless_xvfb
class GuiViewerFiles(UiCase):
    @classmethod
    def setUpClass(cls):
        from tests.relay_fixture import run_relay_process
        cls.tmp = Path(tempfile.mkdtemp(prefix="tagio-files-gui-"))
        cls.relay_proc, address = run_relay_process("--bind", "127.0.0.1:0", "--state-file", "")
        cls.relay_text = "%s:%d" % address
        cls.host_xvfb = Xvfb(width=320, height=240).start()
        cls.shared = cls.tmp / "shared"
        cls.shared.mkdir()
        (cls.shared / "notes for you.txt").write_text("from the host\n")
        env = cls.host_xvfb.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "TAGIO_PASSWORD"):
            env.pop(name, None)
        argv = [sys.executable, GUI, "--cli", "host", "--json", "--relay", cls.relay_text, "--config-dir",
                str(cls.tmp / "host"), "--direct-bind", "127.0.0.1", "--password", PASSWORD,
                "--files-dir", str(cls.shared), "--chat-stdin"]
        cls.host = _attach(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT)))
        cls.host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.host.stop()
        cls.host_xvfb.stop()
        cls.relay_proc.terminate()
        cls.relay_proc.wait(10)
        shutil.rmtree(cls.tmp, True)

    def setUp(self):
        self.home = self.tmp / "home"
        self.home.mkdir(exist_ok=True)
        old_home = os.environ.get("HOME")
        os.environ["HOME"] = str(self.home)
        self.addCleanup(lambda: os.environ.__setitem__("HOME", old_home) if old_home is not None
                        else os.environ.pop("HOME", None))
        super().setUp()

    # ---------------------------------------------------------------- driving helpers

    def xdotool(self, *args):
        subprocess.run(["xdotool", *map(str, args)], env=dict(os.environ, DISPLAY=self.xvfb.display),
                       check=True, timeout=10, capture_output=True)

    def click(self, widget, x=None, y=None, repeat=1):
        self.pump(widget.winfo_viewable, f"{widget} on screen")
        x = widget.winfo_rootx() + (widget.winfo_width() // 2 if x is None else x)
        y = widget.winfo_rooty() + (widget.winfo_height() // 2 if y is None else y)
        self.xdotool("mousemove", x, y, "click", "--repeat", repeat, "--delay", 80, 1)

    def click_row(self, folder_list, iid, repeat=1):
        tree = folder_list.tree
        self.pump(lambda: tree.exists(iid) and tree.bbox(iid), f"the row {iid}")
        bx, by, _bw, bh = tree.bbox(iid)
        self.click(tree, bx + 20, by + bh // 2, repeat)
        if repeat == 1:
            self.pump(lambda: tree.selection() == (iid,), f"{iid} selected")

    def connect(self):
        from tagio.ui.prompts import PasswordDialog
        from tagio.ui.viewer_window import ViewerWindow
        self.pump(lambda: "Ready" in self.app.home.status_var.get(), "relay online", 20)
        home = self.app.home
        self.click(home.partner_entry)
        self.xdotool("type", "--delay", 10, self.host.events("ready")[-1]["id"])
        self.xdotool("key", "Return")
        dialog = self.pump(lambda: (self.toplevels(PasswordDialog) or [None])[0], "password dialog")
        dialog.password_var.set(PASSWORD)
        dialog.ok_button.invoke()
        window = self.pump(lambda: (self.toplevels(ViewerWindow) or [None])[0], "session window", 30)
        window.geometry("1024x600+0+0")
        self.pump(lambda: "disabled" not in window.toolbar.files_button.state(), "Files enabled", 20)
        return window

    # ---------------------------------------------------------------- the test

    def test_send_a_folder_get_it_back_and_chat(self):
        tree = make_tree(self.home)
        with open(tree / "a" / "movie.bin", "wb") as fh:
            for i in range(MOVIE >> 20):
                fh.write(i.to_bytes(8, "big") * (1 << 17))
        os.utime(tree / "a" / "movie.bin", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
        os.utime(tree / "a", ns=(1_600_000_000_000_000_123, 1_600_000_000_000_000_123))
        (self.home / "back").mkdir(exist_ok=True)
        window = self.connect()

        self.click(window.toolbar.files_button)
        panel = self.pump(lambda: window.files_panel, "the files panel")
        panel.geometry("1100x720+0+0")
        self.pump(lambda: panel.local.tree.exists("tree"), "the home folder listed")
        self.click_row(panel.local, "tree")
        files = panel.session.files
        release = hold_half_way(self, files)
        try:
            self.click(panel.send_button)
            tid = self.pump(lambda: next((r["tid"] for r in files.snapshot()
                                          if 0 < r["total"] <= 2 * r["bytes"]), None),
                            "half of it on the way", 30)
            self.pump(lambda: tid in panel._bars, "a progress bar for the transfer")
            self.click(panel._bars[tid][3])                             # Pause
            self.pump(lambda: files.snapshot()[0]["paused"] and panel._bars[tid][3]["text"] == "Resume",
                      "paused")
        finally:
            release.set()
        held = files.snapshot()[0]["bytes"]
        self.pump(lambda: 0 < panel._bars[tid][2]["value"] < 1 and 0 < panel.total_bar["value"] < 1,
                  "bars partly filled")
        self.save_screenshot(panel)
        self.assertEqual(files.snapshot()[0]["bytes"], held)           # nothing went on while paused
        self.click(panel._bars[tid][3])                                 # Resume
        self.pump(lambda: files.results.get(tid, {}).get("ok"), "the folder sent", 120)
        self.assertEqual(files.results[tid]["verified"], 24)
        self.assertEqual(tree_digest(tree), tree_digest(self.shared / "tree"))
        self.assertEqual(tree.stat().st_mtime_ns, (self.shared / "tree").stat().st_mtime_ns)
        self.pump(lambda: panel.remote.tree.exists("tree"), "the remote list shows it")

        self.click_row(panel.local, "back", repeat=2)                   # into the folder "back"
        self.pump(lambda: panel.local_dir == str(self.home / "back"), "in the folder back")
        self.click_row(panel.remote, "tree")
        self.click(panel.get_button)
        self.pump(lambda: len(files.results) == 2 and all(r["ok"] for r in files.results.values()),
                  "the folder fetched", 120)
        self.assertEqual(tree_digest(tree), tree_digest(self.home / "back" / "tree"))
        self.assertEqual(list(self.home.rglob("*.tagio-part")) + list(self.shared.rglob("*.tagio-part")), [])
        panel.close()

        self.click(window.toolbar.chat_button)
        self.pump(window.chat.winfo_viewable, "the chat panel")
        self.click(window.chat.entry)
        self.xdotool("type", "--delay", 20, "hello host")
        self.pump(lambda: window.chat.entry.get() == "hello host", "typed")
        window.chat.entry.insert("end", " \u2713")                      # (xdotool types ASCII only here)
        self.xdotool("key", "Return")
        self.pump(lambda: "You: hello host" in window.chat.shown_text(),
                  f"my line shown ({window.chat.status['text']!r}, {window.chat.entry.get()!r}, "
                  f"{self.root.focus_get()})")
        said = self.host.wait_for(lambda e: e.get("event") == "chat", what="the viewer's chat line")
        self.assertEqual(said["message"], "hello host \u2713")
        self.host.popen.stdin.write("hello viewer \u00e9\n")
        self.host.popen.stdin.flush()
        self.pump(lambda: "Partner: hello viewer \u00e9" in window.chat.shown_text(), "the host's line")

    def open_panel(self):
        window = self.connect()
        self.click(window.toolbar.files_button)
        panel = self.pump(lambda: window.files_panel, "the files panel")
        panel.geometry("1100x720+0+0")
        self.pump(lambda: panel.remote.tree.exists("notes for you.txt"), "the remote folder listed")
        return panel

    def dialog(self, panel, kind):
        return self.pump(lambda: next((w for w in panel.winfo_children() if isinstance(w, kind)
                                       and w.winfo_viewable()), None), kind.__name__)

    def test_lists_folders_links_and_remote_actions(self):
        """Sizes and whole dates; Up, Home, Refresh on both sides; a new folder on the list starts
        at its top; a linked folder is a folder, a broken link is marked; the host lists a link
        inside its folder as a folder and hides one that leads outside; New folder, Rename, Delete (confirmed) on the host's disk;
        a drag from the local list onto a remote folder sends into it."""
        from tagio.ui.files_panel import NameDialog
        from tagio.ui.prompts import ConfirmDialog
        many = self.home / "many"
        many.mkdir(exist_ok=True)
        (many / "deeper").mkdir(exist_ok=True)
        for i in range(80):
            (many / f"file{i:02}.txt").write_text("x" * i)
            (many / "deeper" / f"more{i:02}.txt").write_text("y")
        (self.home / "linked").symlink_to(many)
        (self.home / "dangling").symlink_to(self.home / "nowhere")
        outside = self.tmp / "outside"
        outside.mkdir(exist_ok=True)
        (outside / "secret.txt").write_text("not for the partner")
        (self.shared / "escape").symlink_to(outside)
        self.addCleanup((self.shared / "escape").unlink)
        (self.shared / "kept").mkdir(exist_ok=True)
        (self.shared / "kept" / "inside.txt").write_text("inside")
        (self.shared / "kept-link").symlink_to(self.shared / "kept")
        self.addCleanup((self.shared / "kept-link").unlink)
        stamp = 1_700_000_000_000_000_000
        os.utime(self.shared / "notes for you.txt", ns=(stamp, stamp))
        panel = self.open_panel()
        local, remote = panel.local, panel.remote

        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp / 1e9))
        self.pump(lambda: remote.tree.item("notes for you.txt", "values") == ("14 B", date), "size and date")
        font = tkfont.Font(panel, font=ttk.Style(panel).lookup("Treeview", "font") or "TkDefaultFont")
        self.assertGreaterEqual(remote.tree.column("date", "width"), font.measure(date) + 8)  # not cut
        self.assertFalse(remote.tree.exists("escape"))              # never followed outside
        self.assertEqual(remote.tree.item("kept-link", "text"), "kept-link/")  # inside: a folder
        self.assertEqual(local.tree.item("linked", "text"), "linked/  (link)")
        self.assertEqual(local.tree.item("linked", "values")[0], "")            # no size: a folder
        self.assertEqual(local.tree.item("dangling", "text"), "dangling  (broken link)")

        self.click_row(local, "linked", repeat=2)                   # into the linked folder
        self.pump(lambda: local.tree.exists("file79.txt"), "the linked folder listed")
        self.assertEqual(local.tree.item("file10.txt", "values")[0], "10 B")
        self.click_row(local, "file05.txt")         # (a click away from the double-click's place
        self.click_row(local, "deeper", repeat=2)   # first: Tk would count it as a third click)
        self.pump(lambda: local.tree.exists("more79.txt"), "the folder deeper listed")
        for _ in range(4):
            self.xdotool("click", "--repeat", 5, 5)                 # the wheel, down
        self.pump(lambda: local.tree.yview()[0] > 0.2, "scrolled down")
        self.click(local.up_button)
        self.pump(lambda: local.tree.exists("file79.txt"), "up again, in a folder as long")
        self.root.update()
        self.assertEqual(local.tree.yview()[0], 0.0)                # another folder: at its top
        self.click(local.home_button)
        self.pump(lambda: panel.local_dir == str(self.home), "home again")

        self.click(panel.mkdir_button)
        dialog = self.dialog(panel, NameDialog)
        self.click(dialog.entry)
        self.xdotool("type", "--delay", 10, "inbox")
        self.xdotool("key", "Return")
        self.pump(lambda: (self.shared / "inbox").is_dir() and remote.tree.exists("inbox"), "the new folder")
        self.click_row(remote, "inbox", repeat=2)
        self.pump(lambda: panel.remote_dir == "inbox" and not remote.tree.exists("notes for you.txt"),
                  "inside")
        self.click(remote.home_button)
        self.pump(lambda: panel.remote_dir == "" and remote.tree.exists("inbox"), "the top of the folder")
        self.click_row(remote, "inbox", repeat=2)
        self.pump(lambda: panel.remote_dir == "inbox", "inside again")
        self.click(remote.up_button)
        self.pump(lambda: panel.remote_dir == "" and remote.tree.exists("inbox"), "up on the remote side")
        self.click_row(remote, "inbox")
        (self.shared / "fresh.txt").write_text("made on the host")
        self.click(remote.refresh_button)
        self.pump(lambda: remote.tree.exists("fresh.txt"), "Refresh shows a new file")
        self.assertEqual(remote.tree.selection(), ("inbox",))     # the same folder: selection kept

        self.click_row(remote, "fresh.txt")
        self.click(panel.rename_button)
        dialog = self.dialog(panel, NameDialog)
        dialog.entry.delete(0, "end")
        self.click(dialog.entry)
        self.xdotool("type", "--delay", 10, "renamed.txt")
        self.click(dialog.ok_button)
        self.pump(lambda: (self.shared / "renamed.txt").exists() and remote.tree.exists("renamed.txt"),
                  "renamed")
        self.assertFalse((self.shared / "fresh.txt").exists())
        self.click_row(remote, "renamed.txt")
        self.click(panel.delete_button)
        self.click(self.dialog(panel, ConfirmDialog).no_button)     # changed my mind
        self.click(panel.delete_button)
        self.click(self.dialog(panel, ConfirmDialog).yes_button)
        self.pump(lambda: not remote.tree.exists("renamed.txt"), "deleted")
        self.assertFalse((self.shared / "renamed.txt").exists())

        self.pump(lambda: local.tree.bbox("many") and remote.tree.bbox("inbox"), "both rows in sight")
        lx, ly, _w, lh = local.tree.bbox("many")
        rx, ry, _w, rh = remote.tree.bbox("inbox")
        start = (local.tree.winfo_rootx() + lx + 20, local.tree.winfo_rooty() + ly + lh // 2)
        end = (remote.tree.winfo_rootx() + rx + 20, remote.tree.winfo_rooty() + ry + rh // 2)
        self.xdotool("mousemove", *start, "mousedown", 1)
        self.pump(lambda: local.tree.selection() == ("many",), "pressed on many")
        for step in range(1, 11):
            self.xdotool("mousemove", start[0] + (end[0] - start[0]) * step // 10,
                         start[1] + (end[1] - start[1]) * step // 10)
        self.xdotool("mouseup", 1)
        files = panel.session.files
        self.pump(lambda: files.results and all(r["ok"] for r in files.results.values()),
                  "dropped and sent", 60)
        self.assertEqual(tree_digest(many), tree_digest(self.shared / "inbox" / "many"))
        self.assertEqual([p.name for p in outside.iterdir()], ["secret.txt"])
        panel.close()

    def test_existing_files_are_asked_about(self):
        """A name already there is never overwritten unasked: the panel asks (Skip, Keep both,
        Overwrite) and sends or fetches that file again under the answer."""
        from tagio.ui.files_exists import ExistsDialog
        (self.shared / "same name.txt").write_text("the host's")
        (self.home / "same name.txt").write_text("mine, newer")
        (self.home / "notes for you.txt").write_text("my own notes")
        panel = self.open_panel()
        files = panel.session.files
        for button, expected in (("skip_button", "the host's"), ("keep_button", "the host's"),
                                 ("overwrite_button", "mine, newer")):
            ended = len(files.results)
            self.click_row(panel.local, "same name.txt")
            self.click(panel.send_button)
            asked = self.dialog(panel, ExistsDialog)
            self.assertIn("same name.txt", asked.message_text)
            self.click(getattr(asked, button))
            self.pump(lambda: not asked.winfo_exists(), "the question answered")   # (it was over the list)
            if button != "skip_button":
                self.pump(lambda: len(files.results) == ended + 2, "sent again")
                self.assertTrue(files.results[max(files.results)]["ok"], files.results)
            self.assertEqual((self.shared / "same name.txt").read_text(), expected)
        self.assertEqual((self.shared / "same name (1).txt").read_text(), "mine, newer")
        self.pump(lambda: panel.remote.tree.exists("same name (1).txt"), "the copy listed")

        ended = len(files.results)
        self.click_row(panel.remote, "notes for you.txt")
        self.click(panel.get_button)
        asked = self.dialog(panel, ExistsDialog)
        self.assertIn("this computer", asked.message_text)
        self.click(asked.overwrite_button)
        self.pump(lambda: not asked.winfo_exists(), "the question answered")
        self.pump(lambda: len(files.results) == ended + 2 and files.results[max(files.results)]["ok"],
                  "fetched again")
        self.assertEqual((self.home / "notes for you.txt").read_text(), "from the host\n")
        self.assertEqual(list(self.home.glob("*.tagio-part")) + list(self.shared.glob("*.tagio-part")), [])
        panel.close()

    def test_queue_says_bytes_rate_time_left_and_cancel_stops(self):
        """While a big file moves, its row and the queue line say bytes of the total, the rate and
        the time left; Cancel stops it (the host keeps only a part, never the final name)."""
        big = self.home / "huge.iso"
        with open(big, "wb") as fh:
            block = os.urandom(1 << 20)
            for i in range(384):
                fh.write(i.to_bytes(8, "big") + block[8:])
        self.addCleanup(big.unlink)
        panel = self.open_panel()
        self.click_row(panel.local, "huge.iso")
        self.click(panel.send_button)
        files = panel.session.files
        tid = self.pump(lambda: next((r["tid"] for r in files.snapshot() if r["bytes"] > 0), None),
                        "moving", 30)
        row = self.pump(lambda: tid in panel._bars and panel._bars[tid][1], "its row")
        self.pump(lambda: re.search(r"MB of 402\.7 MB, [\d.]+ [KMG]B/s, (\d+ min )?\d+ s left", row["text"]),
                  "bytes, rate and time left in the row")
        self.pump(lambda: re.search(r"of 402\.7 MB, [\d.]+ [KMG]B/s, (\d+ min )?\d+ s left",
                                    panel.total_label["text"]), "... and in the queue line")
        self.click(panel._bars[tid][4])                             # Cancel
        self.pump(lambda: files.results.get(tid, {}).get("ok") is False, "cancelled")
        self.pump(lambda: "cancelled" in row["text"], f"the row says so ({row['text']})")
        self.assertEqual(str(panel._bars[tid][3]["state"]), "disabled")
        self.assertFalse((self.shared / "huge.iso").exists())
        self.assertLess((self.shared / "huge.iso.tagio-part").stat().st_size, big.stat().st_size)
        (self.shared / "huge.iso.tagio-part").unlink()
        panel.close()

    def save_screenshot(self, panel):
        image, origin = artifact_shot(self.xvfb.display, panel, "files_panel_gui_e2e", "files panel (GUI viewer, CLI host)")
        bar = panel.total_bar
        x0, y0 = bar.winfo_rootx() - origin[0], bar.winfo_rooty() - origin[1]
        y = y0 + bar.winfo_height() // 2
        start, end = image.getpixel((x0 + 3, y)), image.getpixel((x0 + bar.winfo_width() - 4, y))
        self.assertNotEqual(start, end, "the half-full queue bar is not drawn half filled")


if __name__ == "__main__":
    unittest.main()
