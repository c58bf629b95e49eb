"""Grabs through MIT-SHM (tagio.session.xshm): the same pixels as mss on a real Xvfb, the fallback
to mss without the extension, errors and a dying server, nothing left behind; the reply reader on a
socket pair; the pixel-format check (pure)."""

import mmap
import os
import socket
import struct
import types
import unittest

from tagio.errors import ConfigError
from tagio.session import xreply, xshm
from tagio.session.host_capture import HostCapture, grab
from tests.waiting import in_thread, wait_until
from tests.xvfb import Xvfb, skip_unless_xvfb

WIDTH, HEIGHT = 640, 480
BOXES = [(0, 0, 1, 1), (WIDTH - 1, HEIGHT - 1, 1, 1), (5, 7, 200, 100), (0, 0, WIDTH, HEIGHT),
         (WIDTH - 40, 0, 40, HEIGHT), (0, HEIGHT - 80, WIDTH, 80), (17, 33, 3, 5), (101, 0, 1, HEIGHT),
         (0, 211, WIDTH, 1), (63, 63, 130, 66), (WIDTH - 77, HEIGHT - 13, 77, 13)]


def box(x, y, w, h):
    return {"left": x, "top": y, "width": w, "height": h}


def draw(display, seed):
    """Fill the root window with rectangles whose colours follow `seed`: every box above sees
    several colours, and a new seed changes every pixel."""
    from Xlib import display as xdisplay
    conn = xdisplay.Display(display)
    try:
        root = conn.screen().root
        for i, x in enumerate(range(0, WIDTH, 23)):
            for j, y in enumerate(range(0, HEIGHT, 19)):
                colour = (seed * 0x10101 + i * 0x0B1D07 + j * 0x2F0513) & 0xFFFFFF
                gc = root.create_gc(foreground=colour)
                root.fill_rectangle(gc, x, y, 23, 19)
                gc.free()
        conn.sync()
    finally:
        conn.close()


def sysv_segments():
    with open("/proc/sysvipc/shm") as listing:
        return set(listing.read().splitlines()[1:])


def grab_mappings():
    with open("/proc/self/maps") as maps:
        return sum("tagio-grab" in line for line in maps)


class NoShmXvfb(Xvfb):
    """An Xvfb with the MIT-SHM extension disabled (as on a display without shared memory)."""

    def start(self):
        return self._launch(lambda fd: ["Xvfb", "-displayfd", str(fd), "-screen", "0",
                                        f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp",
                                        "-noreset", "-extension", "MIT-SHM"])


def host_grabber(display):
    """What the host's capture thread grabs with (HostCapture._grabber, no stand-in)."""
    return HostCapture._grabber(types.SimpleNamespace(_grabber_factory=None), {"display": display})


