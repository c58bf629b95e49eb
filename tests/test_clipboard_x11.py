"""The X11 clipboard backend against a real Xvfb, with xclip as the other program.

Checked: what we write, xclip pastes (text, UTF-8 and the STRING fallback, PNG, and large values
by INCR); what xclip copies, we read and hear about through XFixes (also large ones by INCR);
our own writes are never reported as changes; a value over max_bytes is reported by size, never
truncated; close() ends the thread. Waits are on conditions with deadlines, never fixed sleeps.
"""

import io
import os
import select
import shutil
import subprocess
import threading
import time
import unittest

from PIL import Image

from tagio.protocol.session import CLIP_PNG, CLIP_TEXT
from tests.xvfb import Xvfb, skip_unless_xvfb

WAIT = 5.0


def needs_xclip(obj):
    if shutil.which("xclip"):
        return obj
    return unittest.skip("needs xclip (apt-get install xclip)")(obj)


def png_bytes(size=(40, 30)):
    image = Image.new("RGB", size)
    image.putdata([((x * 7) % 256, (y * 11) % 256, (x + y) % 256)
                   for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class Changes:
    """Collects watcher callbacks; `wait(pred)` waits for one that matches."""

    def __init__(self):
        self.items, self._cond = [], threading.Condition()

    def __call__(self, content):
        with self._cond:
            self.items.append((time.monotonic(), content))
            self._cond.notify_all()

    def wait(self, predicate, timeout=WAIT):
        with self._cond:
            self._cond.wait_for(lambda: any(predicate(c) for _, c in self.items), timeout)
            return [(t, c) for t, c in self.items if predicate(c)]


class FakeClipboardManager:
    """What a desktop's clipboard manager does (freedesktop ClipboardManager spec): owns
    CLIPBOARD_MANAGER and, asked for SAVE_TARGETS, copies the clipboard into `keeper` (another
    X11Clipboard, which then owns CLIPBOARD) before it answers."""

    def __init__(self, display, keeper):
        from Xlib import X
        from Xlib import display as xdisplay
        self.X, self.keeper, self.saved = X, keeper, []
        self.conn = xdisplay.Display(display)
        self.window = self.conn.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self.save_targets = self.conn.intern_atom("SAVE_TARGETS")
        self.window.set_selection_owner(self.conn.intern_atom("CLIPBOARD_MANAGER"), X.CurrentTime)
        self.conn.flush()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            while self.conn.pending_events():
                event = self.conn.next_event()
                if event.type == self.X.SelectionRequest and event.target == self.save_targets:
                    self.save(event)
            select.select([self.conn.fileno()], [], [], 0.1)

    def save(self, request):
        from Xlib.protocol import event as xevent
        got = self.keeper.read()
        if got is not None:
            self.keeper.write(*got)
            self.saved.append(got)
        reply = xevent.SelectionNotify(time=request.time, requestor=request.requestor,
                                       selection=request.selection, target=request.target,
                                       property=request.property if got else self.X.NONE)
        request.requestor.send_event(reply, event_mask=0)
        self.conn.flush()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.conn.close()


@skip_unless_xvfb
@needs_xclip
class AtomsAbove255Test(unittest.TestCase):
    """On a real desktop session hundreds of atoms exist before ours (a fresh Xvfb numbers
    UTF8_STRING about 240): the TARGETS list must be read as 32-bit atoms, not as bytes. Read
    as bytes, no target above 255 was ever "offered" and nothing copied on the host crossed."""

    def test_a_copy_elsewhere_is_read_when_its_atoms_are_large(self):
        from Xlib import display
        from tagio.session.clipboard import open_clipboard
        xvfb = Xvfb(width=320, height=200).start()
        self.addCleanup(xvfb.stop)
        conn = display.Display(xvfb.display)        # held open: the server keeps its atoms
        self.addCleanup(conn.close)
        for index in range(300):
            conn.intern_atom(f"TAGIO_TEST_ATOM_{index}")
        self.assertGreater(conn.intern_atom("UTF8_STRING"), 255)
        self.assertGreater(conn.intern_atom("image/png"), 255)
        conn.sync()
        board = open_clipboard(xvfb.display)
        self.addCleanup(board.close)
        changes = Changes()
        board.watch(changes)
        subprocess.run(["xclip", "-selection", "clipboard", "-i"], input="atoms ✓".encode(),
                       env=xvfb.env(), timeout=10, check=True)
        self.assertTrue(changes.wait(lambda c: c.data == "atoms ✓".encode()), changes.items)
        self.assertEqual(board.read(), (CLIP_TEXT, "atoms ✓".encode()))


@skip_unless_xvfb
@needs_xclip
class X11ClipboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.xvfb = Xvfb(width=320, height=200).start()

    @classmethod
    def tearDownClass(cls):
        cls.xvfb.stop()

    def setUp(self):
        from tagio.session.clipboard import open_clipboard
        self.board = open_clipboard(self.xvfb.display)
        self.assertIsNotNone(self.board)
        self.addCleanup(self.board.close)
        self.changes = Changes()
        self.board.watch(self.changes)

    def xclip_in(self, data, target=None):
        argv = ["xclip", "-selection", "clipboard", "-i"] + (["-t", target] if target else [])
        subprocess.run(argv, input=data, env=self.xvfb.env(), timeout=10, check=True)

    def xclip_out(self, target=None):
        argv = ["xclip", "-selection", "clipboard", "-o"] + (["-t", target] if target else [])
        done = subprocess.run(argv, capture_output=True, env=self.xvfb.env(), timeout=10)
        return done.stdout if done.returncode == 0 else None

    def paste_until(self, expected, target=None):
        """xclip's paste once our write has taken effect (the write is asynchronous)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            got = self.xclip_out(target)
            if got == expected:
                return got
            time.sleep(0.05)
        return self.xclip_out(target)

    def test_our_text_pastes_elsewhere_with_targets_and_string_fallback(self):
        self.board.write(CLIP_TEXT, "héllo wörld ✓".encode())
        self.assertEqual(self.paste_until("héllo wörld ✓".encode()), "héllo wörld ✓".encode())
        targets = self.xclip_out("TARGETS").decode().split()
        for name in ("TARGETS", "UTF8_STRING", "STRING", "TEXT", "text/plain;charset=utf-8"):
            self.assertIn(name, targets)
        self.assertEqual(self.xclip_out("STRING"), "héllo wörld ?".encode("latin-1"))

    def test_a_copy_elsewhere_is_heard_and_read(self):
        started = time.monotonic()
        self.xclip_in("copié ✓".encode())
        heard = self.changes.wait(lambda c: c.data == "copié ✓".encode())
        self.assertTrue(heard, f"no change reported: {self.changes.items}")
        self.assertTrue(self.board.notifies)            # XFixes, not polling
        self.assertLess(heard[0][0] - started, 1.0)
        self.assertEqual(self.board.read(), (CLIP_TEXT, "copié ✓".encode()))

    def test_large_values_go_by_incr_both_ways(self):
        from tagio.session import clipboard_x11
        from tagio.session.clipboard import open_clipboard
        big = ("0123456789abcdef" * 64 + "\n").encode() * 300      # ~300 KB: several of our chunks
        self.assertGreater(len(big), 4 * clipboard_x11.CHUNK)
        self.board.write(CLIP_TEXT, big)
        self.assertEqual(self.paste_until(big), big)                # we send by INCR, xclip receives
        reader = open_clipboard(self.xvfb.display, max_bytes=4 << 20)
        self.addCleanup(reader.close)
        received = []
        original = clipboard_x11.X11Clipboard._receive_incr

        def counted(board):
            received.append(board)
            return original(board)
        clipboard_x11.X11Clipboard._receive_incr = counted
        self.addCleanup(setattr, clipboard_x11.X11Clipboard, "_receive_incr", original)
        self.assertEqual(reader.read(), (CLIP_TEXT, big))           # our INCR to our INCR
        self.assertEqual(received, [reader])
        self.board.close()      # xclip serves one INCR transfer at a time: one reader only here
        changes = Changes()
        reader.watch(changes)
        bigger = big * 7        # ~2 MB: xclip itself goes INCR above about 1 MB
        self.xclip_in(bigger)
        heard = changes.wait(lambda c: c.size == len(bigger), timeout=15)
        self.assertTrue(heard, "large copy not heard")
        self.assertEqual(heard[0][1].data, bigger)
        self.assertEqual(received, [reader, reader])

    def test_png_both_ways(self):
        image = png_bytes()
        self.board.write(CLIP_PNG, image)
        self.assertEqual(self.paste_until(image, "image/png"), image)
        other = png_bytes((64, 48))
        self.xclip_in(other, "image/png")
        heard = self.changes.wait(lambda c: c.mime == CLIP_PNG)
        self.assertTrue(heard, "image copy not heard")
        self.assertEqual(heard[0][1].data, other)

    def test_our_own_write_is_not_reported(self):
        self.board.write(CLIP_TEXT, b"ours")
        self.assertEqual(self.paste_until(b"ours"), b"ours")
        self.xclip_in(b"theirs")                            # positive control, after ours
        self.assertTrue(self.changes.wait(lambda c: c.data == b"theirs"))
        self.assertEqual([c.data for _, c in self.changes.items], [b"theirs"])

    def test_over_max_bytes_is_reported_by_size_not_truncated(self):
        from tagio.session.clipboard import open_clipboard
        self.board.close()      # xclip serves one INCR transfer at a time: one reader only here
        small = open_clipboard(self.xvfb.display, max_bytes=1000)
        self.addCleanup(small.close)
        changes = Changes()
        small.watch(changes)
        for size in (5000, 1_500_000):      # one property, and INCR (xclip's above ~1 MB)
            with self.subTest(size=size):
                self.xclip_in(b"z" * size)
                heard = changes.wait(lambda c, n=size: c.size >= n)
                self.assertTrue(heard, f"{size} bytes not reported")
                self.assertIsNone(heard[0][1].data)
        self.assertIsNone(small.read())

    def test_reading_our_own_value(self):
        big = "ünïcode ".encode() * 20_000          # ~200 KB: more than one chunk
        self.board.write(CLIP_TEXT, big)
        self.assertEqual(self.paste_until(big), big)
        self.assertEqual(self.board.read(), (CLIP_TEXT, big))
        image = png_bytes()
        self.board.write(CLIP_PNG, image)
        self.assertEqual(self.paste_until(image, "image/png"), image)
        self.assertEqual(self.board.read(), (CLIP_PNG, image))

    def test_close_ends_the_thread(self):
        from tagio.session.clipboard import open_clipboard
        other = open_clipboard(self.xvfb.display)
        other.write(CLIP_TEXT, b"short-lived")
        self.assertEqual(self.paste_until(b"short-lived"), b"short-lived")
        other.close()
        self.assertFalse(other._thread.is_alive())

    def test_a_clipboard_manager_keeps_our_value_after_close(self):
        from tagio.session.clipboard import open_clipboard
        keeper = open_clipboard(self.xvfb.display)
        self.addCleanup(keeper.close)
        manager = FakeClipboardManager(self.xvfb.display, keeper)
        self.addCleanup(manager.close)
        ours = open_clipboard(self.xvfb.display)
        kept = "kept after the session ✓".encode()
        ours.write(CLIP_TEXT, kept)
        self.assertEqual(self.paste_until(kept), kept)
        ours.close()
        self.assertEqual(manager.saved, [(CLIP_TEXT, kept)])
        self.assertEqual(self.paste_until(kept), kept)

    def test_without_xfixes_a_new_owner_is_found_by_polling(self):
        from Xlib import display as xdisplay
        from tagio.session.clipboard_x11 import X11Clipboard
        self.xclip_in(b"there before")
        polling = X11Clipboard(xdisplay.Display(self.xvfb.display), None)     # as on a server without XFixes
        self.addCleanup(polling.close)
        self.assertFalse(polling.notifies)
        changes = Changes()
        polling.watch(changes)
        self.xclip_in(b"seen by polling")
        self.assertTrue(changes.wait(lambda c: c.data == b"seen by polling"))
        self.assertEqual([c.data for _, c in changes.items], [b"seen by polling"])

    def test_no_display_means_no_clipboard(self):
        from tagio.session import clipboard
        saved = os.environ.pop("DISPLAY", None)
        try:
            self.assertIsNone(clipboard.open_clipboard())
            self.assertIsNone(clipboard.open_clipboard(":9999"))        # no server there
        finally:
            if saved is not None:
                os.environ["DISPLAY"] = saved


if __name__ == "__main__":
    unittest.main()
