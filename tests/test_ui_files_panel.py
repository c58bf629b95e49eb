"""The files and chat panel (tagio.ui.files_panel) on Xvfb, driven with xdotool like a person.

A real ViewerSession over a real secure channel (loopback TCP, SPAKE2) talks to a stand-in host made
of the real file engine (tagio.session.files) reading the host end of the channel: no screen is
shared, only files and chat. The test clicks a local folder and "Send", a remote file and "Get",
types a chat line, and checks the files arrived (SHA-256), the progress bars are full, and a
screenshot of the panel with its progress bars is saved (its path is printed).
"""

import hashlib
import os
import tempfile
import threading
import time
import unittest
from pathlib import Path

from tagio.protocol import session as m
from tests.desk import Desk, artifact_shot
from tests.files_hold import hold_half_way
from tests.xvfb import shared_xvfb, skip_unless_xvfb


class StandInHost:
    """The host end of the channel: a FileEngine with a files folder, and the chat lines."""

    def __init__(self, channel, files_dir):
        from tagio.session.files import FileEngine
        self.channel, self.chat, self.stopping = channel, [], threading.Event()
        self.engine = FileEngine(self._send, root=files_dir, first_tid=1)
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self.engine.pump, args=(self.stopping,), daemon=True)]
        for thread in self.threads:
            thread.start()

    def _send(self, msg):
        data = m.encode(m.Files(msg))
        with self._lock:
            self.channel.send(data)
        self.engine.sent(data)

    def say(self, text):
        with self._lock:
            self.channel.send(m.encode(m.Chat(text)))

    def _read(self):
        try:
            while not self.stopping.is_set():
                msg = m.decode(self.channel.recv())
                if isinstance(msg, m.Files):
                    self.engine.handle(msg.msg)
                elif isinstance(msg, m.Chat):
                    self.chat.append(msg.text)
        except Exception:       # the channel closed at the end of the test
            pass

    def close(self):
        self.stopping.set()
        self.channel.close()
        for thread in self.threads:
            thread.join(5)


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@skip_unless_xvfb
class PanelOnXvfb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.xvfb = shared_xvfb(1280, 800)

    def setUp(self):
        import tkinter as tk
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.local, self.shared = self.tmp / "local", self.tmp / "shared"
        (self.local / "photos" / "2024").mkdir(parents=True)
        (self.local / "photos" / "big.raw").write_bytes(os.urandom(3 << 20))
        (self.local / "photos" / "2024" / "ünï.jpg").write_bytes(os.urandom(5000))
        self.shared.mkdir()
        (self.shared / "report.txt").write_text("quarterly report\n")
        host_channel, channel = secure_pair()
        self.host = StandInHost(host_channel, self.shared)
        self.session = ViewerSession(channel)
        self.session.start()
        self.root = tk.Tk(screenName=self.xvfb.display)
        self.root.withdraw()
        self.desk = Desk(self.xvfb.display, update=self.root.update)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        self.session.stop()
        self.host.close()
        self.root.destroy()

    def pump(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.root.update()
            if predicate():
                return True
            time.sleep(0.01)
        return False

    def click_row(self, folder_list, iid):
        tree = folder_list.tree
        self.assertTrue(self.pump(lambda: tree.exists(iid) and tree.bbox(iid)), f"no row {iid}")
        bx, by, _bw, bh = tree.bbox(iid)
        self.desk.click(tree, bx + 20, by + bh // 2)
        self.assertTrue(self.pump(lambda: tree.selection() == (iid,)), f"{iid} not selected")

    def test_send_get_chat_with_progress_bars(self):
        from tagio.ui.files_panel import FilesPanel
        panel = FilesPanel(self.root, self.session, self.local)
        panel.geometry("1100x720+0+0")
        self.assertTrue(self.pump(panel.winfo_viewable), "panel never mapped")
        self.assertTrue(self.pump(lambda: panel.remote.tree.exists("report.txt")), "remote list")

        self.click_row(panel.local, "photos")
        self.desk.click(panel.send_button)
        self.assertTrue(self.pump(lambda: (self.shared / "photos" / "big.raw").exists(), 60))
        self.click_row(panel.remote, "report.txt")
        self.desk.click(panel.get_button)
        self.assertTrue(self.pump(lambda: len(panel.session.files.results) == 2
                                  and all(r["ok"] for r in panel.session.files.results.values()), 60),
                        panel.session.files.results)
        self.assertEqual(sha(self.local / "photos" / "big.raw"), sha(self.shared / "photos" / "big.raw"))
        self.assertEqual((self.shared / "photos" / "2024" / "ünï.jpg").read_bytes(),
                         (self.local / "photos" / "2024" / "ünï.jpg").read_bytes())
        self.assertEqual((self.local / "report.txt").read_text(), "quarterly report\n")
        self.assertTrue(self.pump(lambda: panel.total_bar["value"] == 1.0
                                  and all(bar["value"] == 1.0 for _f, _l, bar, *_buttons in panel._bars.values())))
        self.assertTrue(self.pump(lambda: panel.remote.tree.exists("photos")), "remote list refreshed")

        self.desk.click(panel.chat_entry)
        self.desk.type_text("hello host")
        self.desk.press("Return")
        self.assertTrue(self.pump(lambda: self.host.chat == ["hello host"]), self.host.chat)
        self.host.say("hello viewer ✓")
        self.assertTrue(self.pump(lambda: "Partner: hello viewer ✓" in panel.chat_text.get("1.0", "end")))
        self.assertIn("You: hello host", panel.chat_text.get("1.0", "end"))
        self.save_screenshot(panel)
        panel.close()

    def test_pause_and_resume_both_ways(self):
        from tagio.ui.files_panel import FilesPanel
        size = 160 << 20
        with open(self.local / "video.mkv", "wb") as fh:
            block = os.urandom(1 << 20)
            for i in range(size >> 20):
                fh.write(i.to_bytes(8, "big") + block[8:])
        panel = FilesPanel(self.root, self.session, self.local)
        panel.geometry("1100x720+0+0")
        self.assertTrue(self.pump(panel.winfo_viewable), "panel never mapped")
        files = self.session.files

        self.click_row(panel.local, "video.mkv")
        release = hold_half_way(self, files)    # the Pause lands mid-way however fast the path is
        try:
            self.desk.click(panel.send_button)
            self.assertTrue(self.pump(lambda: any(0 < r["total"] <= 2 * r["bytes"] for r in files.snapshot())),
                            "not half way")
            tid = files.snapshot()[0]["tid"]
            self.assertTrue(self.pump(lambda: tid in panel._bars), "no row for the transfer")
            self.desk.click(panel._bars[tid][3])                           # Pause
            self.assertTrue(self.pump(lambda: files.snapshot()[0]["paused"]))
        finally:
            release.set()
        held = files.snapshot()[0]["bytes"]
        self.assertLess(held, size)
        self.assertFalse(self.pump(lambda: files.snapshot()[0]["bytes"] > held + 2 * (128 << 10), 0.5))
        self.assertEqual(panel._bars[tid][3]["text"], "Resume")
        self.desk.click(panel._bars[tid][3])                               # Resume
        self.assertTrue(self.pump(lambda: files.results.get(tid, {}).get("ok"), 120), files.results)
        self.assertEqual(sha(self.local / "video.mkv"), sha(self.shared / "video.mkv"))

        (self.local / "video.mkv").unlink()
        panel.refresh_remote()
        self.click_row(panel.remote, "video.mkv")
        self.desk.click(panel.get_button)
        self.assertTrue(self.pump(lambda: len(files.snapshot()) == 2 and files.snapshot()[1]["bytes"]))
        get_tid = files.snapshot()[1]["tid"]
        self.assertTrue(self.pump(lambda: get_tid in panel._bars), "no row for the get")
        self.desk.click(panel._bars[get_tid][3])                           # Pause (the get is cancelled)
        self.assertTrue(self.pump(lambda: get_tid in files.results))
        self.assertFalse((self.local / "video.mkv").exists())
        self.assertTrue(self.pump(lambda: panel._bars[get_tid][3]["text"] == "Resume"))
        part = (self.local / "video.mkv.tagio-part").stat().st_size
        self.desk.click(panel._bars[get_tid][3])                           # Resume: asks again
        self.assertTrue(self.pump(lambda: len(files.results) == 3
                                  and all(r["ok"] for t, r in files.results.items() if t != get_tid), 120),
                        files.results)
        again = max(files.results)
        self.assertEqual(files.results[again]["bytes"], size - part)      # only the rest came
        self.assertEqual(sha(self.local / "video.mkv"), sha(self.shared / "video.mkv"))
        panel.close()

    def open_panel(self):
        from tagio.ui.files_panel import FilesPanel
        panel = FilesPanel(self.root, self.session, self.local)
        panel.geometry("1100x720+0+0")
        self.assertTrue(self.pump(panel.winfo_viewable), "panel never mapped")
        self.assertTrue(self.pump(lambda: panel.remote.tree.exists("report.txt")), "remote list")
        return panel

    def dialog_of(self, panel, kind):
        found = []
        self.assertTrue(self.pump(lambda: found.extend(w for w in panel.winfo_children() if isinstance(w, kind)
                                                       and w.winfo_viewable()) or found), f"no {kind.__name__}")
        return found[0]

    def test_new_folder_rename_delete_on_the_remote_side(self):
        from tagio.ui.files_panel import NameDialog
        from tagio.ui.prompts import ConfirmDialog
        panel = self.open_panel()
        self.desk.click(panel.mkdir_button)
        dialog = self.dialog_of(panel, NameDialog)
        self.desk.click(dialog.entry)
        self.desk.type_text("inbox")
        self.desk.press("Return")
        self.assertTrue(self.pump(lambda: (self.shared / "inbox").is_dir()), "new folder")
        self.assertTrue(self.pump(lambda: panel.remote.tree.exists("inbox")), "listed again")

        self.click_row(panel.remote, "report.txt")
        self.desk.click(panel.rename_button)
        dialog = self.dialog_of(panel, NameDialog)
        self.assertEqual(dialog.entry.get(), "report.txt")
        self.desk.click(dialog.entry)
        self.desk.press("End", "shift+Home", "BackSpace")
        self.desk.type_text("old report.txt")
        self.desk.click(dialog.ok_button)
        self.assertTrue(self.pump(lambda: (self.shared / "old report.txt").exists()), "renamed")
        self.assertFalse((self.shared / "report.txt").exists())
        self.assertTrue(self.pump(lambda: panel.remote.tree.exists("old report.txt")), "listed again")

        self.click_row(panel.remote, "old report.txt")
        self.desk.click(panel.delete_button)
        confirm = self.dialog_of(panel, ConfirmDialog)
        self.assertIn("old report.txt", confirm.message_text)
        self.desk.click(confirm.no_button)                                  # changed my mind
        self.assertFalse(self.pump(lambda: not (self.shared / "old report.txt").exists(), 0.5))
        self.desk.click(panel.delete_button)
        self.desk.click(self.dialog_of(panel, ConfirmDialog).yes_button)
        self.assertTrue(self.pump(lambda: not (self.shared / "old report.txt").exists()), "deleted")
        self.assertTrue(self.pump(lambda: not panel.remote.tree.exists("old report.txt")), "listed again")

        self.desk.click(panel.mkdir_button)                                 # a name that exists: refused
        dialog = self.dialog_of(panel, NameDialog)
        self.desk.click(dialog.entry)
        self.desk.type_text("inbox")
        self.desk.press("Return")
        self.assertTrue(self.pump(lambda: "exists already" in panel.status["text"]), panel.status["text"])
        panel.close()

    def test_drag_from_the_local_list_to_the_remote_list_sends(self):
        panel = self.open_panel()
        panel.session.files.make_dir("inbox")
        self.assertTrue(self.pump(lambda: (self.shared / "inbox").is_dir()))
        panel.refresh_remote()
        self.assertTrue(self.pump(lambda: panel.remote.tree.exists("inbox") and panel.remote.tree.bbox("inbox")))
        local, remote = panel.local.tree, panel.remote.tree
        self.assertTrue(self.pump(lambda: local.exists("photos") and local.bbox("photos")))
        lx, ly, _w, lh = local.bbox("photos")
        rx, ry, _w, rh = remote.bbox("inbox")
        start = (local.winfo_rootx() + lx + 20, local.winfo_rooty() + ly + lh // 2)
        end = (remote.winfo_rootx() + rx + 20, remote.winfo_rooty() + ry + rh // 2)
        self.desk.xdotool("mousemove", *start, "mousedown", 1)
        self.assertTrue(self.pump(lambda: local.selection() == ("photos",)), "pressed on photos")
        for step in range(1, 11):       # a person's drag: several motions on the way
            self.desk.xdotool("mousemove", start[0] + (end[0] - start[0]) * step // 10,
                         start[1] + (end[1] - start[1]) * step // 10)
            self.root.update()
        self.assertTrue(self.pump(lambda: str(local["cursor"]) == "hand2"), "the drag is shown")
        self.desk.xdotool("mouseup", 1)
        self.assertTrue(self.pump(lambda: panel.session.files.results
                                  and all(r["ok"] for r in panel.session.files.results.values()), 60),
                        panel.session.files.results)
        self.assertEqual(sha(self.local / "photos" / "big.raw"), sha(self.shared / "inbox" / "photos" / "big.raw"))
        self.assertEqual(str(local["cursor"]), "")
        self.assertEqual(local.selection(), ("photos",))
        panel.close()

    def test_a_click_on_the_local_list_sends_nothing(self):
        panel = self.open_panel()
        self.click_row(panel.local, "photos")
        self.pump(lambda: False, 0.5)
        self.assertEqual(panel.session.files.snapshot(), [])
        panel.close()

    def test_a_transfer_continues_after_a_reconnect(self):
        """The path breaks under a send (the stream cut, no goodbye); the session window hands the
        panel the session that came back; the send continues from the part the host holds."""
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        size = 160 << 20
        with open(self.local / "video.mkv", "wb") as fh:
            block = os.urandom(1 << 20)
            for i in range(size >> 20):
                fh.write(i.to_bytes(8, "big") + block[8:])
        panel = self.open_panel()
        old = self.session
        self.click_row(panel.local, "video.mkv")
        self.desk.click(panel.send_button)
        self.assertTrue(self.pump(lambda: any(r["bytes"] >= 8 << 20 for r in old.files.snapshot())))
        tid = old.files.snapshot()[0]["tid"]
        self.assertTrue(self.pump(lambda: tid in panel._bars), "no row for the transfer")
        old.channel.stream.close()                                  # the path breaks
        self.assertTrue(self.pump(lambda: not old.running), "the session never noticed")
        self.host.close()
        self.host.engine.close()                                    # the host's session ends too
        part = (self.shared / "video.mkv.tagio-part").stat().st_size
        self.assertLess(part, size)

        host_channel, channel = secure_pair()                       # the session comes back
        self.host = StandInHost(host_channel, self.shared)
        self.session = ViewerSession(channel)
        self.session.start()
        panel.resume_with(self.session)
        files = self.session.files
        self.assertTrue(self.pump(lambda: any(r.get("ok") for r in files.results.values()), 120),
                        files.results)
        (new_tid, result), = files.results.items()
        self.assertGreater(new_tid, tid)
        self.assertLessEqual(result["bytes"], size - part)         # the part was not sent again
        self.assertEqual(sha(self.local / "video.mkv"), sha(self.shared / "video.mkv"))
        self.assertTrue(self.pump(lambda: new_tid in panel._bars and panel._bars[new_tid][2]["value"] == 1.0))
        self.assertNotIn(tid, panel._bars)                          # one row for the file, not two
        self.assertTrue(self.pump(lambda: panel.total_bar["value"] == 1.0))
        self.desk.click(panel.chat_entry)                                # the chat goes to the new session
        self.desk.type_text("still here")
        self.desk.press("Return")
        self.assertTrue(self.pump(lambda: self.host.chat == ["still here"]), self.host.chat)

    def test_many_transfers_keep_the_panel_height(self):
        """A tester saw the panel grow by a row per transfer (717 -> 840 px on an 800-px screen,
        the chat and Send off screen): the rows scroll in an area of a fixed height."""
        from tagio.ui.files_panel import FilesPanel
        from tests.desk import keep_shot
        for i in range(8):
            (self.local / f"note{i}.txt").write_text(f"note {i}\n")
        panel = FilesPanel(self.root, self.session, self.local)     # its own size, as in the product
        self.assertTrue(self.pump(panel.winfo_viewable), "panel never mapped")
        self.assertTrue(self.pump(lambda: panel.remote.tree.exists("report.txt")), "remote list")
        height, wanted = panel.winfo_height(), panel.winfo_reqheight()
        for i in range(8):
            self.session.send_files([str(self.local / f"note{i}.txt")])
            self.assertTrue(self.pump(lambda: len(panel._bars) == i + 1), f"no row for transfer {i + 1}")
        self.assertTrue(self.pump(lambda: all(r["ok"] for r in panel.session.files.results.values())
                                  and len(panel.session.files.results) == 8), panel.session.files.results)
        self.assertTrue(self.pump(lambda: (self.shared / "note7.txt").exists()))
        self.root.update_idletasks()
        self.assertEqual((panel.winfo_reqheight(), panel.winfo_height()), (wanted, height))
        entry = panel.chat_entry                # the chat's entry is still inside the panel
        self.assertLessEqual(entry.winfo_rooty() + entry.winfo_height(), panel.winfo_rooty() + height)
        newest = panel._bars[max(panel._bars)][0]
        self.assertTrue(self.pump(lambda: newest.winfo_y() + panel.rows.winfo_y() >= 0
                                  and newest.winfo_y() + newest.winfo_height() + panel.rows.winfo_y()
                                  <= panel.rows_view.winfo_height()), "the newest row is not in sight")
        keep_shot(self.desk.grab_widget(panel), "files_panel_many_transfers")
        panel.close()

    def save_screenshot(self, panel):
        image, origin = artifact_shot(self.xvfb.display, panel, "files_panel", "files panel")
        bar = panel.total_bar
        x0, y0 = bar.winfo_rootx() - origin[0], bar.winfo_rooty() - origin[1]
        filled = image.getpixel((x0 + bar.winfo_width() - 6, y0 + bar.winfo_height() // 2))
        empty = image.getpixel((x0 - 3, y0 + bar.winfo_height() // 2))
        self.assertNotEqual(filled, empty, "the full progress bar is not drawn as filled")


if __name__ == "__main__":
    unittest.main()
