"""ENC_COPY on the wire (golden vectors, bounds) and tagio/session/framebuffer.py applying it."""

import struct
import unittest

from PIL import Image

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol import session as m
from tagio.session import framebuffer

LAYER = "unit"

# Frame 9, FINAL, capture time 1.5, latency 20 ms: one copy of 100x50 from (0, 40) to (0, 8), then a
# fill of the new strip. Built by hand from the layout in docs (type, frame head, rect heads + data).
GOLDEN_FRAME = bytes.fromhex(
    "02" "00000009" "01" "3ff8000000000000" "0014" "0002"          # Frame head: id, flags, time, latency, 2 rects
    "0000" "0008" "0064" "0032" "03" "00000004" "0000" "0028"      # copy 100x50 at (0, 8) <- (0, 40)
    "0000" "003a" "0064" "0020" "00" "00000003" "ffffff"            # fill 100x32 at (0, 58), white
)


def gradient(width=100, height=100):
    """Each row a different grey, so any wrong row shows."""
    img = Image.new("RGB", (width, height))
    img.putdata([(y * 2 % 256, x % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    return img


class CopyWireTest(unittest.TestCase):
    def test_golden_frame_with_a_copy(self):
        frame = m.Frame(9, m.FINAL, 1.5, 20, [m.copy_rect(0, 40, 0, 8, 100, 50),
                                              m.Rect(0, 58, 100, 32, m.ENC_FILL, b"\xff\xff\xff")])
        self.assertEqual(m.encode(frame), GOLDEN_FRAME)
        decoded = m.decode(GOLDEN_FRAME)
        self.assertEqual(decoded, frame)
        self.assertEqual(m.copy_source(decoded.rects[0]), (0, 40))
        self.assertEqual(m.ENCODINGS[m.ENC_COPY], "copy")

    def test_copy_must_carry_four_bytes(self):
        for data in (b"", b"\x00\x01\x02", b"\x00" * 5):
            body = (b"\x02" + struct.pack("!IBdHH", 1, 1, 0.0, 0, 1)
                    + struct.pack("!HHHHBI", 0, 0, 4, 4, m.ENC_COPY, len(data)) + data)
            with self.assertRaises(RemoteProtocolError) as ctx:
                m.decode(body)
            self.assertIn("copy rectangle must carry 4 bytes", str(ctx.exception))

    def test_copy_source_out_of_range_is_our_error(self):
        with self.assertRaises(LocalProtocolError):
            m.copy_rect(-1, 0, 0, 0, 4, 4)
        with self.assertRaises(LocalProtocolError):
            m.copy_rect(0, 70000, 0, 0, 4, 4)


class ApplyCopiesTest(unittest.TestCase):
    def test_scroll_up_with_overlap(self):
        fb = gradient()
        before = fb.copy()
        pieces = framebuffer.apply_copies(fb, [m.copy_rect(0, 30, 0, 0, 100, 70)], 100, 100)
        self.assertEqual(fb.crop((0, 0, 100, 70)).tobytes(), before.crop((0, 30, 100, 100)).tobytes())
        self.assertEqual(fb.crop((0, 70, 100, 100)).tobytes(), before.crop((0, 70, 100, 100)).tobytes())
        self.assertEqual([(x, y, img.size) for x, y, img in pieces], [(0, 0, (100, 70))])

    def test_scroll_down_with_overlap(self):
        fb = gradient()
        before = fb.copy()
        framebuffer.apply_copies(fb, [m.copy_rect(10, 0, 10, 25, 80, 75)], 100, 100)
        self.assertEqual(fb.crop((10, 25, 90, 100)).tobytes(), before.crop((10, 0, 90, 75)).tobytes())
        self.assertEqual(fb.crop((0, 0, 100, 25)).tobytes(), before.crop((0, 0, 100, 25)).tobytes())

    def test_all_copies_read_the_screen_before_the_frame(self):
        fb = gradient()
        before = fb.copy()
        swap = [m.copy_rect(0, 0, 0, 50, 100, 50), m.copy_rect(0, 50, 0, 0, 100, 50)]
        framebuffer.apply_copies(fb, swap, 100, 100)
        self.assertEqual(fb.crop((0, 0, 100, 50)).tobytes(), before.crop((0, 50, 100, 100)).tobytes())
        self.assertEqual(fb.crop((0, 50, 100, 100)).tobytes(), before.crop((0, 0, 100, 50)).tobytes())

    def test_copy_leaving_the_screen_is_the_hosts_fault_and_changes_nothing(self):
        for rect in (m.copy_rect(0, 60, 0, 0, 100, 50), m.copy_rect(0, 0, 0, 60, 100, 50),
                     m.copy_rect(60, 0, 0, 0, 50, 10)):
            fb = gradient()
            before = fb.tobytes()
            with self.assertRaises(RemoteProtocolError):
                framebuffer.apply_copies(fb, [m.copy_rect(0, 10, 0, 0, 100, 10), rect], 100, 100)
            self.assertEqual(fb.tobytes(), before)

    def test_copies_of_one_message_are_bounded(self):
        fb = gradient()
        three = [m.copy_rect(0, 0, 0, 0, 100, 100)] * (framebuffer.MAX_COPY_AREA + 1)
        with self.assertRaises(RemoteProtocolError):
            framebuffer.apply_copies(fb, three, 100, 100)
        framebuffer.apply_copies(fb, three[:framebuffer.MAX_COPY_AREA], 100, 100)     # at the bound: fine

    def test_split_copies_keeps_order(self):
        rects = [m.Rect(0, 0, 1, 1, m.ENC_FILL, b"abc"), m.copy_rect(0, 1, 0, 0, 1, 1),
                 m.copy_rect(0, 2, 0, 1, 1, 1)]
        copies, others = framebuffer.split_copies(rects)
        self.assertEqual(copies, rects[1:])
        self.assertEqual(others, rects[:1])


if __name__ == "__main__":
    unittest.main()
