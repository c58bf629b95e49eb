"""The viewer side of a session: channel -> decode -> framebuffer + display updates; input -> channel.

Theory of operation. Two threads, stopped by one Event:

  receive  reads the channel, decodes messages and dispatches through a table; Frame parts go to the
           decode queue (bounded: when it is full the receiver waits, and because the host needs our
           FrameAck before it captures again, the whole pipeline slows down instead of buffering).
  decode   turns each rectangle into a PIL image, pastes it into `framebuffer` (under a lock) and
           posts it to `updates`; after the FINAL part it sends FrameAck.

A display that draws (the Tk window) calls `attach_display()`; from then on a frame is acknowledged
only when the display reports it drawn with `displayed(frame_id)` (or `displayed()` after a redraw
from the framebuffer), so the host's frame rate follows what reaches the screen: a window that
draws 25 frames a second no longer has 50 decoded for it, half of them never shown, with the CPU
they take slowing the drawing further. `detach_display()` acknowledges everything still waiting,
and frames left undrawn for MAX_UNSHOWN_AGE are acknowledged anyway (a stuck display slows the host,
it never stalls it).

`updates` is a bounded queue of tuples for the display (the Tk thread drains it from `after()`):

  ("size", width, height, monitor)                 new geometry; the framebuffer was reset (black)
  ("rects", frame_id, [(x, y, image), ...], capture_time)   paste these images at (x, y)
  ("refresh",)                                     updates were dropped: redraw from `framebuffer`
  ("cursor", x, y)                                 the host pointer moved (monitor coordinates)
  ("cursor_shape", hot_x, hot_y, rgba_image)       the host pointer changed its picture
  ("monitors", current, [(left, top, w, h), ...])  the host's monitors
  ("clipboard", text)                              the host's clipboard text changed
  ("closed", text)                                 the session ended; `text` says why, for people

Nobody has to drain `updates` (a headless viewer only wants `framebuffer`): when it is full the
decoder empties it and posts one ("refresh",), so it never blocks and never grows.
Anything the host sends that breaks the protocol (bad message, a rectangle outside the screen, an
image that does not decode) ends the session with RemoteProtocolError, kept for join().
"""

import io
import queue
import threading
import time

from PIL import Image

from tagio.errors import RemoteProtocolError, SecureChannelError, TagioError, TransportError
from tagio.protocol import session as m
from tagio.session import framebuffer
from tagio.session.workers import Workers, last_words

UPDATE_QUEUE = 64
MAX_UNSHOWN = 8         # frames decoded but not yet drawn; past this the oldest is acknowledged anyway
MAX_UNSHOWN_AGE = 1.0   # seconds without a draw report while frames wait: acknowledge them anyway
ACK_CHECK = 0.1         # how often an idle decoder looks for such overdue frames
DECODE_QUEUE = 4
MAX_FRAME_AREA = 2      # screens' worth of pixels one Frame message may make us decode (the host's
                        # rectangles do not overlap: at most one; 4096 full-screen images ~ 500 GB)
BYE_TIMEOUT = 1.0
_IMAGE_FORMATS = {m.ENC_PNG: "PNG", m.ENC_JPEG: "JPEG"}


