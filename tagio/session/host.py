"""The host side of a session: screen -> change detection -> encode -> channel, and input back.

Theory of operation. Seven threads, joined by bounded queues, stopped by one Event; HostSession
holds their shared state and is put together from one class per side:

  capture  (host_capture.HostCapture) waits for flow control and the fps cap, grabs what changed
           (guided by X damage where the server reports it), sends Cursor, switches monitors,
           pauses on a secure desktop (Windows); hands each frame's changed grabs to encode.
  encode   (host_encode.HostEncode) turns changed tiles into Copy (scrolled rows) / fill / PNG /
           JPEG rectangles packed into Frame messages, and picks the JPEG quality (on a link too
           slow for quality 40, large moving photos at a reduced scale: tagio.session.scaled). Tiles
           last sent lossy get their lossless version once still, budgeted by the measured rate
           (tagio.session.refresh). A small frame is encoded on the capture thread while this one
           is idle (cheaper than a handover).
  send     writes what the other threads queue to the channel, in order; hands each frame's size
           to flow control. A frame part or Cursor made while nothing waits in its queue is written
           by the thread that made it instead (`_send_or_queue`: a handover costs more than
           writing 1 KB), under the same lock, so messages still go out in the order they were made.
  receive  reads the channel and dispatches through a table: FrameAck feeds flow control (once the
           viewer's ViewerCapabilities names CAP_ACK_UPTO, an ack of frame N stands for every frame
           sent before it too: a viewer of small fast frames acks about every other one); input goes
           to the inject queue (dropped in view-only mode); SetQuality/SelectMonitor adjust capture.
  inject   (host_input.HostInput) replays input with pynput or XTest (loaded lazily; without it the
           host is view-only).
  files    the file engine's pump (tagio.session.files): reads the data of accepted transfers and
           queues it behind the frames, at most files.WINDOW chunks at a time, so a frame never
           waits behind more than that while a transfer runs. Files are allowed only with
           `files_dir` (the one folder a viewer may list, fetch from and write to); chat always.
  heartbeat  pings a silent viewer and ends the session when it stays silent (heartbeat.py).

Clipboard (tagio.session.clipboard_sync): unless the session is view-only or `clipboard` is False,
a ClipboardLink watches this machine's clipboard and sends its changes, and the viewer's Clipboard
messages are applied here; it runs its own threads and is closed with the session.

Pull-based flow control, in bytes and time, means a slow link or slow viewer lowers the frame rate
while no queue grows, and a long RTT no longer does. JPEG quality adapts: it drops when acks come back
slowly and recovers towards the requested quality, and while flow control holds frames back it is
capped where a frame fits the measured rate (flow.QualityPolicy).
A peer that breaks the protocol ends the session with RemoteProtocolError (sent to it as Bye, and
re-raised by join()); the process itself never crashes.
"""

import collections
import logging
import queue
import sys
import threading
import time

from tagio.errors import RemoteProtocolError, SecureChannelError, TagioError, TransportError
from tagio.protocol import session as m
from tagio.protocol.version import CAP_ACK_UPTO, CAP_FILES, CAP_SCALED_RECT, CLIPBOARD
from tagio.session import capture_win32 as win
from tagio.session import motion, scaled
from tagio.session.chat import ChatLog, chat_pieces
from tagio.session.damage import DamageProbe
from tagio.session.files import FileEngine
from tagio.session.flow import FlowControl, QualityPolicy
from tagio.session.heartbeat import Heartbeat, answer
from tagio.session.refresh import StillRefresh
from tagio.session.host_capture import ALL_MONITORS, MAX_IN_FLIGHT, HostCapture, grab, next_tick
from tagio.session.host_encode import MIN_QUALITY, MOTION_QUALITY_DROP, HostEncode
from tagio.session.host_input import HostInput
from tagio.session.workers import Workers, last_words

# The session, and names older callers and tests import from here (benches switch X damage off
# through DamageProbe).
__all__ = ["HostSession", "bye_text", "DamageProbe", "ALL_MONITORS", "MAX_IN_FLIGHT", "MIN_QUALITY",
           "MOTION_QUALITY_DROP", "grab", "next_tick", "STOP_JOIN"]

log = logging.getLogger(__name__)

MAX_FPS = 60
INPUT_QUEUE = 256
BYE_TIMEOUT = 1.0
STATS_EVERY = 0.25      # seconds between refreshes of the flow figures in `stats` (rate, RTT, budget)
INLINE_SEND = 64 * 1024  # bytes: a frame part or Cursor up to this size may skip the send thread
STOP_JOIN = 5.0         # seconds an ended session's threads get to stop before join() returns anyway
# Where the screen has no damage reports, poll it by scanlines (capture_win32.ScanProbe) rather than
# grabbing and comparing it whole every frame: Windows, and an X server without DAMAGE. A one-row
# grab is a cheap round trip there; macOS composites a whole picture for any grab, so it keeps
# whole-screen polling.
SCAN_WITHOUT_DAMAGE = win.WINDOWS or sys.platform.startswith("linux")


