"""Moving regions at a reduced resolution: the host's encoder of ENC_SCALED rectangles (pure).

Theory of operation. flow.QualityPolicy sizes the moving part of each frame to the measured rate:
first the JPEG quality drops, down to MOTION_MIN_QUALITY; when even that does not fit, it picks a
scale below 1 (1/2, 1/3, 1/4). Bytes follow the area, so half the resolution costs about a
quarter, where JPEG below quality 40 saves little and looks worse than a blur. The host then hands
each rectangle of moving content here (`encode_region`): a large, photo-like one is shrunk by the
scale (Pillow's reduce(), the average of each k x k block: ~5 ms for 1080p with the JPEG, less than
the JPEG of the full picture; a scale that is not a whole fraction falls back to a bilinear resize)
and sent as JPEG in an ENC_SCALED rectangle (tagio.protocol.session: its on-screen size, and the size of the
picture it carries); the viewer scales it back up into its framebuffer
(tagio.session.framebuffer.decode_scaled). Its tiles count as lossy, so once the motion stops the
lossless top-off (tagio.session.refresh) restores every pixel.

Not scaled, and left to the usual encoder (`None`): rectangles under MIN_AREA pixels (a small
change is cheap at full size, and blur shows most on small things), and content of one colour or
of few colours (text, UI), which stays exact as a fill or PNG. Only a viewer that said it takes
scaled rectangles gets them (protocol/version.py CAP_SCALED_RECT); for any other the policy never
picks a scale below 1.

The link is not the only limit: a host whose CPU cannot encode sustained full-screen motion at the
frame rate falls behind however fast the link (a 1080p picture costs ~8-14 ms to convert and
JPEG-encode on a 2-core machine, and the viewer about as much to decode: two cores shared with
the X server cannot give 60 of those a second). `SpeedChoice` times each full-scale encode of a large moving photo and,
when one would take more than SPEED_SHARE of the frame interval, has such rectangles sent at
SPEED_SCALE (1/2: a quarter of the pixels, ~4 ms to shrink and encode, ~4 ms for the viewer to
decode and scale up) while the motion lasts. The trade: moving photos are shown at half
resolution (blocks of 2x2 pixels on a 1080p screen) at the full frame rate instead of sharp at
about half of it; the lossless top-off restores every pixel once they stop (~100-200 ms). A
machine fast enough keeps full resolution. While scaled, each scaled encode's time stands for
SCALED_TO_FULL times as much at full scale, so the choice notices when the machine has room
again without sending a full-size frame to find out (a probe frame of 7x the bytes and 2x the
encode time, now and then, is a hiccup in a paced stream). Xpra scales video regions under load
the same way.
"""

import io

from PIL import Image

from tagio.protocol import session as m
from tagio.session import tiles as t

MIN_AREA = 256 * 256     # pixels: smaller rectangles keep their full resolution
SPEED_SCALE = 0.5        # the scale of large moving photos when the CPU cannot encode them in time ...
SPEED_SHARE = 0.5        # ... i.e. when one full-scale encode would take more than this share of a frame interval
SPEED_BACK = 0.7         # scaled: back to full scale once it would take less than this share of SPEED_SHARE
SPEED_WEIGHT = 0.3       # weight of a new timing in the cost's moving average
SCALED_TO_FULL = 1.5     # a full-scale conversion + JPEG costs about this many times a 1/2-scale block
                         # average + JPEG of the same rectangle (1080p here: ~7.8 ms against ~5.0 ms)