class ViewerSession:
    def __init__(self, channel, *, on_event=None, max_updates=UPDATE_QUEUE):
        self.channel = channel
        self.on_event = on_event or (lambda name, **fields: None)
        self.updates = queue.Queue(maxsize=max_updates)
        self.stats = {"frames": 0, "bytes": 0, "fps": 0.0, "latency_ms": 0}
        self.geometry = None            # (width, height) once Hello arrived
        self.monitor = None
        self.monitors = []
        self.host_flags = 0
        self.cursor = None
        self.cursor_shape = None        # (hot_x, hot_y, RGBA image) once the host sent one
        self.closed_reason = None
        self._fb = None
        self._fb_lock = threading.Lock()
        self._decode_q = queue.Queue(maxsize=DECODE_QUEUE)
        self._fps_times = []
        self._pointer = (0, 0)
        self._ack_lock = threading.Lock()
        self._display_attached = False
        self._unshown = []              # frame ids decoded, waiting for the display to draw them
        self._unshown_since = 0.0       # when the display last drew, or the first of those arrived
        self._workers = Workers("viewer", on_error=self._ended_by_error)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self._workers.spawn("receive", self._receive_loop)
        self._workers.spawn("decode", self._decode_loop)

    def stop(self, reason="viewer closed the session"):
        """Say Bye, stop and join both threads. Never raises; join() reports a failure."""
        if not self._workers.stopping.is_set():
            self._workers.stop()
            last_words(self.channel, m.encode(m.Bye(reason[:200])), BYE_TIMEOUT)
            self._closed(reason)
        self._close_channel()
        self._workers.join(timeout=5, reraise=False)

    def join(self, timeout=None):
        """Wait for the session to end; re-raise the error that ended it, if any."""
        self._workers.stopping.wait(timeout)
        if self._workers.stopping.is_set():
            self._close_channel()
        self._workers.join(timeout)

    @property
    def running(self):
        return not self._workers.stopping.is_set()

    @property
    def framebuffer(self):
        """A copy of the last full screen received (None before the first Hello)."""
        with self._fb_lock:
            return None if self._fb is None else self._fb.copy()

    def _ended_by_error(self, exc):
        text = str(exc) if isinstance(exc, TagioError) else f"internal error: {exc!r}"
        if not isinstance(exc, (TransportError, SecureChannelError)):     # else the channel is dead
            prefix = "protocol error" if isinstance(exc, RemoteProtocolError) else "viewer error"
            last_words(self.channel, m.encode(m.Bye(f"{prefix}: {text}"[:200])), BYE_TIMEOUT)
        self.on_event("error", message=text)
        self._closed(text)
        self._close_channel()

    def _closed(self, text):
        self.closed_reason = self.closed_reason or text
        self._post(("closed", self.closed_reason))

    def _close_channel(self):
        try:
            self.channel.close()
        except Exception:       # already closed / transport gone
            pass

    # -- input (any thread, typically Tk's) ------------------------------------------------
    def _send(self, msg, quiet=False):
        try:
            self.channel.send(m.encode(msg))
        except TagioError:
            if not quiet and self.running:
                raise

    def send_mouse_move(self, x, y):
        self._pointer = (int(x), int(y))
        self._send(m.Mouse(m.MOUSE_MOVE, 0, *self._pointer))

    def send_mouse_button(self, button, pressed, x=None, y=None):
        if x is not None:
            self._pointer = (int(x), int(y))
        action = m.MOUSE_PRESS if pressed else m.MOUSE_RELEASE
        self._send(m.Mouse(action, button, *self._pointer))

    def send_click(self, button=1, count=1, x=None, y=None):
        if x is not None:
            self._pointer = (int(x), int(y))
        self._send(m.Mouse(m.MOUSE_CLICK, button, *self._pointer, count))

    def send_scroll(self, dx, dy):
        self._send(m.Scroll(int(dx), int(dy)))

    def send_key(self, keysym, pressed):
        self._send(m.Key(keysym, bool(pressed)))

    def send_text(self, text):
        for part in utf8_chunks(text, m.MAX_TEXT):          # long text: several messages, same order
            self._send(m.Text(part))

    def send_clipboard(self, text):
        self._send(m.Clipboard(text))

    def select_monitor(self, index):
        self._send(m.SelectMonitor(int(index)))

    def set_quality(self, quality, fps_cap=0):
        self._send(m.SetQuality(int(quality), int(fps_cap)))

    # -- receive -----------------------------------------------------------------------------
    def _receive_loop(self):
        while not self._workers.stopping.is_set():
            data = self.channel.recv()
            self.stats["bytes"] += len(data)
            msg = m.decode(data)
            handler = self._HANDLERS.get(type(msg))
            if handler is None:
                raise RemoteProtocolError(f"host sent a viewer-only message: {type(msg).__name__}")
            handler(self, msg)

    def _on_hello(self, msg):
        self._workers.put(self._decode_q, msg)      # in order with frames: the decoder resets the fb

    def _on_frame(self, msg):
        self._workers.put(self._decode_q, msg)      # the decoder rejects a Frame before any Hello

    def _on_cursor(self, msg):
        if msg.width and msg.height:
            shape = Image.frombytes("RGBA", (msg.width, msg.height), msg.rgba)
            self.cursor_shape = (msg.hot_x, msg.hot_y, shape)
            self._post(("cursor_shape", msg.hot_x, msg.hot_y, shape))
        self.cursor = (msg.x, msg.y)
        self._post(("cursor", msg.x, msg.y))

    def _on_monitors(self, msg):
        self.monitors = list(msg.monitors)
        self._post(("monitors", msg.current, self.monitors))

    def _on_clipboard(self, msg):
        self._post(("clipboard", msg.text))
        self.on_event("clipboard", text=msg.text)

    def _on_bye(self, msg):
        self._closed(msg.text or "host ended the session")
        self.on_event("closed", reason=self.closed_reason)
        self._workers.stop()
        self._close_channel()

    _HANDLERS = {m.Hello: _on_hello, m.Frame: _on_frame, m.Cursor: _on_cursor,
                 m.MonitorList: _on_monitors, m.Clipboard: _on_clipboard, m.Bye: _on_bye}

    # -- decode ------------------------------------------------------------------------------
    def _decode_loop(self):
        # Not Workers.get(): while no message comes the loop still acknowledges overdue frames.
        while not self._workers.stopping.is_set():
            try:
                msg = self._decode_q.get(timeout=ACK_CHECK)
            except queue.Empty:
                self._ack_overdue()
                continue
            if isinstance(msg, m.Hello):
                self._reset(msg)
            else:
                self._apply_frame(msg)

    def _reset(self, hello):
        with self._fb_lock:
            self._fb = Image.new("RGB", (hello.width, hello.height))
        self.geometry = (hello.width, hello.height)
        self.monitor, self.host_flags = hello.monitor, hello.flags
        self._post(("size", hello.width, hello.height, hello.monitor))
        self.on_event("size", width=hello.width, height=hello.height, monitor=hello.monitor)

    def _apply_frame(self, frame):
        if self.geometry is None:
            raise RemoteProtocolError("Frame before Hello")
        width, height = self.geometry
        copies, rects = framebuffer.split_copies(frame.rects)      # copies cost no decoding
        if sum(r.w * r.h for r in rects) > MAX_FRAME_AREA * width * height:
            raise RemoteProtocolError(f"Frame {frame.frame_id} covers more than {MAX_FRAME_AREA} screens")
        pieces = [(r.x, r.y, self._decode_rect(r)) for r in rects]
        with self._fb_lock:
            copied = framebuffer.apply_copies(self._fb, copies, width, height)
            for x, y, img in pieces:
                self._fb.paste(img, (x, y))
        pieces = copied + pieces
        final = frame.flags & m.FINAL
        # Registered before the post: the display may draw it and call displayed() at once.
        held = bool(final and pieces) and self._hold_for_display(frame.frame_id)
        if pieces:
            self._post(("rects", frame.frame_id, pieces, frame.capture_time))
        if final:
            self.stats["latency_ms"] = frame.latency_ms
            self._count_frame()
            if not held:
                self._send(m.FrameAck(frame.frame_id))

    # -- acknowledgements (decode thread and the display's thread) ---------------------------
    def _hold_for_display(self, frame_id):
        """With a display attached, keep the ack of `frame_id` until displayed(); True if kept."""
        with self._ack_lock:
            if not self._display_attached:
                return False
            if not self._unshown:
                self._unshown_since = time.monotonic()
            self._unshown.append(frame_id)
            overflow = self._unshown.pop(0) if len(self._unshown) > MAX_UNSHOWN else None
        if overflow is not None:        # a display that stopped drawing cannot stall the host
            self._send(m.FrameAck(overflow))
        return True

    def attach_display(self):
        """A display that draws the updates will report each frame with displayed()."""
        with self._ack_lock:
            self._display_attached = True

    def detach_display(self):
        """The display is gone: acknowledge what it did not draw and ack on decode again."""
        with self._ack_lock:
            self._display_attached = False
        self.displayed()

    def displayed(self, frame_id=None):
        """The display has drawn frame `frame_id` (None: everything decoded so far); acknowledge
        it and any older frame it skipped. Safe from any thread."""
        with self._ack_lock:
            done = [f for f in self._unshown if frame_id is None or f <= frame_id]
            self._unshown = [f for f in self._unshown if f not in done]
            self._unshown_since = time.monotonic()
        for f in done:
            self._send(m.FrameAck(f), quiet=True)

    def _ack_overdue(self):
        """Acknowledge every waiting frame when the display has not drawn for MAX_UNSHOWN_AGE.

        The host keeps only a couple of frames unacknowledged (fewer than MAX_UNSHOWN), so a display
        that stops reporting (an exception in its poll, a drawing that never comes) would otherwise
        stall the host for good; this lets the stream go on at about one frame a second."""
        with self._ack_lock:
            if not self._unshown or time.monotonic() - self._unshown_since < MAX_UNSHOWN_AGE:
                return
        self.displayed()

    def _decode_rect(self, rect):
        width, height = self.geometry
        if rect.x + rect.w > width or rect.y + rect.h > height:
            raise RemoteProtocolError(f"rectangle {rect.w}x{rect.h}+{rect.x}+{rect.y} outside the screen")
        if rect.encoding == m.ENC_FILL:
            return Image.new("RGB", (rect.w, rect.h), tuple(rect.data))
        return decode_image(rect)

    def recent_fps(self):
        """Frames in the last second, as of now (stats["fps"] is as of the last frame)."""
        limit = time.monotonic() - 1.0
        return float(sum(1 for x in list(self._fps_times) if x > limit))

    def _count_frame(self):
        now = time.monotonic()
        self._fps_times = [x for x in self._fps_times if x > now - 1.0] + [now]
        self.stats["frames"] += 1
        self.stats["fps"] = float(len(self._fps_times))

    def _post(self, update):
        """Put a display update; if nobody drains the queue, collapse it into one refresh."""
        try:
            self.updates.put_nowait(update)
        except queue.Full:
            self._collapse(update)

    def _collapse(self, update):
        try:
            while True:
                self.updates.get_nowait()
        except queue.Empty:
            pass
        for item in (("refresh",), update if update[0] in ("closed", "size") else None):
            if item is not None:
                try:
                    self.updates.put_nowait(item)
                except queue.Full:
                    pass


def utf8_chunks(text, limit):
    """`text` in pieces of at most `limit` UTF-8 bytes, cut between characters (a cut inside one
    would drop it on both sides)."""
    data, start = text.encode("utf-8"), 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:    # a continuation byte: back off
            end -= 1
        yield data[start:end].decode("utf-8")
        start = end


def decode_image(rect):
    """PNG/JPEG bytes of one rectangle -> RGB image of exactly rect.w x rect.h.

    The size is checked from the header before any pixel is decoded, so a small message cannot
    claim a huge image. Raises RemoteProtocolError."""
    try:
        img = Image.open(io.BytesIO(rect.data), formats=[_IMAGE_FORMATS[rect.encoding]])
        if img.size != (rect.w, rect.h):
            raise RemoteProtocolError(f"image is {img.size}, rectangle says {rect.w}x{rect.h}")
        img.load()
        return img if img.mode == "RGB" else img.convert("RGB")
    except RemoteProtocolError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise RemoteProtocolError(f"rectangle image does not decode: {exc}") from exc
