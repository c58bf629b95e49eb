"""Scroll and move detection: which rows of a changed region are rows of the previous frame shifted
up or down, so the host can send "copy these rows" instead of their pixels (pure, no I/O).

Theory of operation (Xpra's motion.pyx and TigerVNC's CopyRect do the same). A terminal or a web page
that scrolls by N rows changes every pixel of the region, and today costs a full re-encode of it
(~300-400 KB for a 1080p terminal); but all of it except the N new rows is already on the viewer's
screen, N rows higher. `detect(prev, cur, width, height, region)` finds that:

  1. hash each row of the region in both frames (zlib.crc32 on a memoryview slice of the BGRX
     buffer as mss gives it: C speed, no copy, ~40% cheaper than adler32 here with zlib's
     hardware CRC; the previous frame's hashes can be passed back in from the last call, so a
     stream of frames hashes each row once);
  2. let every changed row of the current frame vote for the shifts d at which the previous frame
     had the same row (rows whose hash occurs more than MAX_CANDIDATES times, such as blank lines,
     do not vote: they match everywhere);
  3. for the best shifts, in order of votes, find runs of rows i where cur[i] == prev[i - d] (the hash
     first, then the bytes themselves: a hash collision must never put wrong pixels on the screen);
     each run of at least `min_rows` changed rows becomes a Copy;
  4. the changed rows no Copy covers are returned as strips to encode as usual.

The search costs about as much as encoding the region it saves (hashing every row of the changed
area twice, voting, comparing), so the host runs it only where it can pay (`pays`): changes at
least MIN_HEIGHT rows tall and MIN_AREA pixels large. A small animation (a progress bar, a
blinking cursor, a clock) is cheaper sent as pixels, and so is a small scrolled list. Where it
keeps finding nothing (a slideshow, a video or a game filling the screen: a 1080p search costs
~6-10 ms a frame here, as much as its JPEG) the host pauses it (`SearchGate`): after MISSES_FREE
searches in a row without a Copy, for a pause that doubles with each further miss up to
MAX_PAUSE. A scroll that starts then goes as pixels for at most MAX_PAUSE; the first search that
finds a Copy opens the gate again.

A Copy reads the PREVIOUS frame: the viewer applies every Copy of a frame from its framebuffer as it
was before the frame, then draws the frame's other rectangles (tagio.session.framebuffer). Only
vertical motion of whole region rows is found (scrolling, a window dragged up or down over a plain
background); a sideways move is sent as pixels.
"""

import collections
import zlib
from dataclasses import dataclass

MIN_HEIGHT = 64         # changed regions at least this tall ...
MIN_AREA = 256 * 256    # ... and this large (pixels) are searched for scrolled rows
MIN_ROWS = 8            # a Copy shorter than this is not worth its header (about half a text line)
MAX_SHIFTS = 3          # shifts tried per region (two panes scrolling differently, plus one)
MAX_CANDIDATES = 4      # a row found more often than this in the previous frame does not vote
MIN_VOTES = 4           # a shift needs this many voting rows before its runs are looked for
MISSES_FREE = 2         # searches in a row may find nothing before the gate pauses them ...
FIRST_PAUSE = 1 / 60    # ... first for this long (seconds; about one frame), doubling per miss ...
MAX_PAUSE = 0.25        # ... up to this long: a scroll that starts in a pause waits at most this


@dataclass(frozen=True)
class Copy:
    """Copy the w x h rectangle at (src_x, src_y) of the previous frame to (x, y)."""
    src_x: int
    src_y: int
    x: int
    y: int
    w: int
    h: int


@dataclass
class Motion:
    copies: list            # [Copy]
    strips: list            # [(x, y, w, h)] changed rows no Copy covers, to encode as pixels
    hashes: list            # row hashes of the current frame's region (pass as old_hashes next time)


def pays(height, area):
    """Is a scroll search worth its cost for changes `height` rows tall covering `area` pixels?"""
    return height >= MIN_HEIGHT and area >= MIN_AREA


