"""The viewer side of a session: channel -> decode -> framebuffer + display updates; input -> channel.

Theory of operation. Five threads, stopped by one Event (tagio.session.workers):

  receive  reads the channel, decodes messages and dispatches through a table; Frame parts go to the
           decode queue (bounded: when it is full the receiver waits, and because the host needs our
           FrameAck before it captures again, the whole pipeline slows down instead of buffering).
  decode   turns each rectangle into a PIL image, pastes it into `framebuffer` (under a lock) and
           posts it to `updates`; after the FINAL part it acknowledges the frame.
  send     the only writer of the channel while the session runs: takes input and acknowledgements
           from the outbox (tagio.session.outbox) and sends them, input first, files last.
  heartbeat  pings a silent host and ends the session when it stays silent (heartbeat.py);
           its Ping and the Pong answers go through the outbox like input, never waiting.
  files    the file engine's pump (tagio.session.files): reads the data of accepted transfers and
           posts it to the outbox, at most files.WINDOW chunks ahead of the sender. The viewer takes
           only the files it asked for (get_files); send_files offers ours to the host, which
           accepts them only if it allows a files folder. Chat lines go both ways.

The send_* methods and displayed() are called by the front end (the Tk thread) and only encode a
message and put it in the bounded outbox: they never wait on the network, so a congested path cannot
freeze the window. Mouse moves coalesce; keys, buttons and text are never dropped: an outbox full of
them means the path has taken nothing for a long while, and the session ends itself as stalled
(TransportTimeout, reported like any other ending). stop() lets the sender finish what was posted
before it says Bye.

A display that draws (the Tk window) calls `attach_display()`; from then on a frame is acknowledged
only when the display reports it drawn with `displayed(frame_id)` (or `displayed()` after a redraw
from the framebuffer), so the host's frame rate follows what reaches the screen: a window that
draws 25 frames a second no longer has 50 decoded for it, half of them never shown, with the CPU
they take slowing the drawing further. `detach_display()` acknowledges everything still waiting,
and frames left undrawn for MAX_UNSHOWN_AGE are acknowledged anyway (a stuck display slows the host,
it never stalls it). When both sides have CAP_ACK_UPTO (an ack stands for every earlier frame too)
the acks are thinned (tagio.session.acks): while small frames arrive fast one ack in two goes out,
none held longer than acks.ACK_HOLD, and a displayed() that covers several frames sends one.

What the session tells its front end is typed (tagio.session.events): display events go to
`updates`, a bounded queue the Tk thread drains from `after()`; the owner's events go to
`on_event(name, **fields)`. Nobody has to drain `updates` (a headless viewer only wants
`framebuffer`): when it is full the decoder empties it and posts one Refresh, so it never blocks and
never grows. Anything the host sends that breaks the protocol (bad message, a rectangle outside the
screen, an image that does not decode) ends the session with RemoteProtocolError, kept for join().
With `clipboard=True` a ClipboardLink (tagio.session.clipboard_sync) shares this machine's clipboard
with the host from the first Hello on (sending what it holds then, once), unless the host is view-only.
"""

import queue
import threading
import time

from PIL import Image

from tagio.errors import RemoteProtocolError, SecureChannelError, TagioError, TransportError, TransportTimeout
from tagio.protocol import session as m
from tagio.session import events as ev
from tagio.protocol.version import CAP_ACK_UPTO, CAP_CLIPBOARD_TEXT, CAP_SCALED_RECT, agree as agree_capabilities
from tagio.session.acks import AckThinner
from tagio.session.chat import ChatLog, chat_pieces
from tagio.session.files import FileEngine
from tagio.session.outbox import ACK, ACK_UPTO, FILE, INPUT, MOVE, Outbox
from tagio.session.heartbeat import Heartbeat, answer
from tagio.session import framebuffer
from tagio.session.workers import Workers, last_words

_WAKE = object()        # put in the decode queue: wake the decoder to look at a held ack's deadline
UPDATE_QUEUE = 64
MAX_UNSHOWN = 8         # frames decoded but not yet drawn; past this the oldest is acknowledged anyway
MAX_UNSHOWN_AGE = 1.0   # seconds without a draw report while frames wait: acknowledge them anyway
ACK_CHECK = 0.1         # how often an idle decoder looks for such overdue frames
DECODE_QUEUE = 4
MAX_FRAME_AREA = 2      # screens' worth of pixels one Frame message may make us decode (the host's
                        # rectangles do not overlap: at most one; 4096 full-screen images ~ 500 GB)
