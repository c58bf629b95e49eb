"""tagio/session/motion.py: scroll and move detection on synthetic frame pairs (BGRX bytes as mss gives)."""

import random
import unittest

from PIL import Image, ImageDraw

from tagio.session import motion

LAYER = "unit"


def bgrx(img):
    return img.convert("RGB").tobytes("raw", "BGRX")


def text_page(width, lines, seed=1):
    """A white page of `lines` lines of varied text, 16 px per line."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (width, lines * 16), "white")
    draw = ImageDraw.Draw(img)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    for n in range(lines):
        draw.text((4, n * 16 + 2), f"{n:05d} " + " ".join(rnd.choice(words) for _ in range(10)), fill="black")
    return img


def rebuild(prev, cur, width, result):
    """What a viewer holding `prev` shows after the copies and the strips (taken from `cur`)."""
    stride = width * 4
    old, out = bytes(prev), bytearray(prev)
    for c in result.copies:
        for r in range(c.h):
            src = (c.src_y + r) * stride + c.src_x * 4
            dst = (c.y + r) * stride + c.x * 4
            out[dst:dst + c.w * 4] = old[src:src + c.w * 4]
    for x, y, w, h in result.strips:
        for r in range(y, y + h):
            out[r * stride + x * 4:r * stride + (x + w) * 4] = cur[r * stride + x * 4:r * stride + (x + w) * 4]
    return bytes(out)


class ScrollTest(unittest.TestCase):
    W, H = 320, 240

    def scrolled(self, by):
        page = text_page(self.W, 40)
        return bgrx(page.crop((0, 0, self.W, self.H))), bgrx(page.crop((0, by, self.W, self.H + by)))

    def test_scrolled_text_is_one_copy_plus_the_new_rows(self):
        prev, cur = self.scrolled(48)                  # three lines up
        result = motion.detect(prev, cur, self.W, self.H, (0, 0, self.W, self.H))
        self.assertEqual(len(result.copies), 1)
        copy = result.copies[0]
        self.assertEqual((copy.src_x, copy.x, copy.w), (0, 0, self.W))
        self.assertEqual(copy.src_y - copy.y, 48)
        self.assertGreaterEqual(copy.h, self.H - 48 - 16)
        self.assertLessEqual(sum(h for _x, _y, _w, h in result.strips), 48 + 16)   # the new lines, about
        self.assertEqual(rebuild(prev, cur, self.W, result), cur)

    def test_scroll_down_inside_a_region(self):
        page = text_page(self.W, 40, seed=3)
        screen = Image.new("RGB", (self.W, self.H), (30, 60, 90))
        prev_img, cur_img = screen.copy(), screen.copy()
        prev_img.paste(page.crop((0, 64, 200, 224)), (60, 40))
        cur_img.paste(page.crop((0, 32, 200, 192)), (60, 40))            # scrolled down by 32
        prev, cur = bgrx(prev_img), bgrx(cur_img)
        region = (60, 40, 200, 160)
        result = motion.detect(prev, cur, self.W, self.H, region)
        self.assertTrue(result.copies)
        self.assertTrue(all(c.y - c.src_y == 32 for c in result.copies))
        self.assertTrue(all(c.x == 60 and c.w == 200 for c in result.copies))
        self.assertEqual(rebuild(prev, cur, self.W, result), cur)

    def test_hashes_chain_from_one_call_to_the_next(self):
        prev, cur = self.scrolled(16)
        region = (0, 0, self.W, self.H)
        first = motion.detect(prev, cur, self.W, self.H, region)
        self.assertEqual(first.hashes, motion.row_hashes(cur, self.W, region))
        again = motion.detect(prev, cur, self.W, self.H, region, old_hashes=motion.row_hashes(prev, self.W, region))
        self.assertEqual(again.copies, first.copies)


class MovedWindowTest(unittest.TestCase):
    W, H = 400, 300

    def test_window_dragged_down(self):
        rnd = random.Random(5)
        window = Image.frombytes("RGB", (200, 150), bytes(rnd.randrange(256) for _ in range(200 * 150 * 3)))
        prev_img = Image.new("RGB", (self.W, self.H), (200, 200, 200))
        cur_img = prev_img.copy()
        prev_img.paste(window, (100, 50))
        cur_img.paste(window, (100, 90))
        prev, cur = bgrx(prev_img), bgrx(cur_img)
        region = (100, 50, 200, 190)        # the union of old and new place
        result = motion.detect(prev, cur, self.W, self.H, region)
        self.assertEqual(result.copies, [motion.Copy(100, 50, 100, 90, 200, 150)])
        self.assertEqual(result.strips, [(100, 50, 200, 40)])          # the uncovered background
        self.assertEqual(rebuild(prev, cur, self.W, result), cur)


class WorthSearching(unittest.TestCase):
    def test_only_tall_and_large_changes_are_searched(self):
        self.assertTrue(motion.pays(motion.MIN_HEIGHT, motion.MIN_AREA))
        self.assertFalse(motion.pays(motion.MIN_HEIGHT - 1, 10 * motion.MIN_AREA))     # a wide strip
        self.assertFalse(motion.pays(192, 256 * 192))       # a small animation: pixels are cheaper


class NoMotionTest(unittest.TestCase):
    W, H = 256, 128

    def test_changed_box_without_motion_is_only_strips(self):
        base = text_page(self.W, 8)
        prev_img, cur_img = base.copy(), base.copy()
        ImageDraw.Draw(cur_img).rectangle((20, 30, 120, 70), fill=(255, 0, 0))
        prev, cur = bgrx(prev_img), bgrx(cur_img)
        result = motion.detect(prev, cur, self.W, self.H, (0, 0, self.W, self.H))
        self.assertEqual(result.copies, [])
        self.assertEqual(result.strips, [(0, 30, self.W, 41)])        # only the rows that changed
        self.assertEqual(rebuild(prev, cur, self.W, result), cur)

    def test_noise_has_no_copies(self):
        rnd = random.Random(9)
        prev = bytes(rnd.randrange(256) for _ in range(self.W * self.H * 4))
        cur = bytes(rnd.randrange(256) for _ in range(self.W * self.H * 4))
        result = motion.detect(prev, cur, self.W, self.H, (0, 0, self.W, self.H))
        self.assertEqual(result.copies, [])
        self.assertEqual(result.strips, [(0, 0, self.W, self.H)])

    def test_lying_hashes_never_make_a_copy(self):
        # Hashes that claim every previous row equals the current one: the bytes decide.
        rnd = random.Random(11)
        prev = bytes(rnd.randrange(256) for _ in range(self.W * self.H * 4))
        cur = bytes(rnd.randrange(256) for _ in range(self.W * self.H * 4))
        region = (0, 0, self.W, self.H)
        result = motion.detect(prev, cur, self.W, self.H, region, old_hashes=motion.row_hashes(cur, self.W, region))
        self.assertEqual(result.copies, [])
        self.assertEqual(rebuild(prev, cur, self.W, result), cur)

    def test_first_frame_is_the_whole_region(self):
        cur = bytes(self.W * self.H * 4)
        result = motion.detect(None, cur, self.W, self.H, (0, 0, self.W, self.H))
        self.assertEqual((result.copies, result.strips), ([], [(0, 0, self.W, self.H)]))

    def test_blank_rows_alone_do_not_vote(self):
        # A white page that turned white elsewhere: blank rows match at every shift, none is chosen.
        prev_img = Image.new("RGB", (self.W, self.H), "white")
        cur_img = prev_img.copy()
        ImageDraw.Draw(prev_img).rectangle((0, 0, self.W, 20), fill="black")
        prev, cur = bgrx(prev_img), bgrx(cur_img)
        result = motion.detect(prev, cur, self.W, self.H, (0, 0, self.W, self.H))
        self.assertEqual(result.copies, [])
        self.assertEqual(rebuild(prev, cur, self.W, result), cur)


class SearchGateTest(unittest.TestCase):
    """The scroll search pauses while it keeps finding nothing, and opens again on a hit."""

    def setUp(self):
        self.now = 100.0
        self.gate = motion.SearchGate(lambda: self.now)

    def test_misses_pause_the_search_longer_each_time_up_to_the_cap(self):
        for _ in range(motion.MISSES_FREE):          # the first misses cost nothing
            self.assertTrue(self.gate.open())
            self.gate.found(False)
        self.assertTrue(self.gate.open())
        pauses = []
        for _ in range(12):
            self.gate.found(False)
            start = self.now
            self.assertFalse(self.gate.open())
            while not self.gate.open():
                self.now += 0.001
            pauses.append(round(self.now - start, 3))
        self.assertAlmostEqual(pauses[0], motion.FIRST_PAUSE, delta=0.0015)
        self.assertAlmostEqual(pauses[1], 2 * motion.FIRST_PAUSE, delta=0.0015)
        self.assertAlmostEqual(pauses[-1], motion.MAX_PAUSE, delta=0.0015)
        self.assertTrue(all(a <= b for a, b in zip(pauses, pauses[1:])))

    def test_a_hit_opens_the_gate_for_good(self):
        for _ in range(motion.MISSES_FREE + 5):
            self.gate.found(False)
        self.now += motion.MAX_PAUSE
        self.assertTrue(self.gate.open())
        self.gate.found(True)
        self.assertTrue(self.gate.open())
        for _ in range(motion.MISSES_FREE):         # after a hit the free misses count afresh
            self.gate.found(False)
            self.assertTrue(self.gate.open())

    def test_endless_misses_keep_the_cap(self):
        for _ in range(5000):
            self.gate.found(False)
        self.assertFalse(self.gate.open())
        self.now += motion.MAX_PAUSE
        self.assertTrue(self.gate.open())


if __name__ == "__main__":
    unittest.main()