def bye_text(exc):
    """What to tell the partner when an error ends the session (no secrets: errors carry none)."""
    if isinstance(exc, RemoteProtocolError):
        return f"protocol error: {exc}"[:200]
    if isinstance(exc, (TransportError, SecureChannelError)):
        return "connection lost"
    return f"host error: {exc}"[:200]


class HostSession(HostCapture, HostEncode, HostInput):
    def __init__(self, channel, *, monitor=1, view_only=False, fps_cap=30, quality=75, on_event=None,
                 display=None, clipboard=True, files_dir=None, grabber=None):
        self.channel = channel
        self.clipboard = None       # ClipboardLink while the clipboard is shared
        self._clipboard_wanted = clipboard
        self.view_only = view_only
        self.fps_cap = min(max(int(fps_cap), 1), MAX_FPS)
        self.quality = self.target_quality = min(max(int(quality), 1), 100)
        self.on_event = on_event or (lambda name, **fields: None)
        self.display = display      # X display for capture (None: $DISPLAY)
        self._grabber_factory = grabber     # tests: a stand-in for mss.MSS (called with **kwargs)
        self.pause_on_grab_failure = win.WINDOWS    # a failed grab pauses (Windows) or ends the session
        self.pause_retry = win.PAUSE_RETRY
        self.scan_for_changes = SCAN_WITHOUT_DAMAGE  # no damage reports: scanline polling (capture_win32)
        self.paused = False
        self._secure, self._secure_at = None, 0.0   # capture_win32.SecureDesktop (Windows), next check
        self.refuse_secure_attention = win.WINDOWS  # Ctrl+Alt+Del: say why instead of sending it
        self._sas = win.SecureAttentionWatch()
        self._notice = None                         # text for the capture thread to show the viewer
        self._notice_hold = win.NoticeHold()
        self._elevated = None                       # capture_win32.ElevatedForeground (Windows)
        self.stats = {"frames": 0, "bytes": 0, "fps": 0.0, "latency_ms": 0, "quality": self.quality}
        self._monitor_wanted = monitor
        self._monitor_switch = threading.Event()    # set by SelectMonitor (same index = full refresh)
        self._credit = threading.Condition()
        self._in_flight = {}         # frame id -> capture time, in send order
        self._ack_upto = False       # the viewer said its FrameAck stands for older frames too
        self._flow = FlowControl(max_frames=MAX_IN_FLIGHT)     # under self._credit
        self._unsent = 0             # frames captured, not yet sent (under self._credit)
        self._encoding = 0           # frames queued for the encoder or being encoded (self._credit)
        # Encode thread only. can_scale: set once the viewer says it takes scaled rectangles.
        self._policy = QualityPolicy(target_quality=self.quality, can_scale=False)
        self._row_hashes = (None, None, None)   # (last grab, region, its row hashes): encode thread
        self._search_gate = motion.SearchGate(time.monotonic)   # pauses a scroll search that finds nothing
        self._speed = scaled.SpeedChoice()      # scales motion the CPU cannot keep up with
        self._latency_ms = 0
        self._encode_q = queue.Queue(maxsize=2)
        self._send_q = queue.Queue(maxsize=8)
        self._send_gate = threading.Lock()  # held while a message is written to the channel
        self._frame_bytes = 0        # bytes of the frame being written so far (under _send_gate)
        self._input_q = queue.Queue(maxsize=INPUT_QUEUE)
        self._refresh = StillRefresh()
        self._refresh_lock = threading.Lock()
        self._fps_times = collections.deque()   # send times of the frames of the last second
        self._stats_at = 0.0         # when the flow figures in stats were last refreshed
        self._injector = None
        self._teardown = threading.Lock()     # input is closed once (stop() and join() race)
        self._moving = False
        self._cursor = None         # CursorTracker, owned by the capture thread
        self._workers = Workers("host", on_error=self._ended_by_error)
        self.files = FileEngine(lambda msg: self._queue(m.Files(msg)), root=files_dir, first_tid=1,
                                on_event=self.on_event, share=self._flow.share)
        self.chat = ChatLog()
        self._heartbeat = Heartbeat()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self):
        if not self.view_only:
            self._open_injector()
        if self._clipboard_wanted and not self.view_only:
            self._open_clipboard()
        w = self._workers
        w.spawn("capture", self._capture_loop)
        w.spawn("encode", self._encode_loop)
        w.spawn("send", self._send_loop)
        w.spawn("receive", self._receive_loop)
        w.spawn("inject", self._inject_loop)
        w.spawn("files", lambda: self.files.pump(w.stopping))
        self._heartbeat.heard()
        w.spawn("heartbeat", lambda: self._heartbeat.run(w.stopping, self._offer))

    def _capabilities(self):
        """What this session offers the viewer: no clipboard bits unless the clipboard is shared
        (view-only, or switched off), so the viewer does not even send its own; files only with a
        files folder."""
        offered = m.SESSION_CAPABILITIES
        if self.clipboard is None:
            offered &= ~CLIPBOARD
        if self.files.root is None:             # no files folder: nothing to list, fetch or write
            offered &= ~CAP_FILES
        return offered

    def _open_clipboard(self):
        from tagio.session.clipboard_sync import ClipboardLink
        self.clipboard = ClipboardLink.open(
            self._queue, lambda text: self.on_event("clipboard_notice", message=text), display=self.display)

    def _close_clipboard(self):
        if self.clipboard is not None:
            self.clipboard.close()      # idempotent, and safe from two threads at once

    def stop(self, reason="host ended the session"):
        """Say Bye, stop and join every thread. Never raises; join() reports a failure."""
        if not self._workers.stopping.is_set():
            self._workers.stop()
            last_words(self.channel, m.encode(m.Bye(reason[:200])), BYE_TIMEOUT)
        self._close_channel()
        self._workers.join(timeout=5, reraise=False)
        self._release_input()
        self._close_clipboard()

    def join(self, timeout=None):
        """Wait for the session to end; re-raise the error that ended it, if any."""
        self._workers.stopping.wait(timeout)
        if self._workers.stopping.is_set():
            self._close_channel()
            if timeout is None:         # ended: the threads get STOP_JOIN, not for ever
                timeout = STOP_JOIN
        try:
            self._workers.join(timeout)
            self._report_stuck()
        finally:
            self._release_input()
            if not self._workers.alive():
                self._close_clipboard()

    def _report_stuck(self):
        """A thread that outlived its session's end is our bug: the session still ends (a host
        must not keep a ghost session), and the log names the thread."""
        stuck = self._workers.stuck() if self._workers.stopping.is_set() else []
        if stuck:
            log.error("host session ended but threads did not stop within %.0f s: %s", STOP_JOIN,
                      ", ".join(stuck))

    def send_clipboard(self, text):
        """Offer this text as the host's clipboard to the viewer (any thread; ignored once
        stopping). Raises LocalProtocolError over MAX_CLIPBOARD: never a silent truncation."""
        self._queue(m.Clipboard.of_text(text))

    def send_chat(self, text):
        """Send one chat line to the viewer (any thread). Raises ValueError for an empty or huge line."""
        for piece in chat_pieces(text):
            self._queue(m.Chat(piece))
        self.chat.add("me", text)

    @property
    def running(self):
        return not self._workers.stopping.is_set()

    def _ended_by_error(self, exc):
        if isinstance(exc, TagioError):
            self.on_event("error", message=str(exc))
        last_words(self.channel, m.encode(m.Bye(bye_text(exc))), BYE_TIMEOUT)
        self._close_channel()

    def _close_channel(self):
        self.files.close()
        with self._credit:
            self._credit.notify_all()
        try:
            self.channel.close()
        except Exception:       # closing twice or a dead transport: nothing left to do
            pass

    def _queue(self, msg):
        self._workers.put(self._send_q, m.encode(msg))

    def _offer(self, msg):
        """Queue a heartbeat message without waiting: a full send queue means the path is stuck,
        and the heartbeat's own silence check ends the session then."""
        try:
            self._send_q.put_nowait(m.encode(msg))
        except queue.Full:
            pass


    # -- send --------------------------------------------------------------------------------
    def _send_loop(self):
        while True:
            data = self._workers.get(self._send_q)
            if data is None:
                return
            with self._send_gate:
                self._write(data)
            self._send_q.task_done()    # after the write: _send_or_queue must see it pending until then

    def _send_or_queue(self, data):
        """Write a frame part or Cursor message from the capture (or encode) thread itself when
        nothing waits for the send thread, else queue it; False when stopping. Handing a 1 KB frame
        to the send thread (a queue, a thread woken up) cost more than writing it. Order is kept:
        the send queue counts a message as unfinished from its put() until the send thread wrote it,
        and both write under _send_gate, so a message queued earlier is never overtaken."""
        if len(data) <= INLINE_SEND and self._send_gate.acquire(blocking=False):
            try:
                if not self._send_q.unfinished_tasks and not self._workers.stopping.is_set():
                    self._write(data)
                    return True
            finally:
                self._send_gate.release()
        return self._workers.put(self._send_q, data)

    def _write(self, data):
        """Write one encoded message to the channel (the caller holds _send_gate)."""
        if data[0] != 2:            # not a Frame part (the Frame type code)
            self.channel.send(data)
            self.stats["bytes"] += len(data)
            self.files.sent(data)       # a file chunk's window slot is free again
            return
        # A Frame part: count it; the FINAL part (flags byte after the frame id) hands the frame
        # to flow control before it goes out.
        self._frame_bytes += len(data)
        final = data[5] & m.FINAL
        if final:
            self._frame_sent(int.from_bytes(data[1:5], "big"), self._frame_bytes)
            self._frame_bytes = 0
        self.channel.send(data)
        self.stats["bytes"] += len(data)
        if final:
            self._count_frame()

    def _frame_sent(self, frame_id, size):
        # Before channel.send: the viewer's ack must never find the frame unknown to flow control.
        with self._credit:
            self._flow.sent(frame_id, size)
            self._unsent -= 1
            self._credit.notify_all()

    def _count_frame(self):
        times, stats = self._fps_times, self.stats
        now = time.monotonic()
        since = now - 1.0
        while times and times[0] <= since:
            times.popleft()
        times.append(now)
        stats["frames"] += 1
        stats["fps"] = float(len(times))

    # -- receive -----------------------------------------------------------------------------
    def _receive_loop(self):
        stopping, heard, handlers = self._workers.stopping, self._heartbeat.heard, self._HANDLERS
        while not stopping.is_set():
            msg = m.decode(self.channel.recv())
            heard()
            handler = handlers.get(type(msg))
            if handler is None:
                raise RemoteProtocolError(f"viewer sent a host-only message: {type(msg).__name__}")
            handler(self, msg)

    def _on_ack(self, msg):
        with self._credit:
            captured = self._in_flight.get(msg.frame_id)
            if captured is None:
                raise RemoteProtocolError(f"acknowledgement for unknown frame {msg.frame_id}")
            if self._ack_upto:
                self._ack_older(msg.frame_id)
            del self._in_flight[msg.frame_id]
            self._flow.acked(msg.frame_id)
            self._credit.notify_all()
            now = time.monotonic()
            if now >= self._stats_at:       # figures for people: a few times a second is enough
                self._stats_at = now + STATS_EVERY
                est = self._flow.estimator
                self.stats.update(rate_kbit=int((est.rate or 0) * 8 / 1000), rtt_ms=int((est.min_rtt or 0) * 1000),
                                  budget_kb=self._flow.budget() // 1024)
        elapsed = now - captured
        self._latency_ms = int(elapsed * 1000)
        self.stats["latency_ms"] = self._latency_ms
        self._adapt_quality(elapsed)

    def _ack_older(self, frame_id):
        """CAP_ACK_UPTO: the ack of `frame_id` stands for every frame sent before it (under
        _credit). Popped in send order (the dict's), not by comparing ids, which wrap at 2**32;
        each still gives flow control its own sample (a late one only a longer RTT, which the
        min filter ignores)."""
        in_flight, acked = self._in_flight, self._flow.acked
        while (oldest := next(iter(in_flight))) != frame_id:
            del in_flight[oldest]
            acked(oldest)

    def _on_quality(self, msg):
        self.quality = self.target_quality = self._policy.target_quality = msg.quality
        if msg.fps_cap:
            self.fps_cap = msg.fps_cap

    def _on_select_monitor(self, msg):
        self._monitor_wanted = msg.index
        self._monitor_switch.set()

    def _on_clipboard(self, msg):
        if self.clipboard is not None:
            self.clipboard.received(msg)    # not in view-only: then there is no link
        self.on_event("clipboard", text=msg.text)

    def _on_files(self, msg):
        self.files.handle(msg.msg)

    def _on_chat(self, msg):
        self.chat.add("partner", msg.text)
        self.on_event("chat", text=msg.text)

    def _on_viewer_capabilities(self, msg):
        # The viewer takes scaled rectangles only when it says so (an older one never does).
        taken = msg.capabilities & self._capabilities()
        self._policy.can_scale = bool(taken & CAP_SCALED_RECT)
        self._ack_upto = bool(taken & CAP_ACK_UPTO)     # read by this (the receive) thread only

    def _on_bye(self, msg):
        self.on_event("closed", reason=msg.text or "viewer left")
        self._workers.stop()
        self._close_channel()

    def _on_ping(self, msg):
        self._offer(answer(msg))

    def _on_pong(self, msg):
        pass            # heard() already noted it

    _on_input = HostInput._on_input
    _HANDLERS = {
        m.Ping: _on_ping, m.Pong: _on_pong, m.FrameAck: _on_ack, m.Mouse: _on_input, m.Key: _on_input, m.Scroll: _on_input,
        m.Text: _on_input, m.SetQuality: _on_quality, m.SelectMonitor: _on_select_monitor,
        m.Clipboard: _on_clipboard, m.Bye: _on_bye, m.Files: _on_files, m.Chat: _on_chat,
        m.ViewerCapabilities: _on_viewer_capabilities,
    }

