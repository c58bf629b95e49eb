"""Change detection, rectangle merging and per-rectangle encoding (pure logic, no I/O).

Theory of operation (TigerVNC's ComparingUpdateTracker does the same): a captured frame is a BGRX
byte buffer. `changed_tiles` compares it with the previous one in 64-row bands first, then row by row
inside a changed band, and only for a changed row the 64-pixel segments of tiles not yet known to be
dirty. All comparisons are `bytes.startswith(memoryview, offset)`, i.e. memcmp without copies, so a
still 1080p screen costs ~0.2 ms and a small change ~1 ms of Python.

`merge_tiles` turns dirty tiles into few rectangles: runs of adjacent tiles in a tile row, then runs
with the same horizontal span in consecutive rows grow downwards. Encoding one merged rectangle is much
cheaper than many tile images (the issue measured 18 ms for 480 tile JPEGs against 4.6 ms for one).

`encode_rect` picks by content: one colour -> fill, few colours (text, UI) -> PNG (written here with
zlib, no row filters: `plain_png`), anything else -> JPEG at the adaptive quality. The usual change
of a frame (a counter, a caret: a few thousand pixels, 60 times a second) goes from the grab to
those bytes through a bare Pillow core (`encode_grab`): its C work is a few tens of microseconds, so
each Python call around it (Image accessors, wrappers) counts. Tiles last sent as
JPEG are remembered so the host can resend them losslessly once they stay still
(tagio.session.refresh).
"""

import functools
import io
import struct
import sys
import time
import zlib

from PIL import Image

from tagio.protocol.session import ENC_FILL, ENC_JPEG, ENC_PNG, MAX_RECT_DATA

TILE = 64
FEW_COLOURS = 256            # at or under this many colours a PNG beats JPEG (and is exact)
PNG_LEVEL = 1                # zlib level: speed matters more than the last few percent
PROBE_PIXELS = 65536         # larger images are probed on a strip first (content checks)
COARSE_AREA = 4 * TILE * TILE   # grabs up to this many pixels are compared per tile row, not per row
HOT_FOR = 0.25               # seconds a changed tile of a polled screen is grabbed at every frame ...
KNOWN_FOR = 1.0              # ... and then with each scan (a caret blinks every 0.5 s; an animation
                             # may come back to a tile)


def tile_grid(width, height, tile=TILE):
    """(columns, rows) of tiles covering width x height."""
    return (width + tile - 1) // tile, (height + tile - 1) // tile


def changed_tiles(prev, cur, width, height, tile=TILE):
    """Set of (col, row) tiles that differ between two BGRX buffers of the same geometry."""
    if prev is None or len(prev) != len(cur):
        cols, rows = tile_grid(width, height, tile)
        return {(c, r) for r in range(rows) for c in range(cols)}
    stride = width * 4
    old = memoryview(prev)
    dirty = set()
    for top in range(0, height, tile):
        bottom = min(top + tile, height)
        if not cur.startswith(old[top * stride:bottom * stride], top * stride):
            dirty.update(_band_tiles(old, cur, top, bottom, width, tile))
    return dirty