def scaled_size(width, height, scale):
    """The encoded size of a width x height rectangle at `scale` (at least 1 x 1, at most the
    rectangle itself): reduce()'s size, rounded up, for a whole fraction 1/k."""
    k = _factor(scale)
    if k:
        return -(-width // k), -(-height // k)
    return (min(width, max(1, round(width * scale))), min(height, max(1, round(height * scale))))


def _factor(scale):
    """k when `scale` is 1/k for a whole k > 1, else None."""
    k = round(1 / scale)
    return k if k > 1 and abs(k * scale - 1) < 1e-9 else None


def shrink(img, scale):
    """`img` at `scale`: a k x k block average for scale 1/k, else a bilinear resize."""
    k = _factor(scale)
    if k:
        return img.reduce(k)
    return img.resize(scaled_size(img.width, img.height, scale), Image.BILINEAR)


def encode_region(img, x, y, quality, scale):
    """The moving rectangle image `img` placed at (x, y) as ENC_SCALED parts at `scale`: a list of
    (x, y, w, h, encoding, data), split into horizontal halves until each fits a message; or None
    when it is not to be scaled (scale 1, small, or not photo-like)."""
    w, h = img.size
    if scale >= 1.0 or w * h < MIN_AREA or not _photo_like(img):
        return None
    return _encode(img, x, y, quality, scale)


def bgrx_view(raw, width, x, y, w, h):
    """The rectangle (x, y, w, h) of a BGRX buffer `width` pixels wide as an "RGBX" image that reads
    the buffer itself (no copy; R and B come out swapped), or None where the buffer ends before the
    last row's full stride would (a rectangle on the bottom edge that does not start at column 0)."""
    stride = width * 4
    start = y * stride + x * 4
    if len(raw) - start < h * stride:
        return None
    return Image.frombuffer("RGBX", (w, h), memoryview(raw)[start:], "raw", "RGBX", stride, 1)


def encode_view(view, x, y, quality, scale):
    """encode_region for a bgrx_view: the block averages read the grab itself and only the shrunk
    picture is converted to RGB (the same pixels as converting the whole rectangle first, ~2 ms
    less for 1080p at 1/2). None when not to be scaled."""
    w, h = view.size
    if scale >= 1.0 or w * h < MIN_AREA or not _photo_like(view):
        return None
    return _encode(view, x, y, quality, scale, swapped=True)


def _encode(img, x, y, quality, scale, swapped=False):
    w, h = img.size
    small = shrink(img, scale)
    if swapped:     # BGRX read as RGBX: put R and B back while converting to RGB
        small = Image.frombytes("RGB", small.size, small.tobytes(), "raw", "BGRX")
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality)
    rect = m.scaled_rect(x, y, w, h, *small.size, out.getvalue())
    if len(rect.data) <= m.MAX_RECT_DATA or h < 2:
        return [(rect.x, rect.y, rect.w, rect.h, rect.encoding, rect.data)]
    top = h // 2
    return (_encode(img.crop((0, 0, w, top)), x, y, quality, scale, swapped)
            + _encode(img.crop((0, top, w, h)), x, y + top, quality, scale, swapped))


def _photo_like(img):
    """Neither one colour nor few colours (those stay exact: fill or PNG)."""
    return t.single_colour(img) is None and not t.few_colours(img)


def encoded_pixels(rect):
    """Pixels the encoder turned into `rect.data`: the carried picture's for ENC_SCALED, the
    rectangle's for any other (what flow.QualityPolicy.encoded wants to learn bytes per pixel)."""
    if rect.encoding == m.ENC_SCALED:
        sw, sh = m.scaled_size(rect)
        return sw * sh
    return rect.w * rect.h


class SpeedChoice:
    """The scale for a large moving photo from the host's encode speed (pure: the caller times).

    `scale(pixels, interval)` before encoding a rectangle of moving content; after a JPEG of it
    (full scale or SPEED_SCALE), `timed(pixels, seconds, scale)` with the wall time its conversion
    and encoding took (a loaded machine is slower: that is the point). Those of at least MIN_AREA
    pixels teach the cost of a full-scale encode (seconds per pixel, a moving average)."""

    def __init__(self):
        self.cost = None            # seconds per pixel of a full-scale encode; None: not measured
        self.scaled = False

    def scale(self, pixels, interval):
        if pixels < MIN_AREA or self.cost is None:
            return 1.0
        share = self.cost * pixels / interval
        if self.scaled and share < SPEED_SHARE * SPEED_BACK:
            self.scaled = False
        elif not self.scaled and share > SPEED_SHARE:
            self.scaled = True
        return SPEED_SCALE if self.scaled else 1.0

    def timed(self, pixels, seconds, scale=1.0):
        if pixels < MIN_AREA:
            return
        cost = seconds / pixels * (1.0 if scale >= 1.0 else SCALED_TO_FULL)
        self.cost = cost if self.cost is None else self.cost + SPEED_WEIGHT * (cost - self.cost)