def row_hashes(buf, width, region):
    """crc32 of each row of `region` (x, y, w, h) in a BGRX buffer `width` pixels wide."""
    x, y, w, h = region
    stride, view, crc = width * 4, memoryview(buf), zlib.crc32
    a, b = x * 4, (x + w) * 4
    return [crc(view[r * stride + a:r * stride + b]) for r in range(y, y + h)]


def detect(prev, cur, width, height, region, min_rows=MIN_ROWS, old_hashes=None):
    """Copies and remaining strips for the changed `region` (x, y, w, h) between two BGRX buffers of
    a width x height screen. `old_hashes`: row_hashes(prev, ...) of the same region, if known."""
    x, y, w, h = region
    new = row_hashes(cur, width, region)
    if prev is None or len(prev) != len(cur) or len(prev) < width * height * 4:
        return Motion([], [region], new)
    old = old_hashes if old_hashes is not None and len(old_hashes) == h else row_hashes(prev, width, region)
    rows = _Rows(prev, cur, width, region)
    same = [o == n and rows.equal(i, i) for i, (o, n) in enumerate(zip(old, new))]
    covered = [False] * h
    copies = []
    for shift in _best_shifts(old, new, same):
        for top, bottom in _runs(old, new, same, covered, shift, rows, min_rows):
            copies.append(Copy(x, y + top - shift, x, y + top, w, bottom - top))
            covered[top:bottom] = [True] * (bottom - top)
    strips = [(x, y + top, w, bottom - top)
              for top, bottom in _spans([not s and not c for s, c in zip(same, covered)])]
    return Motion(copies, strips, new)


class SearchGate:
    """Should the next scroll search run? Pauses the search while it keeps finding nothing (pure;
    injected clock). `open()` before a search, `found(hit)` after it."""

    def __init__(self, clock):
        self.clock = clock
        self.misses = 0             # searches in a row that found no Copy
        self.closed_until = 0.0

    def open(self):
        return self.clock() >= self.closed_until

    def found(self, hit):
        """The search just run found a Copy (`hit`) or not."""
        self.misses = 0 if hit else self.misses + 1
        extra = self.misses - MISSES_FREE
        pause = min(MAX_PAUSE, FIRST_PAUSE * 2 ** min(extra - 1, 16)) if extra > 0 else 0.0
        self.closed_until = self.clock() + pause


class _Rows:
    """Byte-exact row comparison inside the region: cur row i against prev row j (memcmp)."""

    def __init__(self, prev, cur, width, region):
        x, y, w, _h = region
        self.prev, self.cur = memoryview(prev), cur if isinstance(cur, (bytes, bytearray)) else bytes(cur)
        self.stride, self.left, self.span, self.top = width * 4, x * 4, w * 4, y

    def equal(self, i, j):
        a = (self.top + i) * self.stride + self.left
        b = (self.top + j) * self.stride + self.left
        return self.cur.startswith(self.prev[b:b + self.span], a)


def _best_shifts(old, new, same):
    """Shifts (current row - previous row) that enough changed rows vote for, most votes first."""
    where = collections.defaultdict(list)
    for j, value in enumerate(old):
        where[value].append(j)
    votes = collections.Counter()
    for i, value in enumerate(new):
        found = where.get(value)
        if same[i] or not found or len(found) > MAX_CANDIDATES:
            continue
        votes.update(i - j for j in found if j != i)
    return [d for d, n in votes.most_common(MAX_SHIFTS) if n >= MIN_VOTES]


def _runs(old, new, same, covered, shift, rows, min_rows):
    """(top, bottom) runs of region rows that equal the previous frame's rows `shift` higher, with
    unchanged rows trimmed off both ends; only runs with at least `min_rows` changed rows."""
    h = len(new)
    match = [0 <= i - shift < h and not covered[i] and new[i] == old[i - shift] and rows.equal(i, i - shift)
             for i in range(h)]
    found = []
    for top, bottom in _spans(match):
        while top < bottom and same[top]:
            top += 1
        while bottom > top and same[bottom - 1]:
            bottom -= 1
        if sum(1 for i in range(top, bottom) if not same[i]) >= min_rows:
            found.append((top, bottom))
    return found


def _spans(flags):
    """(start, end) of each run of true values."""
    spans, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(flags)))
    return spans