def _band_tiles(old, cur, top, bottom, width, tile):
    """Dirty tile columns of one band. A changed row is checked span by span: only the runs of
    columns not yet known dirty are compared, and only a differing run is split into tiles, so a
    small change costs ~2 compares per row instead of one per tile column."""
    stride, seg = width * 4, tile * 4
    cols = (width + tile - 1) // tile
    found, spans = set(), [(0, cols)]
    for y in range(top, bottom):
        start = y * stride
        if cur.startswith(old[start:start + stride], start):
            continue
        hits = [c for lo, hi in spans for c in _differing(old, cur, start, stride, seg, lo, hi)]
        if hits:
            found.update(hits)
            if len(found) == cols:
                break
            spans = _unfound_spans(found, cols)
    return {(c, top // tile) for c in found}


def _differing(old, cur, start, stride, seg, lo, hi):
    """Columns in [lo, hi) whose segment of this row differs (span first, then each column)."""
    a, b = start + lo * seg, min(start + hi * seg, start + stride)
    if cur.startswith(old[a:b], a):
        return []
    if hi - lo == 1:
        return [lo]
    return [c for c in range(lo, hi)
            if not cur.startswith(old[start + c * seg:min(start + (c + 1) * seg, start + stride)],
                                  start + c * seg)]


def _unfound_spans(found, cols):
    spans, lo = [], None
    for c in range(cols + 1):
        if c < cols and c not in found:
            lo = c if lo is None else lo
        elif lo is not None:
            spans.append((lo, c))
            lo = None
    return spans


def merge_tiles(tiles, width, height, tile=TILE):
    """Dirty tiles -> list of (x, y, w, h) pixel rectangles clipped to the screen."""
    if not tiles:       # the capture loop asks at every frame for the tiles due a lossless refresh
        return []
    runs_by_row = {}
    for c, r in sorted(tiles, key=lambda t: (t[1], t[0])):
        runs = runs_by_row.setdefault(r, [])
        if runs and runs[-1][1] == c:
            runs[-1][1] = c + 1
        else:
            runs.append([c, c + 1])
    open_rects, done = {}, []       # (c0, c1) -> [c0, r0, c1, r1]
    for r in sorted(runs_by_row):
        current = {}
        for c0, c1 in runs_by_row[r]:
            rect = open_rects.pop((c0, c1), None)
            if rect is not None and rect[3] == r:
                rect[3] = r + 1
            else:
                if rect is not None:
                    done.append(rect)
                rect = [c0, r, c1, r + 1]
            current[(c0, c1)] = rect
        done.extend(open_rects.values())
        open_rects = current
    done.extend(open_rects.values())
    return [_to_pixels(rect, width, height, tile) for rect in done]


def _to_pixels(rect, width, height, tile):
    c0, r0, c1, r1 = rect
    x, y = c0 * tile, r0 * tile
    return x, y, min(c1 * tile, width) - x, min(r1 * tile, height) - y


def rect_tiles(x, y, w, h, tile=TILE):
    """The tiles a tile-aligned rectangle covers."""
    return {(c, r) for r in range(y // tile, (y + h - 1) // tile + 1)
            for c in range(x // tile, (x + w - 1) // tile + 1)}


def encode_rect(img, quality, lossless=False):
    """A PIL RGB image -> (encoding, bytes): fill, PNG (few colours or lossless) or JPEG."""
    img.load()          # (an opened file's pixels; its core is read directly below)
    return _encode_rect(img, img.im, img.size, quality, lossless)


def _encode_rect(img, core, size, quality, lossless):
    """encode_rect of `img`, whose Pillow core and size the caller holds. A small picture (the
    usual change) is probed and written through the core: each Image accessor (size, im, load,
    mode...) is a Python call, and they were a good part of a small frame. `img` may be None for a
    picture of at most PROBE_PIXELS: an Image is then made from the core only for a photo."""
    colour, few = _content(img, core, size)
    if colour is not None:
        return ENC_FILL, colour
    if few:
        return ENC_PNG, _plain_png(core, size)
    if img is None:
        img = _BLANK._new(core)
    out = io.BytesIO()
    if lossless:        # a photo's lossless refresh: Pillow's adaptive row filters pay for themselves
        img.save(out, "PNG", compress_level=PNG_LEVEL)
        return ENC_PNG, out.getvalue()
    img.save(out, "JPEG", quality=quality)
    return ENC_JPEG, out.getvalue()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_IHDR = struct.Struct(">I4sIIBBBBB")        # a chunk's length and type, then the header's fields
_IDAT_HEAD = struct.Struct(">I4s")
_CRC = struct.Struct(">I")
_CRC_IDAT = zlib.crc32(b"IDAT")             # a chunk's CRC covers its type, then its data


def plain_png(img):
    """A PNG of an RGB image with no row filter, written here with zlib.

    Text and UI pieces (few colours) compress as well without PNG's row filters, and Pillow's
    writer costs ~200 us of Python per picture whatever its size: most of the encode time of a
    small change (a counter, a blinking cursor) sent 60 times a second. The scanlines come from
    one raw encode with a stride one byte longer than a row (_padded_rows)."""
    img.load()
    return _plain_png(img.im, img.size)


def _plain_png(core, size):
    """plain_png of a Pillow core `core` of `size`. Each chunk is written with a struct or two and
    one crc32, and the header chunk is cached per size (a small change keeps its size)."""
    scanlines = _FILTER_NONE + memoryview(_padded_rows(core, size))[:-1]
    data = zlib.compress(scanlines, PNG_LEVEL)
    return b"".join((_PNG_SIGNATURE, _ihdr_chunk(size), _IDAT_HEAD.pack(len(data), b"IDAT"), data,
                     _CRC.pack(zlib.crc32(data, _CRC_IDAT)), _PNG_END))


@functools.lru_cache(maxsize=64)
def _ihdr_chunk(size):
    """The IHDR chunk of an 8-bit RGB picture of `size`, no interlace, with its CRC."""
    head = _IHDR.pack(13, b"IHDR", *size, 8, 2, 0, 0, 0)
    return head + _CRC.pack(zlib.crc32(head[4:]))


def _padded_rows(core, size):
    """The RGB rows of the Pillow core `core` of `size`, each followed by a zero byte (Pillow's raw
    encoder zero-pads a row to its stride): after one more zero in front, that byte is the next
    row's PNG filter byte (0, none). Pillow's encoder is driven here directly: Image.tobytes()'s
    own Python (a 64 KB buffer, a loop, a join) costs more than its C work for a small picture."""
    w, h = size
    encoder = Image.core.raw_encoder("RGB", "RGB", w * 3 + 1)
    encoder.setimage(core, (0, 0, w, h))
    _consumed, status, data = encoder.encode((w * 3 + 1) * h)
    if status != _CODEC_END:
        raise RuntimeError(f"raw encoder stopped with status {status} on a {w}x{h} picture")
    return data


_CODEC_END = 1          # Pillow's ImagingCodecState: the whole picture went out
_FILTER_NONE = b"\x00"


def _content(img, core, size):
    """(the single colour or None, holds few colours?) of `img`, whose core and size the caller
    holds. A small image needs one getcolors() of its core (Image.getcolors adds load() and a mode
    check, a handful of Python calls); a large one is probed on a strip first (see single_colour and
    few_colours)."""
    if size[0] * size[1] > PROBE_PIXELS:
        colour = single_colour(img)
        return colour, colour is not None or few_colours(img)
    colours = core.getcolors(FEW_COLOURS)
    if colours is not None and len(colours) == 1:
        return bytes(colours[0][1]), True
    return None, colours is not None


def few_colours(img, limit=FEW_COLOURS):
    """True when `img` holds at most `limit` colours. getcolors() counts the whole picture even
    when it is far past the limit (~6 ms for a 1080p photo), so a strip of the top rows is asked
    first: a photo already fails there."""
    if img.width * img.height > PROBE_PIXELS and img.crop((0, 0, img.width, 8)).getcolors(limit) is None:
        return False
    return img.getcolors(limit) is not None


def single_colour(img):
    """The RGB bytes of the one colour `img` holds, or None. The first row is checked on its own
    first: a photo fails there at once, where getextrema() of a whole 1080p picture costs ~5 ms."""
    if img.width * img.height > PROBE_PIXELS and _mixed(img.crop((0, 0, img.width, 1)).getextrema()):
        return None
    extrema = img.getextrema()
    return None if _mixed(extrema) else bytes(lo for lo, _ in extrema)


def _mixed(extrema):
    return any(lo != hi for lo, hi in extrema)


def region_image(raw, width, x, y, w, h):
    """RGB image of one rectangle of a BGRX buffer; only its own pixels are read and converted."""
    return _BLANK._new(_region_core(raw, width, x, y, w, h))


def _region_core(raw, width, x, y, w, h):
    """region_image's pixels as a bare Pillow core (ImagingCore).

    The raw decoder steps over the other pixels of each row itself (its stride argument), so a
    narrow rectangle costs no per-row slices and no joined copy. The decoder is driven here
    directly on an uninitialised core (every pixel is written): Image.frombytes() would first
    clear the picture and run as much Python again as the conversion costs for a small one, and
    Image.new adds a size check and its own layers (a dozen Python calls per small frame)."""
    stride = width * 4
    start = y * stride + x * 4
    core = Image.core.new("RGB", (w, h))
    decoder = Image.core.raw_decoder("RGB", "BGRX", stride)
    decoder.setimage(core, (0, 0, w, h))
    consumed, status = decoder.decode(memoryview(raw)[start:start + (h - 1) * stride + w * 4])
    if consumed >= 0 or status != 0:    # as Image.frombytes checks: short or broken data
        raise ValueError(f"{w}x{h} at ({x}, {y}) is not inside a buffer {width} pixels wide")
    return core


_BLANK = Image.Image()      # what Image.new wraps a new core with: _new() takes its (empty) info


def encode_grab(raw, width, origin, rect, quality):
    """encode_region(region_image(...), x, y, quality) of the rectangle `rect` = (x, y, w, h) on
    the screen of a grab `raw` (BGRX, `width` pixels wide) whose first pixel is at `origin` on the
    screen. A small rectangle (at most PROBE_PIXELS: a JPEG or PNG of it is always far under
    MAX_RECT_DATA, so it is never split) is encoded from its bare Pillow core, and wrapped into an
    Image only if it is a photo: the usual change of a frame (a counter, a caret) costs no Image."""
    x, y, w, h = rect
    core = _region_core(raw, width, x - origin[0], y - origin[1], w, h)
    if w * h > PROBE_PIXELS:
        return encode_region(_BLANK._new(core), x, y, quality)
    enc, data = _encode_rect(None, core, (w, h), quality, False)
    return [(x, y, w, h, enc, data)]


def encode_region(img, x, y, quality, lossless=False):
    """Encode the rectangle image `img` placed at (x, y), split into horizontal halves until each
    part fits a message. Returns a list of (x, y, w, h, encoding, data)."""
    img.load()
    size = img.size
    enc, data = _encode_rect(img, img.im, size, quality, lossless)
    w, h = size
    if len(data) <= MAX_RECT_DATA or h < 2:
        return [(x, y, w, h, enc, data)]
    top = h // 2
    return (encode_region(img.crop((0, 0, w, top)), x, y, quality, lossless)
            + encode_region(img.crop((0, top, w, h)), x, y + top, quality, lossless))


def covered_tiles(x, y, w, h, tile=TILE, width=None, height=None):
    """The tiles a rectangle covers entirely (a tile cut by the screen's edge counts when the
    rectangle reaches that edge: pass width and height)."""
    right, bottom = x + w, y + h
    c0, r0 = (x + tile - 1) // tile, (y + tile - 1) // tile
    c1 = right // tile if width is None or right < width else (right + tile - 1) // tile
    r1 = bottom // tile if height is None or bottom < height else (bottom + tile - 1) // tile
    if c0 >= c1 or r0 >= r1:    # (a small change covers no tile whole: no set comprehension to run)
        return set()
    return {(c, r) for r in range(r0, r1) for c in range(c0, c1)}


def clip_rect(rect, box):
    """The part of rectangle `rect` inside `box` (both (x, y, w, h)), or None."""
    x0, y0 = max(rect[0], box[0]), max(rect[1], box[1])
    x1, y1 = min(rect[0] + rect[2], box[0] + box[2]), min(rect[1] + rect[3], box[1] + box[3])
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


MAX_BOX_WORK = 4096     # damage rectangles x merged tile rectangles fitted at most, per frame


def damage_boxes(rects, width, height, tile=TILE):
    """Rectangles to grab for damage `rects` (x, y, w, h; clipped to the screen): the damaged
    tiles merged as merge_tiles does, each shrunk to the bounding box of the damage inside it.
    A 50x50 change then costs a 50x50 grab, compare and encode, not its 128x128 of tiles. With
    very many rectangles the tiles are taken whole (fitting would cost more than it saves)."""
    if len(rects) == 1:         # the usual case: the box is the damage itself, on the screen
        box = clip_rect(rects[0], (0, 0, width, height))
        return [box] if box is not None else []
    merged = merge_tiles(rects_tiles(rects, width, height, tile), width, height, tile)
    if len(rects) * len(merged) > MAX_BOX_WORK:
        return merged
    boxes = []
    for area in merged:
        parts = [p for p in (clip_rect(r, area) for r in rects) if p is not None]
        x0, y0 = min(p[0] for p in parts), min(p[1] for p in parts)
        x1, y1 = max(p[0] + p[2] for p in parts), max(p[1] + p[3] for p in parts)
        boxes.append((x0, y0, x1 - x0, y1 - y0))
    return boxes


def rects_tiles(rects, width, height, tile=TILE):
    """The tiles that pixel rectangles (x, y, w, h) touch, clipped to a width x height screen."""
    cols, rows = tile_grid(width, height, tile)
    found = set()
    for x, y, w, h in rects:
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, width), min(y + h, height)
        if x1 <= x0 or y1 <= y0:
            continue
        found.update((c, r) for r in range(y0 // tile, (y1 - 1) // tile + 1)
                     for c in range(x0 // tile, (x1 - 1) // tile + 1))
    return found


class ScreenCopy:
    """The host's copy of the screen (BGRX), kept current from grabbed rectangles.

    `replace` takes a whole-screen grab without copying it (the caller must not change that buffer
    afterwards; readers such as the encoder may keep it). `update` takes a grab of any rectangle,
    returns the tiles in which it differs and writes its rows into the copy - copying the shared
    buffer first (copy-on-write), so a buffer handed to the encoder is never changed under it.

    A fresh copy of a 1080p screen costs ~3 ms (8 MB, most of it page faults), at every whole
    grab that changed much of the screen (a small change a whole grab finds is written into the
    copy as rectangles: host_capture's _grab_whole). So the
    private copies that changed whole grabs replaced are kept (SPARES), each with the tiles it
    lacks since; the copy-on-write takes one that nothing else holds any more and writes just
    those tiles into it. "Nothing else holds it" is CPython's reference count: the newest spare
    is usually still a queued frame's previous picture (the encoder's scroll search reads it).
    The price is memory: up to SPARES more screen-sized buffers stay allocated."""

    def __init__(self, width, height, tile=TILE):
        self.width, self.height, self.tile = width, height, tile
        self.buf = None
        self._shared = False
        self._spares = []           # [[old private copy, the tiles it lacks]], oldest first

    def compare(self, pixels):
        """The tiles in which a whole-screen grab `pixels` (any buffer: it is only read, in place,
        so it may be a view of a shared segment) differs from the copy; all of them before the
        first grab or when the sizes differ."""
        if self.buf is None:
            return changed_tiles(None, pixels, self.width, self.height, self.tile)
        return changed_tiles(pixels, self.buf, self.width, self.height, self.tile)   # (equality is symmetric)

    def replace(self, raw, dirty=None):
        """A whole-screen grab -> dirty tiles (all of them the first time; `dirty`: what compare()
        found for it, not looked for again). A grab that changes nothing is not taken: the copy
        already holds its pixels, and a private copy stays private (taking the grab would cost a
        whole-screen copy at the next update: ~3 ms for 1080p)."""
        if dirty is None:
            dirty = changed_tiles(self.buf, raw, self.width, self.height, self.tile)
        if dirty:
            self._changed(dirty)
            if self.buf is not None and not self._shared:
                self._spares.append([self.buf, set(dirty)])
                del self._spares[:-SPARES]
            self.buf, self._shared = raw, True
        return dirty

    def _changed(self, tiles):
        """The copy now differs from what it was in `tiles`: every spare lacks them too."""
        for spare in self._spares:
            spare[1] |= tiles

    def _own(self):
        """Make self.buf private before writing into it (copy-on-write): into a spare nobody
        else holds when there is one, else a new copy."""
        free = next((i for i in range(len(self._spares))       # held by its slot in the list only
                     if sys.getrefcount(self._spares[i][0]) == _HELD_BY_ONE), None)
        if free is not None:
            spare, lacks = self._spares.pop(free)
            if len(spare) == len(self.buf):
                _copy_tiles(spare, self.buf, lacks, self.width, self.height, self.tile)
                self.buf, self._shared = spare, False
                return
        self.buf, self._shared = bytearray(self.buf), False

    def update(self, x, y, w, h, raw):
        """A grab of the rectangle (x, y, w, h), anywhere on the screen -> the tiles in which it
        differs from the copy; the copy then holds its pixels. A row that differs is split at the
        tile borders and only the pieces of tiles not yet known dirty are compared."""
        return self.update_rows(x, y, w, h, raw)[0]

    def update_rows(self, x, y, w, h, raw):
        """update() -> (dirty tiles, (first, end)): the grab's rows [first, end) hold every
        change ((set(), None) when nothing changed), as update_small says. Every row is compared
        anyway, so the host cuts a grab of lately changed tiles to its changed rows with this
        instead of a packed copy of the old pixels and a search."""
        if self.buf is None:
            raise ValueError("ScreenCopy.update before the first whole-screen grab")
        if self._shared:
            self._own()
        stride, span, tile = self.width * 4, w * 4, self.tile
        buf, src, pieces = self.buf, memoryview(raw), _row_pieces(x, w, tile)
        view, count = memoryview(buf), len(pieces)     # (a bytearray would copy a slice first)
        found, known, known_row = set(), set(), None    # dirty columns of the current tile row
        start, first, last = y * stride + x * 4, None, 0
        for at in range(0, h * span, span):
            line = src[at:at + span]
            if not buf.startswith(line, start):
                last = at
                if first is None:
                    first = at
                tile_row = (start // stride) // tile
                if tile_row != known_row:
                    known, known_row = set(), tile_row
                if len(known) < count:  # once every tile of this row is dirty, only copy
                    new = [c for c, a, b in pieces if c not in known and not buf.startswith(line[a:b], start + a)]
                    if new:             # (the usual changed row: in a tile already known)
                        known.update(new)
                        found.update([(c, tile_row) for c in new])
                view[start:start + span] = line
            start += stride
        self._changed(found)
        return found, (None if first is None else (first // span, last // span + 1))

    def update_small(self, x, y, w, h, raw):
        """update() for a small grab (a damage box of at most COARSE_AREA pixels), coarser and
        cheaper -> (dirty tiles, (first, end)): the grab's rows [first, end) hold every change
        ((set(), None) when nothing changed). Rows are compared in place (memcmp, no packed copy
        of the old pixels), from the top until one differs and from the bottom until one differs:
        a damage box is what was drawn, so that is usually a compare or two at each end. Every
        tile of the grab in the rows between is dirty (a small change is sent as one picture of
        those rows), and only those rows are written into the copy."""
        if self.buf is None:
            raise ValueError("ScreenCopy.update_small before the first whole-screen grab")
        if self._shared:
            self._own()
        stride, span, tile, src, buf = self.width * 4, w * 4, self.tile, memoryview(raw), self.buf
        top = y * stride + x * 4

        def differs(row):
            return not buf.startswith(src[row * span:(row + 1) * span], top + row * stride)

        first = next((row for row in range(h) if differs(row)), None)
        if first is None:
            return set(), None
        end = next(row for row in range(h - 1, first - 1, -1) if differs(row)) + 1
        view, at = memoryview(buf), top + first * stride    # a memoryview takes a slice as is;
        for start in range(first * span, end * span, span):  # a bytearray would copy it first
            view[at:at + span] = src[start:start + span]
            at += stride
        found = {(c, r) for r in range((y + first) // tile, (y + end - 1) // tile + 1)
                 for c in range(x // tile, (x + w - 1) // tile + 1)}
        self._changed(found)
        return found, (first, end)

    def region(self, x, y, w, h):
        """A private copy (bytes) of one rectangle's BGRX pixels, rows packed."""
        return region_bytes(self.buf, self.width, x, y, w, h)


SPARES = 2          # old private screen copies kept for the copy-on-write (see ScreenCopy)
_HELD_BY_ONE = 2    # sys.getrefcount of an object one reference holds (plus the call's argument)
WHOLE_COPY = 0.25   # share of the tiles from which one whole-buffer copy beats copying tiles


def _copy_tiles(dst, src, tiles, width, height, tile):
    """Write `tiles` of the screen buffer `src` into `dst` (both `width` x `height` BGRX); all
    of it when they are a good part of the screen (one memcpy into pages that are already there)."""
    cols, rows = tile_grid(width, height, tile)
    stride, view, src = width * 4, memoryview(dst), memoryview(src)
    if len(tiles) > WHOLE_COPY * cols * rows:
        view[:] = src       # (a bytearray's own slice assignment would copy `src` first)
        return
    for x, y, w, h in merge_tiles(tiles, width, height, tile):
        span = w * 4
        for at in range(y * stride + x * 4, (y + h) * stride, stride):
            view[at:at + span] = src[at:at + span]


def _row_pieces(x, w, tile):
    """[(tile column, first byte, end byte)] of a row of a grab starting at x, w pixels wide."""
    return [(c, (max(c * tile, x) - x) * 4, (min((c + 1) * tile, x + w) - x) * 4)
            for c in range(x // tile, (x + w - 1) // tile + 1)]


def region_bytes(raw, width, x, y, w, h):
    """The BGRX bytes of one rectangle of a buffer `width` pixels wide, rows packed."""
    stride = width * 4
    view = memoryview(raw)
    if (x, w) == (0, width):
        return bytes(view[y * stride:(y + h) * stride])
    first, span = y * stride + x * 4, w * 4
    return b"".join([view[a:a + span] for a in range(first, first + h * stride, stride)])


class RecentChanges:
    """Tiles that changed lately, at two ages (pure; injected clock).

    A screen polled by scanlines (capture_win32.ScanProbe) sees a change only when a scanned row
    crosses it: a 20-row animation in about one poll of two. The host grabs the tiles that changed
    within `keep` seconds (HOT_FOR) at every frame, before the scan, so something found changing
    once is followed at the full frame rate, and the scan (comparing with the copy just updated)
    does not find it again. Tiles that changed within `known` seconds (KNOWN_FOR) are grabbed
    only with each scan, and the scan does not count them as news: a blinking caret, or an
    animation coming back to a tile, neither costs a grab at every frame nor keeps the scans at
    their full rate. Asked at every frame, `rects` merges tiles again only when one came or went
    (the same tiles changing frame after frame are the usual case)."""

    def __init__(self, keep=HOT_FOR, clock=time.monotonic, known=KNOWN_FOR):
        self.keep, self.known, self.clock = keep, max(known, keep), clock
        self._when = {}             # tile -> when it last changed
        self._merged = {}           # age -> (tiles, rects, screen size, time the tiles may change)

    def changed(self, tiles):
        now, when = self.clock(), self._when
        for tile in tiles:
            last = when.get(tile)
            when[tile] = now
            if last is None or now - last >= self.keep:   # a tile (re)joins a set: merge again
                self._merged.clear()

    def tiles(self):
        """The tiles that changed within `known` seconds (a set)."""
        now = self.clock()
        return {tile for tile, when in self._when.items() if now - when < self.known}

    def rects(self, width, height, known=False):
        """The tiles that changed within `keep` seconds (`known` seconds with known=True) as merged
        pixel rectangles; tiles older than `known` are forgotten. The list is kept for the next
        call: do not change it."""
        age, now = self.known if known else self.keep, self.clock()
        entry = self._merged.get(age)
        if entry is not None and now < entry[3] and entry[2] == (width, height):
            return entry[1]
        self._when = {tile: when for tile, when in self._when.items() if now - when < self.known}
        tiles = {tile: when for tile, when in self._when.items() if now - when < age}
        if entry is not None and entry[0] == tiles.keys() and entry[2] == (width, height):
            rects = entry[1]
        else:
            rects = merge_tiles(tiles, width, height)
        until = min(tiles.values(), default=float("inf")) + age
        self._merged[age] = (tiles.keys(), rects, (width, height), until)
        return rects
