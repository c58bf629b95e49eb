"""Tile change detection, rectangle merging and per-rectangle encoding (pure logic)."""

import io
import random
import struct
import unittest
import zlib

from PIL import Image, ImageDraw

from tagio.protocol import session as m
from tagio.session import tiles as t

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


def blank(width, height, value=0):
    return bytearray(bytes([value]) * (width * height * 4))


def paint(buf, width, x, y, w, h, value):
    for row in range(y, y + h):
        start = (row * width + x) * 4
        buf[start:start + w * 4] = bytes([value]) * (w * 4)


def _chunk(png, kind):
    """The data of the first chunk of `kind` in the PNG bytes `png` (its CRC checked)."""
    pos = 8
    while pos < len(png):
        size, = struct.unpack(">I", png[pos:pos + 4])
        data = png[pos + 8:pos + 8 + size]
        crc, = struct.unpack(">I", png[pos + 8 + size:pos + 12 + size])
        if png[pos + 4:pos + 8] == kind:
            assert crc == zlib.crc32(kind + data)
            return data
        pos += 12 + size
    raise AssertionError(f"no {kind} chunk")


class ChangedTiles(unittest.TestCase):
    W, H = 300, 200      # not multiples of 64: edge tiles are partial

    def test_identical_frames_have_no_changes(self):
        a = blank(self.W, self.H, 7)
        self.assertEqual(t.changed_tiles(a, bytearray(a), self.W, self.H), set())

    def test_first_frame_is_all_tiles(self):
        tiles = t.changed_tiles(None, blank(self.W, self.H), self.W, self.H)
        self.assertEqual(len(tiles), 5 * 4)

    def test_finds_exactly_the_touched_tiles(self):
        rng = random.Random(1)
        for _ in range(40):
            a = blank(self.W, self.H)
            b = bytearray(a)
            x, y = rng.randrange(self.W), rng.randrange(self.H)
            w, h = rng.randint(1, self.W - x), rng.randint(1, self.H - y)
            paint(b, self.W, x, y, w, h, 200)
            expected = {(c, r) for c in range(x // 64, (x + w - 1) // 64 + 1)
                        for r in range(y // 64, (y + h - 1) // 64 + 1)}
            self.assertEqual(t.changed_tiles(a, b, self.W, self.H), expected)

    def test_several_changes_in_one_band(self):
        rng = random.Random(7)
        for _ in range(40):
            a = blank(self.W, self.H)
            b = bytearray(a)
            expected = set()
            for _ in range(rng.randint(2, 6)):
                x, y = rng.randrange(self.W), rng.randrange(self.H)
                w, h = rng.randint(1, min(40, self.W - x)), rng.randint(1, min(40, self.H - y))
                paint(b, self.W, x, y, w, h, rng.randint(1, 255))
                expected |= {(c, r) for c in range(x // 64, (x + w - 1) // 64 + 1)
                             for r in range(y // 64, (y + h - 1) // 64 + 1)}
            self.assertEqual(t.changed_tiles(a, b, self.W, self.H), expected)

    def test_single_pixel_in_last_partial_tile(self):
        a = blank(self.W, self.H)
        b = bytearray(a)
        paint(b, self.W, self.W - 1, self.H - 1, 1, 1, 1)
        self.assertEqual(t.changed_tiles(a, b, self.W, self.H), {(4, 3)})


class MergeTiles(unittest.TestCase):
    def covered(self, rects):
        out = set()
        for x, y, w, h in rects:
            out |= t.rect_tiles(x, y, w, h)
        return out

    def test_block_becomes_one_rectangle(self):
        tiles = {(c, r) for c in range(2, 5) for r in range(1, 4)}
        self.assertEqual(t.merge_tiles(tiles, 1000, 1000), [(128, 64, 192, 192)])
        self.assertEqual(t.merge_tiles(set(), 1000, 1000), [])        # (no tiles: asked at every frame)

    def test_union_is_preserved_and_clipped(self):
        rng = random.Random(2)
        for _ in range(50):
            tiles = {(rng.randrange(8), rng.randrange(6)) for _ in range(rng.randint(1, 30))}
            rects = t.merge_tiles(tiles, 500, 370)
            self.assertEqual(self.covered(rects), tiles)
            self.assertEqual(sum(len(t.rect_tiles(*r)) for r in rects), len(tiles), "rectangles overlap")
            for x, y, w, h in rects:
                self.assertLessEqual(x + w, 500)
                self.assertLessEqual(y + h, 370)

    def test_full_screen_is_one_rectangle(self):
        cols, rows = t.tile_grid(1920, 1080)
        tiles = {(c, r) for c in range(cols) for r in range(rows)}
        self.assertEqual(t.merge_tiles(tiles, 1920, 1080), [(0, 0, 1920, 1080)])


class EncodeRect(unittest.TestCase):
    def test_solid_colour_is_a_fill(self):
        enc, data = t.encode_rect(Image.new("RGB", (64, 64), (10, 20, 30)), 75)
        self.assertEqual((enc, data), (m.ENC_FILL, bytes([10, 20, 30])))

    def test_text_like_content_is_lossless(self):
        img = Image.new("RGB", (200, 64), "white")
        ImageDraw.Draw(img).text((5, 5), "Hello TagIO 123", fill="black")
        enc, data = t.encode_rect(img, 75)
        self.assertEqual(enc, m.ENC_PNG)
        self.assertEqual(list(Image.open(io.BytesIO(data)).convert("RGB").getdata()), list(img.getdata()))

    def test_photo_like_content_is_jpeg(self):
        rng = random.Random(3)
        img = Image.frombytes("RGB", (128, 128), bytes(rng.randrange(256) for _ in range(128 * 128 * 3)))
        enc, data = t.encode_rect(img, 50)
        self.assertEqual(enc, m.ENC_JPEG)
        self.assertEqual(Image.open(io.BytesIO(data)).size, (128, 128))
        self.assertEqual(t.encode_rect(img, 50, lossless=True)[0], m.ENC_PNG)

    def test_big_region_is_split_to_fit_a_message(self):
        rng = random.Random(5)
        img = Image.frombytes("RGB", (256, 256), bytes(rng.randrange(256) for _ in range(256 * 256 * 3)))
        saved = t.MAX_RECT_DATA
        t.MAX_RECT_DATA = 40_000
        try:
            parts = t.encode_region(img, 0, 0, 75, lossless=True)
        finally:
            t.MAX_RECT_DATA = saved
        self.assertGreater(len(parts), 1)
        self.assertEqual(sum(p[3] for p in parts), 256)
        self.assertTrue(all(len(p[5]) <= 40_000 for p in parts))


class ContentChecks(unittest.TestCase):
    def test_large_images_are_probed_on_a_strip_first(self):
        size = (400, 200)                               # above PROBE_PIXELS
        self.assertGreater(size[0] * size[1], t.PROBE_PIXELS)
        flat = Image.new("RGB", size, (1, 2, 3))
        self.assertEqual(t.single_colour(flat), b"\x01\x02\x03")
        below = flat.copy()
        below.putpixel((150, 199), (1, 2, 4))           # the first row is uniform, a later one is not
        self.assertIsNone(t.single_colour(below))
        self.assertTrue(t.few_colours(below))
        self.assertEqual(t.encode_rect(below, 75)[0], m.ENC_PNG)
        rng = random.Random(3)
        photo = Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))
        self.assertIsNone(t.single_colour(photo))
        self.assertFalse(t.few_colours(photo))
        late = flat.copy()                              # many colours, but only below the top strip
        for i in range(300):
            late.putpixel((i, 50), (i % 256, i // 256, 7))
        self.assertFalse(t.few_colours(late))
        self.assertEqual(t.encode_rect(late, 75)[0], m.ENC_JPEG)
        self.assertTrue(t.few_colours(late.crop((0, 0, 400, 40))))

    def test_small_images_take_one_count(self):
        self.assertEqual(t.encode_rect(Image.new("RGB", (64, 64), (9, 8, 7)), 75), (m.ENC_FILL, b"\t\x08\x07"))
        two = Image.new("RGB", (64, 64), (9, 8, 7))
        two.putpixel((63, 63), (0, 0, 0))
        self.assertEqual(t.encode_rect(two, 75)[0], m.ENC_PNG)


class RegionImage(unittest.TestCase):
    def test_matches_a_full_conversion(self):
        rng = random.Random(6)
        raw = bytearray(rng.randrange(256) for _ in range(130 * 70 * 4))
        full = Image.frombytes("RGB", (130, 70), bytes(raw), "raw", "BGRX")
        for box in ((0, 0, 130, 70), (64, 5, 66, 64), (3, 60, 10, 10)):
            x, y, w, h = box
            self.assertEqual(t.region_image(raw, 130, *box).tobytes(),
                             full.crop((x, y, x + w, y + h)).tobytes())

    def test_a_grab_encodes_as_its_region_image_does(self):
        rng = random.Random(7)
        width, height = 400, 300
        img = Image.new("RGB", (width, height), (58, 110, 165))
        ImageDraw.Draw(img).text((130, 10), "1234", fill="white")
        noise = bytes(rng.randrange(256) for _ in range(width * 150 * 3))
        img.paste(Image.frombytes("RGB", (width, 150), noise), (0, 150))
        raw = img.tobytes("raw", "BGRX")
        origin, kinds = (100, 50), []   # where the grab's first pixel is on the screen
        for rect in ((100, 50, 30, 20), (200, 50, 80, 40), (150, 220, 60, 40), (100, 50, 400, 300)):
            x, y, w, h = rect       # one colour, text, a photo, a large picture (probed on strips)
            region = t.region_image(raw, width, x - origin[0], y - origin[1], w, h)
            want = t.encode_region(region, x, y, 75)
            self.assertEqual(t.encode_grab(raw, width, origin, rect, 75), want)
            kinds.append(want[0][4])
        self.assertEqual(kinds, [m.ENC_FILL, m.ENC_PNG, m.ENC_JPEG, m.ENC_JPEG])


class PlainPng(unittest.TestCase):
    def test_decodes_to_the_same_pixels_at_any_size(self):
        rng = random.Random(8)
        for w, h in ((1, 1), (3, 7), (53, 52), (200, 64)):
            img = Image.new("RGB", (w, h), (58, 110, 165))
            draw = ImageDraw.Draw(img)
            draw.text((1, 1), "42", fill="white")
            draw.point([(rng.randrange(w), rng.randrange(h)) for _ in range(5)], fill=(255, 128, 0))
            data = t.plain_png(img)
            decoded = Image.open(io.BytesIO(data))
            decoded.load()                          # a broken chunk or CRC raises here
            self.assertEqual((decoded.mode, decoded.size), ("RGB", (w, h)))
            self.assertEqual(decoded.tobytes(), img.tobytes())

    def test_random_pixels_round_trip_with_no_row_filter(self):
        rng = random.Random(21)
        for w, h in ((1, 1), (1, 9), (2, 1), (5, 3), (63, 2), (64, 64), (65, 17), (127, 5), (333, 4)):
            img = Image.frombytes("RGB", (w, h), bytes(rng.randrange(256) for _ in range(w * h * 3)))
            data = t.plain_png(img)
            decoded = Image.open(io.BytesIO(data))
            decoded.load()
            self.assertEqual((decoded.mode, decoded.size, decoded.tobytes()), ("RGB", (w, h), img.tobytes()))
            scanlines = zlib.decompress(_chunk(data, b"IDAT"))
            self.assertEqual(len(scanlines), (w * 3 + 1) * h)
            self.assertEqual(scanlines[::w * 3 + 1], bytes(h), (w, h))    # filter byte 0 on each row

    def test_few_colours_take_it_and_photo_refreshes_keep_pillows_filters(self):
        img = Image.new("RGB", (64, 32), "white")
        ImageDraw.Draw(img).text((2, 2), "ok", fill="black")
        self.assertEqual(t.encode_rect(img, 75), (m.ENC_PNG, t.plain_png(img)))
        opened = Image.open(io.BytesIO(t.plain_png(img)))      # a file's pixels, not loaded yet
        self.assertEqual(t.encode_rect(opened, 75), (m.ENC_PNG, t.plain_png(img)))
        rng = random.Random(9)
        photo = Image.frombytes("RGB", (64, 64), bytes(rng.randrange(256) for _ in range(64 * 64 * 3)))
        enc, data = t.encode_rect(photo, 75, lossless=True)
        self.assertEqual(enc, m.ENC_PNG)
        self.assertNotEqual(data, t.plain_png(photo))
        self.assertEqual(Image.open(io.BytesIO(data)).tobytes(), photo.tobytes())


class DamageBoxes(unittest.TestCase):
    def test_each_merged_tile_run_shrinks_to_the_damage_inside(self):
        # two changes far apart, one small one inside a tile, one across a tile border
        boxes = t.damage_boxes([(881, 508, 53, 52), (10, 10, 5, 5)], 1920, 1080)
        self.assertEqual(sorted(boxes), [(10, 10, 5, 5), (881, 508, 53, 52)])

    def test_one_rectangle_is_its_own_box_on_the_screen(self):
        self.assertEqual(t.damage_boxes([(250, 150, 100, 100)], 300, 200), [(250, 150, 50, 50)])
        self.assertEqual(t.damage_boxes([(400, 10, 5, 5)], 300, 200), [])

    def test_damage_in_one_run_of_tiles_is_one_box_and_clipped_to_the_screen(self):
        boxes = t.damage_boxes([(70, 10, 10, 10), (130, 40, 20, 5), (280, 190, 100, 100)], 300, 200)
        self.assertEqual(sorted(boxes), [(70, 10, 80, 35), (280, 190, 20, 10)])

    def test_very_many_rectangles_take_whole_tiles(self):
        rects = [(x, 0, 1, 1) for x in range(0, 1920, 2)]
        self.assertEqual(t.damage_boxes(rects, 1920, 1080), [(0, 0, 1919, 1)])    # fitted
        many = rects * 8
        self.assertGreater(len(many), t.MAX_BOX_WORK)
        self.assertEqual(t.damage_boxes(many, 1920, 1080), [(0, 0, 1920, 64)])

    def test_clip_and_covered_tiles(self):
        self.assertEqual(t.clip_rect((10, 10, 100, 100), (50, 0, 20, 30)), (50, 10, 20, 20))
        self.assertIsNone(t.clip_rect((0, 0, 10, 10), (10, 0, 5, 5)))
        self.assertEqual(t.covered_tiles(0, 0, 128, 64), {(0, 0), (1, 0)})
        self.assertEqual(t.covered_tiles(10, 0, 128, 64), {(1, 0)})
        self.assertEqual(t.covered_tiles(5, 5, 50, 50), set())
        # an edge tile cut by the screen counts as covered when the rectangle reaches that edge
        self.assertEqual(t.covered_tiles(256, 192, 44, 8, width=300, height=200), {(4, 3)})
        self.assertEqual(t.covered_tiles(256, 192, 44, 8), set())


class RecentChangesTest(unittest.TestCase):
    def test_tiles_stay_for_a_while_merged_then_are_forgotten(self):
        now = [10.0]
        hot = t.RecentChanges(keep=1.0, clock=lambda: now[0])
        self.assertEqual(hot.rects(300, 200), [])
        hot.changed({(1, 1), (2, 1)})
        now[0] = 10.5
        hot.changed({(4, 3)})
        self.assertEqual(sorted(hot.rects(300, 200)), [(64, 64, 128, 64), (256, 192, 44, 8)])
        now[0] = 11.2
        self.assertEqual(hot.rects(300, 200), [(256, 192, 44, 8)])
        hot.changed({(4, 3)})                               # changed again: kept on
        now[0] = 12.1
        self.assertEqual(hot.rects(300, 200), [(256, 192, 44, 8)])
        now[0] = 13.0
        self.assertEqual(hot.rects(300, 200), [])


    def test_rects_are_merged_again_only_when_a_tile_comes_or_goes(self):
        now = [0.0]
        hot = t.RecentChanges(keep=1.0, clock=lambda: now[0])
        hot.changed({(0, 0)})
        first = hot.rects(300, 200)
        for frame in range(1, 30):                          # the same tile, changing at 60 Hz
            now[0] = frame / 60
            hot.changed({(0, 0)})
            self.assertIs(hot.rects(300, 200), first)
        now[0] = 1.0
        hot.changed({(1, 0)})
        self.assertEqual(hot.rects(300, 200), [(0, 0, 128, 64)])
        self.assertEqual(set(hot.tiles()), {(0, 0), (1, 0)})
        now[0] = 1.5                                        # (0, 0) last changed at 29/60
        self.assertEqual(hot.rects(300, 200), [(64, 0, 64, 64)])
        self.assertEqual(set(hot.tiles()), {(1, 0)})


    def test_tiles_known_for_longer_come_only_when_asked_for(self):
        now = [0.0]
        hot = t.RecentChanges(keep=0.25, known=1.0, clock=lambda: now[0])
        hot.changed({(0, 0)})
        now[0] = 0.5
        hot.changed({(2, 0)})
        self.assertEqual(hot.rects(300, 200), [(128, 0, 64, 64)])
        self.assertEqual(sorted(hot.rects(300, 200, known=True)), [(0, 0, 64, 64), (128, 0, 64, 64)])
        self.assertEqual(hot.tiles(), {(0, 0), (2, 0)})
        now[0] = 0.8
        self.assertEqual(hot.rects(300, 200), [])
        hot.changed({(0, 0)})                               # back among the tiles of every frame
        self.assertEqual(hot.rects(300, 200), [(0, 0, 64, 64)])
        now[0] = 1.6
        self.assertEqual(hot.rects(300, 200, known=True), [(0, 0, 64, 64)])
        self.assertEqual(hot.tiles(), {(0, 0)})


class RectsTiles(unittest.TestCase):
    def test_rectangles_become_the_tiles_they_touch_clipped(self):
        tiles = t.rects_tiles([(60, 10, 10, 10), (-20, 190, 50, 100), (500, 0, 5, 5)], 300, 200)
        self.assertEqual(tiles, {(0, 0), (1, 0), (0, 2), (0, 3)})
        self.assertEqual(t.rects_tiles([(0, 0, 0, 10)], 300, 200), set())


class ScreenCopyTest(unittest.TestCase):
    W, H = 300, 200

    def test_rectangle_grabs_find_changes_and_keep_the_copy_current(self):
        screen = t.ScreenCopy(self.W, self.H)
        first = blank(self.W, self.H)
        self.assertEqual(len(screen.replace(first)), 5 * 4)
        now = blank(self.W, self.H)
        paint(now, self.W, 70, 65, 3, 2, 9)         # inside tile (1, 1)
        paint(now, self.W, 299, 199, 1, 1, 7)       # the last, partial tile (4, 3)
        for x, y, w, h, expected in ((64, 64, 128, 64, {(1, 1)}), (256, 192, 44, 8, {(4, 3)}),
                                     (0, 0, 64, 64, set())):
            grab = t.region_bytes(now, self.W, x, y, w, h)
            self.assertEqual(screen.update(x, y, w, h, grab), expected)
            self.assertEqual(screen.update(x, y, w, h, grab), set())     # now part of the copy
        self.assertEqual(bytes(screen.buf), bytes(now))
        self.assertEqual(bytes(first), bytes(blank(self.W, self.H)))    # the shared grab was not written

    def test_agrees_with_whole_screen_comparison(self):
        rng = random.Random(11)
        for _ in range(20):
            old = blank(self.W, self.H)
            screen = t.ScreenCopy(self.W, self.H)
            screen.replace(bytearray(old))
            new = bytearray(old)
            for _ in range(rng.randrange(1, 6)):      # several changes, some in one tile row
                paint(new, self.W, rng.randrange(self.W), rng.randrange(self.H), 1, 1, rng.randrange(1, 256))
            expected = t.changed_tiles(old, new, self.W, self.H)
            x, y, w, h = 64, 0, 192, 192               # a tile-aligned grab of part of the screen
            inside = {(c, r) for c, r in expected if 1 <= c <= 3 and r <= 2}
            self.assertEqual(screen.update(x, y, w, h, t.region_bytes(new, self.W, x, y, w, h)), inside)

    def test_grabs_that_are_not_tile_aligned(self):
        rng = random.Random(12)
        for _ in range(40):
            old = blank(self.W, self.H)
            screen = t.ScreenCopy(self.W, self.H)
            screen.replace(bytearray(old))
            new = bytearray(old)
            for _ in range(rng.randrange(1, 6)):
                paint(new, self.W, rng.randrange(self.W), rng.randrange(self.H), 1, 1, rng.randrange(1, 256))
            x, y = rng.randrange(self.W - 1), rng.randrange(self.H - 1)
            w, h = rng.randrange(1, self.W - x + 1), rng.randrange(1, self.H - y + 1)
            inside = bytearray(old)     # the changes inside the grab only
            for row in range(y, y + h):
                start = (row * self.W + x) * 4
                inside[start:start + w * 4] = new[start:start + w * 4]
            expected = t.changed_tiles(old, inside, self.W, self.H)
            self.assertEqual(screen.update(x, y, w, h, t.region_bytes(new, self.W, x, y, w, h)), expected,
                             (x, y, w, h))
            self.assertEqual(bytes(screen.buf), bytes(inside))

    def test_small_grabs_are_compared_per_tile_row(self):
        rng = random.Random(13)
        for _ in range(60):
            old = blank(self.W, self.H)
            screen = t.ScreenCopy(self.W, self.H)
            screen.replace(bytearray(old))
            x, y = rng.randrange(self.W - 1), rng.randrange(self.H - 1)
            w, h = rng.randrange(1, min(130, self.W - x) + 1), rng.randrange(1, min(120, self.H - y) + 1)
            new = bytearray(old)
            for _ in range(rng.randrange(0, 3)):
                paint(new, self.W, rng.randrange(x, x + w), rng.randrange(y, y + h), 1, 1, rng.randrange(1, 256))
            changed = [row for row in range(y, y + h)
                       if old[row * self.W * 4:(row + 1) * self.W * 4] != new[row * self.W * 4:(row + 1) * self.W * 4]]
            grab = t.region_bytes(new, self.W, x, y, w, h)
            if not changed:
                self.assertEqual(screen.update_small(x, y, w, h, grab), (set(), None))
                continue
            expected = {(c, r) for r in range(changed[0] // t.TILE, changed[-1] // t.TILE + 1)
                        for c in range(x // t.TILE, (x + w - 1) // t.TILE + 1)}
            self.assertEqual(screen.update_small(x, y, w, h, grab),
                             (expected, (changed[0] - y, changed[-1] - y + 1)), (x, y, w, h))
            self.assertEqual(bytes(screen.buf), bytes(new))
            self.assertEqual(screen.update_small(x, y, w, h, grab), (set(), None))

    def test_small_grabs_find_the_first_and_last_changed_row_anywhere(self):
        rng = random.Random(17)
        old = bytearray(rng.randrange(256) for _ in range(self.W * self.H * 4))
        x, y, w, h = 250, 100, 50, 60                       # reaches the right edge of the screen
        for rows in ([0], [59], [0, 59], [30], [29, 30, 31], [1, 58], list(range(60)), [7, 44]):
            screen = t.ScreenCopy(self.W, self.H)
            screen.replace(bytearray(old))
            new = bytearray(old)
            for row in rows:
                at = ((y + row) * self.W + x + rng.randrange(w)) * 4 + rng.randrange(4)
                new[at] ^= 0x5A
            grab = t.region_bytes(new, self.W, x, y, w, h)
            expected = {(c, r) for r in range((y + rows[0]) // t.TILE, (y + rows[-1]) // t.TILE + 1)
                        for c in (3, 4)}
            self.assertEqual(screen.update_small(x, y, w, h, grab), (expected, (rows[0], rows[-1] + 1)), rows)
            self.assertEqual(bytes(screen.buf), bytes(new))
            self.assertEqual(screen.update_small(x, y, w, h, grab), (set(), None))

    def test_update_rows_says_which_rows_changed(self):
        screen = t.ScreenCopy(self.W, self.H)
        screen.replace(blank(self.W, self.H))
        now = blank(self.W, self.H)
        paint(now, self.W, 70, 75, 3, 2, 9)         # rows 75, 76 of tile (1, 1)
        paint(now, self.W, 140, 130, 1, 1, 7)       # row 130 of tile (2, 2)
        grab = t.region_bytes(now, self.W, 64, 64, 128, 128)
        self.assertEqual(screen.update_rows(64, 64, 128, 128, grab), ({(1, 1), (2, 2)}, (11, 67)))
        self.assertEqual(screen.update_rows(64, 64, 128, 128, grab), (set(), None))
        self.assertEqual(bytes(screen.buf), bytes(now))

    def test_compare_is_in_place_and_symmetric_to_replace(self):
        screen = t.ScreenCopy(self.W, self.H)
        self.assertEqual(len(screen.compare(blank(self.W, self.H))), 5 * 4)    # no copy yet: all
        screen.replace(blank(self.W, self.H))
        now = blank(self.W, self.H)
        paint(now, self.W, 299, 199, 1, 1, 7)
        held = screen.buf
        self.assertEqual(screen.compare(memoryview(now)), {(4, 3)})
        self.assertIs(screen.buf, held)                 # compared only: the copy is unchanged
        self.assertEqual(screen.replace(now, {(4, 3)}), {(4, 3)})
        self.assertIs(screen.buf, now)

    def test_replace_compares_with_the_copy(self):
        screen = t.ScreenCopy(self.W, self.H)
        screen.replace(blank(self.W, self.H))
        screen.update(0, 0, 64, 64, bytes([5]) * (64 * 64 * 4))
        self.assertEqual(screen.replace(blank(self.W, self.H)), {(0, 0)})

    def test_update_before_a_whole_grab_is_refused(self):
        with self.assertRaises(ValueError):
            t.ScreenCopy(self.W, self.H).update(0, 0, 64, 64, bytes(64 * 64 * 4))

    def test_a_whole_grab_without_changes_keeps_the_private_copy(self):
        screen = t.ScreenCopy(self.W, self.H)
        screen.replace(blank(self.W, self.H))
        screen.update(0, 0, 64, 64, bytes([5]) * (64 * 64 * 4))     # the copy is private now
        private = screen.buf
        same = bytearray(private)
        self.assertEqual(screen.replace(same), set())
        self.assertIs(screen.buf, private)
        screen.update(64, 0, 64, 64, bytes([6]) * (64 * 64 * 4))
        self.assertIs(screen.buf, private)                          # written in place, no copy
        self.assertEqual((private[64 * 4], same[64 * 4]), (6, 0))   # the grab itself was not written
        changed = bytearray(private)
        changed[0] = 99
        self.assertEqual(screen.replace(changed), {(0, 0)})
        self.assertIs(screen.buf, changed)                          # a changed grab is taken

    def test_copy_on_write_reuses_a_spare_nobody_holds_and_never_one_in_use(self):
        screen = t.ScreenCopy(self.W, self.H)
        screen.replace(blank(self.W, self.H))
        screen.update_small(0, 0, 8, 8, bytes([1]) * (8 * 8 * 4))
        older = id(screen.buf)                      # no reference kept: nothing else holds it
        grab = blank(self.W, self.H)
        paint(grab, self.W, 0, 0, 8, 8, 1)
        paint(grab, self.W, 200, 150, 5, 5, 2)      # a changed whole grab: the copy becomes a spare
        self.assertEqual(screen.replace(grab), {(3, 2)})
        screen.update_small(100, 100, 4, 4, bytes([3]) * (4 * 4 * 4))
        self.assertEqual(id(screen.buf), older)     # the spare, brought up to date, not a new copy
        want = bytearray(grab)
        paint(want, self.W, 100, 100, 4, 4, 3)
        self.assertEqual(bytes(screen.buf), bytes(want))
        self.assertEqual(bytes(grab[100 * self.W * 4:101 * self.W * 4]), bytes(self.W * 4))  # grab untouched

        in_use = screen.buf                         # e.g. a queued frame's previous picture
        before = bytes(in_use)
        grab2 = bytearray(want)
        paint(grab2, self.W, 0, 190, 10, 10, 4)
        screen.replace(grab2)
        screen.update_small(50, 50, 2, 2, bytes([5]) * 16)
        self.assertIsNot(screen.buf, in_use)
        self.assertEqual(bytes(in_use), before)     # a buffer someone holds is never written

    def test_spares_keep_the_copy_exact_through_any_mix_of_grabs(self):
        rng = random.Random(23)
        screen, model, held = t.ScreenCopy(self.W, self.H), blank(self.W, self.H), []
        screen.replace(bytearray(model))
        for step in range(300):
            before = bytearray(model)
            if rng.random() < 0.15:                 # a whole grab, changed or not
                grab = bytearray(model)
                for _ in range(rng.randrange(3)):
                    paint(grab, self.W, rng.randrange(self.W), rng.randrange(self.H), 1, 1, rng.randrange(256))
                model = bytearray(grab)
                dirty = screen.replace(grab)
            else:                                   # a rectangle grab, small or not
                x, y = rng.randrange(self.W), rng.randrange(self.H)
                w, h = rng.randint(1, min(90, self.W - x)), rng.randint(1, min(90, self.H - y))
                for _ in range(rng.randrange(3)):
                    paint(model, self.W, rng.randrange(x, x + w), rng.randrange(y, y + h), 1, 1, rng.randrange(256))
                grab = t.region_bytes(model, self.W, x, y, w, h)
                dirty = (screen.update_small(x, y, w, h, grab)[0] if w * h <= t.COARSE_AREA and rng.random() < 0.5
                         else screen.update(x, y, w, h, grab))
            self.assertLessEqual(t.changed_tiles(before, model, self.W, self.H), dirty, step)
            self.assertEqual(bytes(screen.buf), bytes(model), step)
            if rng.random() < 0.3:                  # someone (a queued frame) holds the copy a while
                held.append(screen.buf)
            if held and rng.random() < 0.3:
                held.pop(0)

    def test_copy_tiles_writes_those_tiles_or_everything(self):
        rng = random.Random(29)
        src = bytes(rng.randrange(256) for _ in range(self.W * self.H * 4))
        for tiles in ({(0, 0)}, {(4, 3), (1, 2), (2, 2)}, {(c, r) for c in range(5) for r in range(4)} - {(0, 0)}):
            dst = blank(self.W, self.H)
            t._copy_tiles(dst, src, tiles, self.W, self.H, t.TILE)
            if len(tiles) > t.WHOLE_COPY * 20:
                self.assertEqual(bytes(dst), src)
                continue
            self.assertEqual(t.changed_tiles(dst, src, self.W, self.H), {(c, r) for c in range(5) for r in range(4)} - tiles)
            inside = bytearray(src)
            for row in range(self.H):       # outside the tiles dst stays blank
                for col in range(self.W):
                    if (col // t.TILE, row // t.TILE) not in tiles:
                        at = (row * self.W + col) * 4
                        inside[at:at + 4] = bytes(4)
            self.assertEqual(bytes(dst), bytes(inside))

    def test_region_is_a_private_copy(self):
        screen = t.ScreenCopy(self.W, self.H)
        raw = blank(self.W, self.H)
        paint(raw, self.W, 10, 20, 4, 3, 200)
        screen.replace(raw)
        data = screen.region(8, 20, 8, 3)
        self.assertEqual(data, (bytes(8) + bytes([200]) * 16 + bytes(8)) * 3)
        screen.update(0, 0, 64, 64, bytes(64 * 64 * 4))
        self.assertEqual(data[8:24], bytes([200]) * 16)


if __name__ == "__main__":
    unittest.main()