@skip_unless_xvfb
class ShmGrabOnXvfb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import mss
        cls.xvfb = Xvfb(width=WIDTH, height=HEIGHT).start()   # no Tk here: a private server is safe
        cls.sct = mss.MSS(display=cls.xvfb.display)
        draw(cls.xvfb.display, 1)

    @classmethod
    def tearDownClass(cls):
        cls.sct.close()
        cls.xvfb.stop()

    def open(self, size=WIDTH * HEIGHT * 4):
        shm = xshm.ShmGrab.open(self.xvfb.display, size)
        self.assertIsNotNone(shm, "MIT-SHM did not open on Xvfb")
        self.addCleanup(shm.close)
        return shm

    def assert_same_as_mss(self, shm, boxes=BOXES):
        for x, y, w, h in boxes:
            with self.subTest(box=(x, y, w, h)):
                raw = shm.grab(box(x, y, w, h))
                self.assertIsInstance(raw, bytes)
                self.assertEqual(len(raw), w * h * 4)
                self.assertEqual(raw, bytes(self.sct.grab(box(x, y, w, h)).raw))

    def test_grabs_are_the_pixels_mss_gives(self):
        self.assert_same_as_mss(self.open())

    def test_grabs_follow_the_screen_and_are_copies(self):
        shm = self.open()
        whole = box(0, 0, WIDTH, HEIGHT)
        before, reference = shm.grab(whole), bytes(self.sct.grab(whole).raw)
        try:
            draw(self.xvfb.display, 2)
            after = shm.grab(whole)
            self.assertNotEqual(after, before)
            self.assertEqual(before, reference)     # the first grab was not overwritten by the second
            self.assert_same_as_mss(shm)
        finally:
            draw(self.xvfb.display, 1)

    def test_a_peek_is_the_segment_itself_until_the_next_grab(self):
        shm = self.open()
        whole = box(0, 0, WIDTH, HEIGHT)
        try:
            seen = shm.peek(whole)
            self.assertIsInstance(seen, memoryview)
            self.assertEqual(bytes(seen), bytes(self.sct.grab(whole).raw))
            draw(self.xvfb.display, 2)
            fresh = shm.grab(whole)
            self.assertEqual(bytes(seen), fresh)        # overwritten in place: no copy was made
            shm.peek(box(0, 0, WIDTH, HEIGHT * 2 // 3))
            shm.reserve(WIDTH * HEIGHT * 8)             # a view still held: no BufferError ...
            self.assertEqual(bytes(shm.peek(whole)), fresh)
            del seen
            self.assertEqual(grab_mappings(), 1)        # ... and the old segment goes with it
        finally:
            draw(self.xvfb.display, 1)

    def test_a_larger_box_grows_the_segment(self):
        shm = self.open(size=4)
        self.assert_same_as_mss(shm, [(0, 0, 1, 1), (5, 7, 200, 100), (0, 0, WIDTH, HEIGHT)])
        self.assertEqual(shm._size, WIDTH * HEIGHT * 4)
        self.assertEqual(grab_mappings(), 1)        # the smaller segments were unmapped

    def test_the_host_grabs_through_it(self):
        sct = host_grabber(self.xvfb.display)
        with sct:
            self.assertIsInstance(sct._shm, xshm.ShmGrab)
            self.assertEqual(sct.monitors, self.sct.monitors)
            for x, y, w, h in BOXES:
                self.assertEqual(grab(sct, box(x, y, w, h)), bytes(self.sct.grab(box(x, y, w, h)).raw))

    def test_an_x_error_is_an_oserror_and_the_next_grab_works(self):
        shm = self.open()
        with self.assertRaises(OSError):
            shm.grab(box(WIDTH - 10, 0, 20, 10))    # reaches past the screen: BadMatch
        self.assert_same_as_mss(shm, [(5, 7, 200, 100)])

    def test_nothing_is_left_behind(self):
        segments, mappings, fds = sysv_segments(), grab_mappings(), len(os.listdir("/proc/self/fd"))
        shm = xshm.ShmGrab.open(self.xvfb.display, WIDTH * HEIGHT * 4)
        self.assertEqual(grab_mappings(), mappings + 1)
        shm.grab(box(0, 0, WIDTH, HEIGHT))
        self.assertEqual(sysv_segments(), segments)     # a memfd, never a SysV segment to leak
        shm.close()
        shm.close()                                     # twice is quiet
        self.assertEqual(grab_mappings(), mappings)
        self.assertEqual(len(os.listdir("/proc/self/fd")), fds)

    def test_no_display_means_no_grabber(self):
        self.assertIsNone(xshm.ShmGrab.open(":999999"))


@skip_unless_xvfb
class FallbackAndFailure(unittest.TestCase):
    def test_without_mit_shm_the_host_grabs_through_mss(self):
        import mss
        from unittest import mock
        from Xlib import protocol
        from Xlib.protocol import event
        # python-xlib keeps the event table of every connection in one class attribute: a server
        # whose extensions number their events differently (one fewer here) must get a table of its own
        mock.patch.object(protocol.display.Display, "event_classes", event.event_class.copy()).start()
        self.addCleanup(mock.patch.stopall)
        server = NoShmXvfb(width=WIDTH, height=HEIGHT).start()
        self.addCleanup(server.stop)
        draw(server.display, 3)
        from Xlib import display as xdisplay
        conn = xdisplay.Display(server.display)
        self.assertFalse(conn.query_extension(xshm.EXTENSION))    # the extension is really missing ...
        conn.close()
        self.assertIsNone(xshm.ShmGrab.open(server.display))     # ... and that is why this gives up
        with mss.MSS(display=server.display) as reference, host_grabber(server.display) as sct:
            self.assertIsNone(sct._shm)
            for x, y, w, h in BOXES:
                self.assertEqual(bytes(grab(sct, box(x, y, w, h))),
                                 bytes(reference.grab(box(x, y, w, h)).raw))

    def test_an_x_server_that_dies_mid_session_is_a_config_error(self):
        server = Xvfb(width=320, height=240).start()
        self.addCleanup(server.stop)
        sct = host_grabber(server.display)
        self.assertIsInstance(sct._shm, xshm.ShmGrab)
        grab(sct, box(0, 0, 320, 240))
        server.stop()

        def grabs(result):
            while True:         # the first grabs may still go out before the socket reads as closed
                grab(sct, box(0, 0, 320, 240))
        thread, result = in_thread(self, grabs)
        wait_until(lambda: not thread.is_alive(), timeout=10, what="the grab to fail")
        self.assertIsInstance(result.get("error"), ConfigError)
        self.assertIn("screen capture stopped", str(result["error"]))
        sct.close()             # closing after the server died is quiet


class ReplyReader(unittest.TestCase):
    """ShmGrab's reply reader on a socket pair standing in for the X server."""

    def setUp(self):
        self.ours, self.server = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.server.close)
        self.shm = xshm.ShmGrab(None, self.ours, 130, 0x1234)
        self.shm._seg, self.shm._map, self.shm._size = 7, mmap.mmap(-1, 64), 64
        self.shm._map[:8] = b"\x01\x02\x03\x00\x04\x05\x06\x00"
        self.addCleanup(self.shm._map.close)

    def reply(self, kind, extra=0, code=0):
        return struct.pack("=BBHI", kind, code, 1, extra) + bytes(24) + bytes(4 * extra)

    def test_one_request_and_the_pixels_after_events(self):
        mapping_notify = bytes([34]) + bytes(31)
        generic = self.reply(xreply.GENERIC_EVENT, extra=2)
        self.server.sendall(mapping_notify + generic + self.reply(xreply.REPLY))
        self.assertEqual(self.shm.grab(box(3, 4, 2, 1)), b"\x01\x02\x03\x00\x04\x05\x06\x00")
        request = self.server.recv(64)
        self.assertEqual(request, struct.pack("=BBHIhhHHIBxxxII", 130, xshm.SHM_GET_IMAGE, 8, 0x1234, 3, 4,
                                              2, 1, 0xFFFFFFFF, xshm.Z_PIXMAP, 7, 0))
        self.server.sendall(self.reply(xreply.REPLY))     # nothing left over from the events
        self.assertEqual(len(self.shm.grab(box(0, 0, 1, 1))), 4)

    def test_an_error_raises_and_a_closed_connection_too(self):
        self.server.sendall(self.reply(xreply.ERROR, code=8)[:32])
        with self.assertRaisesRegex(OSError, "X error 8"):
            self.shm.grab(box(0, 0, 1, 1))
        self.server.sendall(self.reply(xreply.REPLY)[:20])    # a reply cut short by the server's end
        self.server.shutdown(socket.SHUT_WR)
        with self.assertRaises(ConnectionResetError):
            self.shm.grab(box(0, 0, 1, 1))


class PixelFormat(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def setup(self, depth=24, order=xshm.LSB_FIRST, bpp=32, pad=32, masks=xshm.BGRX_MASKS):
        ns = types.SimpleNamespace
        visual = ns(visual_id=33, red_mask=masks[0], green_mask=masks[1], blue_mask=masks[2])
        info = ns(image_byte_order=order, pixmap_formats=[ns(depth=1, bits_per_pixel=1, scanline_pad=32),
                                                          ns(depth=depth, bits_per_pixel=bpp, scanline_pad=pad)])
        screen = ns(root_depth=depth, root_visual=33, allowed_depths=[ns(depth=depth, visuals=[visual])])
        return info, screen

    def test_only_bgrx_pixels_are_taken(self):
        self.assertTrue(xshm.bgrx(*self.setup()))
        self.assertTrue(xshm.bgrx(*self.setup(depth=32)))
        for odd in ({"depth": 16}, {"order": 1}, {"bpp": 24}, {"pad": 8},
                    {"masks": (0x0000FF, 0x00FF00, 0xFF0000)}):
            with self.subTest(odd=odd):
                self.assertFalse(xshm.bgrx(*self.setup(**odd)))


if __name__ == "__main__":
    unittest.main()