BYE_TIMEOUT = 1.0       # seconds for what was posted, then as much again for the Bye, to go out
STALL_GRACE = 0.005     # seconds a post waits for room in a full outbox before the path counts as stalled
FILE_GRACE = 5.0        # ... for a file message (posted by the pump or the receiver, never the Tk thread)
LAST_WORD_WAIT = 1.0    # seconds a failed write waits for the receive thread to read the host's Bye


class ViewerSession:
    def __init__(self, channel, *, on_event=None, max_updates=UPDATE_QUEUE, clipboard=False,
                 display=None):
        self.channel = channel
        self.clipboard = None           # ClipboardLink once started with clipboard=True
        self._clipboard_wanted = clipboard
        self._display = display         # the X display whose clipboard is shared (None: $DISPLAY)
        self._hello_flags = None        # the first Hello's flags, as the receive thread saw them
        self.on_event = on_event or (lambda name, **fields: None)
        self.updates = queue.Queue(maxsize=max_updates)
        self.stats = {"frames": 0, "bytes": 0, "fps": 0.0, "latency_ms": 0}
        self.geometry = None            # (width, height) once Hello arrived
        self.monitor = None
        self.monitors = []
        self.host_flags = 0
        self.capabilities = 0           # agreed with the host's Hello (protocol/version.py)
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
        self._unshown = []              # (seq, frame id, bytes) decoded, waiting for the display to draw them
        self._acks = AckThinner()       # which acks go out, and when (under _ack_lock)
        self._seq = 0                   # frames decoded so far (decode thread): their arrival order
        self._part_bytes = 0            # bytes of the rectangles of the frame being decoded so far
        self._unshown_since = 0.0       # when the display last drew, or the first of those arrived
        self._outbox = Outbox()
        self._sent_all = threading.Event()     # the sender thread has ended
        self._started = False
        self._workers = Workers("viewer", on_error=self._ended_by_error)
        self.files = FileEngine(self._post_file, first_tid=2, on_event=self.on_event)
        self.chat = ChatLog()
        self._heartbeat = Heartbeat()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self._started = True
        if self._clipboard_wanted:
            from tagio.session.clipboard_sync import ClipboardLink
            self.clipboard = ClipboardLink.open(self._post_input, self._clipboard_notice,
                                               self._clipboard_allowed, display=self._display)
        self._workers.spawn("receive", self._receive_loop)
        self._workers.spawn("decode", self._decode_loop)
        self._workers.spawn("send", self._send_loop)
        self._workers.spawn("files", lambda: self.files.pump(self._workers.stopping))
        self._heartbeat.heard()
        self._workers.spawn("heartbeat", lambda: self._heartbeat.run(self._workers.stopping, self._post_liveness))

    def stop(self, reason="viewer closed the session"):
        """Send what was posted, say Bye, stop and join the threads. Never raises; join() reports
        a failure. Blocks up to a few seconds on a stalled path: not for the Tk thread."""
        if not self._workers.stopping.is_set():
            self._release_ack()
            self._outbox.close()
            if self._started:
                self._sent_all.wait(BYE_TIMEOUT)
            self._workers.stop()
            self._outbox.abandon()
            last_words(self.channel, m.encode(m.Bye(reason[:200])), BYE_TIMEOUT)
            self._closed(reason)
        self._close_channel()
        self._workers.join(timeout=5, reraise=False)
        self._close_clipboard()

    def join(self, timeout=None):
        """Wait for the session to end; re-raise the error that ended it, if any."""
        self._workers.stopping.wait(timeout)
        if self._workers.stopping.is_set():
            self._close_channel()
            self._close_clipboard()
        self._workers.join(timeout)

    @property
    def running(self):
        return not self._workers.stopping.is_set()

    @property
    def path(self):
        """How the channel reaches the partner ("direct-tcp", "relay", ...), for the status line."""
        return self.channel.path

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
        self._notify(ev.Error(text))
        self._closed(text)
        self._close_channel()
        self._outbox.abandon()      # after the close: a sender stuck in send() keeps the CLOSE record out

    def _closed(self, text):
        self.closed_reason = self.closed_reason or text
        self._post(ev.Closed(self.closed_reason))

    def _notify(self, event):
        """Tell the owner (on_event) about `event`, by its name and fields."""
        self.on_event(event.name, **ev.fields(event))

    def _close_channel(self):
        self.files.close()
        try:
            self.channel.close()
        except Exception:       # already closed / transport gone
            pass

    # -- input (any thread, typically Tk's): never blocks ---------------------------------------
    def _post_input(self, msg, kind=INPUT):
        """Hand one message to the sender thread. A message we cannot encode is our bug: it raises
        LocalProtocolError here, in the caller."""
        if not self._outbox.put(m.encode(msg), kind, grace=STALL_GRACE):
            self._stalled()

    def _stalled(self):
        """The outbox is full of input the path did not take: end the session rather than drop a key.

        The outbox takes nothing more but keeps what waits (the sender stays in its send(), so
        closing the channel cuts the stream instead of queueing a CLOSE record behind it). The
        ending is reported from a short-lived worker: closing the channel waits for that sender,
        and on_event may wait for room in the owner's queue; the caller (the Tk thread) must not
        wait for either."""
        waiting, _size, acks = self._outbox.pending()
        if not self._outbox.close():
            return          # the session is already ending
        exc = TransportTimeout(f"the connection to the partner stopped taking data "
                               f"({waiting + acks} messages waiting to be sent)")
        self._workers.spawn("stalled", lambda: _raise(exc))

    def send_mouse_move(self, x, y):
        self._pointer = (int(x), int(y))
        self._post_input(m.Mouse(m.MOUSE_MOVE, 0, *self._pointer), MOVE)

    def send_mouse_button(self, button, pressed, x=None, y=None):
        if x is not None:
            self._pointer = (int(x), int(y))
        action = m.MOUSE_PRESS if pressed else m.MOUSE_RELEASE
        self._post_input(m.Mouse(action, button, *self._pointer))

    def send_click(self, button=1, count=1, x=None, y=None):
        if x is not None:
            self._pointer = (int(x), int(y))
        self._post_input(m.Mouse(m.MOUSE_CLICK, button, *self._pointer, count))

    def send_scroll(self, dx, dy):
        self._post_input(m.Scroll(int(dx), int(dy)))

    def send_key(self, keysym, pressed):
        self._post_input(m.Key(keysym, bool(pressed)))

    def send_text(self, text):
        for part in utf8_chunks(text, m.MAX_TEXT):          # long text: several messages, same order
            self._post_input(m.Text(part))

    def send_clipboard(self, text):
        self._post_input(m.Clipboard.of_text(text))

    def _clipboard_allowed(self):
        # Set by the receive thread: a Clipboard that follows the Hello is judged by it, even
        # while the decode thread has not reached that Hello yet.
        flags = self._hello_flags
        return (flags is not None and not flags & m.HELLO_VIEW_ONLY
                and bool(self.capabilities & CAP_CLIPBOARD_TEXT))

    def _clipboard_notice(self, text):
        event = ev.ClipboardNotice(text)
        self._post(event)
        self._notify(event)

    def _close_clipboard(self):
        if self.clipboard is not None:
            self.clipboard.close()

    def select_monitor(self, index):
        self._post_input(m.SelectMonitor(int(index)))
        self._release_ack()         # the host switches only once every frame is acknowledged

    def set_quality(self, quality, fps_cap=0):
        self._post_input(m.SetQuality(int(quality), int(fps_cap)))

    def send_chat(self, text):
        """One chat line to the host. Raises ValueError for an empty or huge line."""
        for piece in chat_pieces(text):
            self._post_input(m.Chat(piece), FILE)
        self.chat.add("me", text)

    def send_files(self, paths, dest="", policy=0):
        """Offer local files/folders to the host (into folder `dest` of its files folder); the
        transfer ids. Walks the folders: call it from a worker, not the Tk thread. Raises FileRefused."""
        return self.files.send_paths(paths, dest, policy)

    def get_files(self, paths, local_dir, policy=0):
        """Ask the host for `paths` (relative to its files folder) into `local_dir`; the transfer id."""
        return self.files.fetch(paths, local_dir, policy)

    def _post_file(self, msg):
        if not self._outbox.put(m.encode(m.Files(msg)), FILE, grace=FILE_GRACE):
            self._stalled()

    def _ack(self, frame_id):
        self._post_input(m.FrameAck(frame_id), ACK_UPTO if self._acks.upto else ACK)

    # -- send ----------------------------------------------------------------------------------
    def _send_loop(self):
        """The one writer of the channel: batches from the outbox until it is closed or abandoned."""
        try:
            while (batch := self._outbox.take()) is not None:
                for data in batch:
                    self._write(data)
        finally:
            self._sent_all.set()

    def _write(self, data):
        """A write that fails because the host hung up ("broken pipe") may come just after the
        host's Bye, still unread: let the receive thread read it (and end the session with the
        host's reason) before this failure counts as a broken connection, which reconnects."""
        try:
            self.channel.send(data)
        except TransportError:
            if not self._workers.stopping.wait(LAST_WORD_WAIT):
                raise
            return
        self.files.sent(data)

    # -- receive -----------------------------------------------------------------------------
    def _receive_loop(self):
        while not self._workers.stopping.is_set():
            data = self.channel.recv()
            self._heartbeat.heard()
            self.stats["bytes"] += len(data)
            msg = m.decode(data)
            handler = self._HANDLERS.get(type(msg))
            if handler is None:
                raise RemoteProtocolError(f"host sent a viewer-only message: {type(msg).__name__}")
            handler(self, msg)

    def _on_hello(self, msg):
        self.capabilities = agree_capabilities(msg.version, msg.capabilities)
        # The host waits for our word before it scales, or reads an ack as standing for older ones.
        if self.capabilities & (CAP_SCALED_RECT | CAP_ACK_UPTO):
            self._post_input(m.ViewerCapabilities(self.capabilities))
        with self._ack_lock:        # after that word: the host reads no thinned ack before it
            self._acks.upto = bool(self.capabilities & CAP_ACK_UPTO)
        first = self._hello_flags is None
        self._hello_flags = msg.flags
        if first and self.clipboard is not None and self._clipboard_allowed():
            self.clipboard.share_current()  # copied before connecting: meant for the partner
        self._workers.put(self._decode_q, msg)      # in order with frames: the decoder resets the fb

    def _on_frame(self, msg):
        self._workers.put(self._decode_q, msg)      # the decoder rejects a Frame before any Hello

    def _on_cursor(self, msg):
        if msg.width and msg.height:
            shape = Image.frombytes("RGBA", (msg.width, msg.height), msg.rgba)
            self.cursor_shape = (msg.hot_x, msg.hot_y, shape)
            self._post(ev.CursorShape(msg.hot_x, msg.hot_y, shape))
        self.cursor = (msg.x, msg.y)
        self._post(ev.Cursor(msg.x, msg.y))

    def _on_monitors(self, msg):
        self.monitors = list(msg.monitors)
        self._post(ev.Monitors(msg.current, self.monitors))

    def _on_clipboard(self, msg):
        if self.clipboard is not None:
            self.clipboard.received(msg)
        event = ev.Clipboard(msg.text)
        self._post(event)
        self._notify(event)

    def _on_files(self, msg):
        self.files.handle(msg.msg)

    def _on_chat(self, msg):
        self.chat.add("partner", msg.text)
        self.on_event("chat", text=msg.text)

    def _on_bye(self, msg):
        self._outbox.abandon()
        self._closed(msg.text or "host ended the session")
        self._notify(ev.Closed(self.closed_reason))
        self._workers.stop()
        self._close_channel()

    def _on_ping(self, msg):
        self._post_liveness(answer(msg))

    def _on_pong(self, msg):
        pass            # heard() already noted it

    def _post_liveness(self, msg):
        """Queue a Ping or Pong without waiting. A full outbox means the path takes nothing; the
        heartbeat's own silence check (or the stall of the next input) ends the session then."""
        self._outbox.put(m.encode(msg), INPUT)

    _HANDLERS = {m.Ping: _on_ping, m.Pong: _on_pong, m.Hello: _on_hello, m.Frame: _on_frame,
                 m.Cursor: _on_cursor, m.MonitorList: _on_monitors, m.Clipboard: _on_clipboard,
                 m.Bye: _on_bye, m.Files: _on_files, m.Chat: _on_chat}

    # -- decode ------------------------------------------------------------------------------
    def _decode_loop(self):
        # Not Workers.get(): while no message comes the loop still acknowledges overdue frames.
        while not self._workers.stopping.is_set():
            try:
                msg = self._decode_q.get(timeout=self._acks.wait(ACK_CHECK))   # a held ack's deadline
            except queue.Empty:
                msg = None
            self._ack_expired()
            if msg is None:
                self._ack_overdue()
            elif msg is _WAKE:
                continue            # displayed() held an ack: its deadline is the next timeout
            elif isinstance(msg, m.Hello):
                self._release_ack()
                self._reset(msg)
            else:
                self._apply_frame(msg)

    def _reset(self, hello):
        with self._fb_lock:
            self._fb = Image.new("RGB", (hello.width, hello.height))
        self.geometry = (hello.width, hello.height)
        self.monitor, self.host_flags = hello.monitor, hello.flags
        event = ev.Size(hello.width, hello.height, hello.monitor)
        self._post(event)
        self._notify(event)

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
        self._part_bytes += sum(len(r.data) for r in frame.rects)
        if final:
            self._seq += 1
            ack, self._part_bytes = (self._seq, frame.frame_id, self._part_bytes), 0
        # Registered before the post: the display may draw it and call displayed() at once.
        held = bool(final and pieces) and self._hold_for_display(ack)
        if pieces:
            self._post(ev.Rects(frame.frame_id, pieces, frame.capture_time))
        if final:
            self.stats["latency_ms"] = frame.latency_ms
            self._count_frame()
            if not held:
                with self._ack_lock:
                    self._ack_due(*ack)

    # -- acknowledgements (decode thread and the display's thread) ---------------------------
    def _hold_for_display(self, ack):
        """With a display attached, keep the ack of frame `ack` = (seq, frame id, bytes) until
        displayed(); True if kept."""
        with self._ack_lock:
            if not self._display_attached:
                return False
            if not self._unshown:
                self._unshown_since = time.monotonic()
            self._unshown.append(ack)
            if len(self._unshown) > MAX_UNSHOWN:    # a display that stopped drawing cannot stall the host
                self._ack_due(*self._unshown.pop(0))
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
        self._release_ack()

    def displayed(self, frame_id=None):
        """The display has drawn frame `frame_id` (None: everything decoded so far); acknowledge
        it and any older frame it skipped (with CAP_ACK_UPTO one ack, the newest, does). Safe
        from any thread."""
        with self._ack_lock:
            done = [f for f in self._unshown if frame_id is None or f[1] <= frame_id]
            self._unshown = [f for f in self._unshown if f not in done]
            self._unshown_since = time.monotonic()
            for ack in done[-1:] if self._acks.upto else done:
                self._ack_due(*ack)
            held = self._acks.deadline is not None
        if held:        # the decoder may sleep ACK_CHECK: wake it to wait for the deadline instead
            try:
                self._decode_q.put_nowait(_WAKE)
            except queue.Full:
                pass        # frames wait: the decoder wakes for them anyway

    def _ack_due(self, seq, frame_id, size):
        """Frame `frame_id`'s ack is due: send it, or whatever the thinner says (under _ack_lock,
        so acks are posted in the order it decided them: an ack that overtook a newer one would
        name a frame the host already counts as acknowledged)."""
        for fid in self._acks.due(seq, frame_id, size):
            self._ack(fid)

    def _ack_expired(self):
        """Send a held ack whose time is up (decode thread, after each wake-up)."""
        if self._acks.deadline is not None:        # read unlocked: a stale None waits one more wake-up
            with self._ack_lock:
                for fid in self._acks.expire():
                    self._ack(fid)

    def _release_ack(self):
        """Send a held ack now: something else would make the host wait longer for it."""
        with self._ack_lock:
            for fid in self._acks.release():
                self._ack(fid)

    def _ack_overdue(self):
        """Acknowledge every waiting frame when the display has not drawn for MAX_UNSHOWN_AGE.

        The host keeps only a couple of frames unacknowledged (fewer than MAX_UNSHOWN), so a display
        that stops reporting (an exception in its poll, a drawing that never comes) would otherwise
        stall the host for good; this lets the stream go on at about one frame a second."""
        with self._ack_lock:
            if not self._unshown or time.monotonic() - self._unshown_since < MAX_UNSHOWN_AGE:
                return
        self.displayed()
        self._release_ack()

    def _decode_rect(self, rect):
        width, height = self.geometry
        if rect.x + rect.w > width or rect.y + rect.h > height:
            raise RemoteProtocolError(f"rectangle {rect.w}x{rect.h}+{rect.x}+{rect.y} outside the screen")
        return _DECODERS[rect.encoding](rect)      # decode() let no other encoding through

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
        """Put a display event; if nobody drains the queue, collapse it into one Refresh."""
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
        for item in (ev.Refresh(), update if isinstance(update, (ev.Closed, ev.Size)) else None):
            if item is not None:
                try:
                    self.updates.put_nowait(item)
                except queue.Full:
                    pass


def _raise(exc):
    raise exc


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
    return framebuffer.open_image(rect.data, framebuffer.IMAGE_FORMATS[rect.encoding], (rect.w, rect.h))


def _fill(rect):
    return Image.new("RGB", (rect.w, rect.h), tuple(rect.data))


_DECODERS = {m.ENC_FILL: _fill, m.ENC_PNG: decode_image, m.ENC_JPEG: decode_image,
             m.ENC_SCALED: framebuffer.decode_scaled}   # ENC_COPY never gets here (split_copies)
