"""The viewer's framebuffer operations beyond plain image decoding: applying Copy rectangles, and
scaling up the moving regions the host sent at a reduced resolution (pure).

Theory of operation. A Frame may carry ENC_COPY rectangles (tagio.protocol.session): "the w x h
pixels at (src_x, src_y) of the screen you have are now at (x, y)" - a scroll or a moved window that
the host found with tagio.session.motion, sent in 4 bytes instead of as new pixels. Every Copy of a
frame reads the screen as it was BEFORE the frame (the host compared its previous frame with the new
one), so `apply_copies` crops all sources first and pastes them afterwards: two copies that swap
regions, or a copy whose source and destination overlap (every scroll), come out right. The host
sends a frame's copies first, in its first message, before any pixels of that frame.

A copy whose source or destination leaves the screen is the host's fault: RemoteProtocolError, as
for any other rectangle. The result is also returned as (x, y, image) pieces, the same shape the
decoder posts for pixel rectangles, so a display draws copied regions like any other update.

An ENC_SCALED rectangle (sent only to a viewer that said it takes them: ViewerCapabilities) holds a
JPEG smaller than the rectangle: moving content the host shrank to fit a slow link
(tagio.session.scaled). `decode_scaled` checks the JPEG's size against the one the rectangle
names before decoding any pixel, and scales it up to the rectangle's size: bilinear (smooth) up
to SMOOTH_PIXELS, beyond that by repeating pixels (a bilinear 1080p costs ~25 ms of CPU here,
more than decoding the JPEG; repeating ~3 ms), so a viewer keeps up with full-screen motion on a
slow link at the price of blocks while it moves. The host
sends those pixels again losslessly once they stay still (tagio.session.refresh), so the
framebuffer converges to the host's screen pixel for pixel.
"""

import io

from PIL import Image

from tagio.errors import RemoteProtocolError
from tagio.protocol import session as m

IMAGE_FORMATS = {m.ENC_PNG: "PNG", m.ENC_JPEG: "JPEG", m.ENC_SCALED: "JPEG"}
SMOOTH_PIXELS = 1_000_000   # scaled rectangles up to this size are scaled up bilinear, larger ones by
                            # repeating pixels

MAX_COPY_AREA = 2       # screens' worth of pixels the copies of one Frame message may move


def split_copies(rects):
    """(ENC_COPY rects, all other rects) of one Frame message, each in the order received."""
    copies = [r for r in rects if r.encoding == m.ENC_COPY]
    return copies, [r for r in rects if r.encoding != m.ENC_COPY]


def check_copy(rect, width, height):
    """(src_x, src_y) of a copy rect that fits a width x height screen at both ends.
    Raises RemoteProtocolError."""
    src_x, src_y = m.copy_source(rect)
    for what, x, y in (("source", src_x, src_y), ("destination", rect.x, rect.y)):
        if x + rect.w > width or y + rect.h > height:
            raise RemoteProtocolError(f"copy {what} {rect.w}x{rect.h}+{x}+{y} outside the {width}x{height} screen")
    return src_x, src_y


def apply_copies(fb, copies, width, height):
    """Apply ENC_COPY rects to the PIL image `fb` (the viewer's screen, width x height), all read
    from the screen as it was before the first one. Returns [(x, y, image)] of what changed.
    Raises RemoteProtocolError (and changes nothing) when any copy leaves the screen, or when the
    copies of one message cover more than MAX_COPY_AREA screens (each source is held in memory
    until all are pasted: 4096 full-screen copies would be 32 GB)."""
    if sum(r.w * r.h for r in copies) > MAX_COPY_AREA * width * height:
        raise RemoteProtocolError(f"copies cover more than {MAX_COPY_AREA} screens")
    sources = [check_copy(rect, width, height) for rect in copies]
    pieces = [(rect.x, rect.y, fb.crop((sx, sy, sx + rect.w, sy + rect.h)))
              for rect, (sx, sy) in zip(copies, sources)]
    for x, y, img in pieces:
        fb.paste(img, (x, y))
    return pieces


def open_image(data, fmt, size):
    """PNG or JPEG bytes -> RGB image of exactly `size` (width, height).

    The size is checked from the header before any pixel is decoded, so a small message cannot
    claim a huge image. Raises RemoteProtocolError."""
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
        if img.size != tuple(size):
            raise RemoteProtocolError(f"image is {img.size}, rectangle says {size[0]}x{size[1]}")
        img.load()
        return img if img.mode == "RGB" else img.convert("RGB")
    except RemoteProtocolError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise RemoteProtocolError(f"rectangle image does not decode: {exc}") from exc


def decode_scaled(rect):
    """An ENC_SCALED Rect -> RGB image of rect.w x rect.h (its JPEG scaled up). Raises
    RemoteProtocolError."""
    small = open_image(m.scaled_data(rect), "JPEG", m.scaled_size(rect))
    if small.size == (rect.w, rect.h):
        return small
    smooth = rect.w * rect.h <= SMOOTH_PIXELS
    return small.resize((rect.w, rect.h), Image.BILINEAR if smooth else Image.NEAREST)
