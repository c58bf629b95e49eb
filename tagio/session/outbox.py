"""The viewer's outbox: input and acknowledgements handed from any thread to one sender thread.

Theory of operation. The Tk thread must never wait on the network, yet a channel's send() blocks
while the path is congested. So ViewerSession's send_* methods and displayed() only put an
encoded message here and return; one sender thread owned by the session takes everything waiting
as a batch and writes it to the channel. Input goes first: a batch holds the waiting input, then
the waiting acknowledgements (a batch at a time, so a stream of mouse moves cannot starve the
acknowledgements and freeze the host's picture).

The outbox is bounded (MAX_INPUT messages and MAX_INPUT_BYTES of input, MAX_ACKS acknowledgements),
and what happens when it is full depends on the kind of message:

  MOVE   a mouse move replaces a move still waiting at the tail (only the newest position matters;
         a move never jumps over a click). With the outbox full of other input it is dropped and
         counted: the next button event carries its own position.
  INPUT  keys, buttons, clicks, text, scrolls, clipboard, monitor and quality choices are never
         dropped silently: put() returns False, because an outbox full of them means the path has
         taken nothing for a long while and the session is effectively dead; the session ends
         itself and says so.
  FILE   file-transfer and chat messages (tagio.session.files): sent after the input and the
         acknowledgements of the same batch, so files never delay a key or the picture by more than
         what is already on the wire. The file engine keeps at most a couple of chunks here (its
         window); when MAX_FILES wait, put() waits up to its grace like INPUT.
  ACK    frame acknowledgements. Unless both sides have CAP_ACK_UPTO the host counts each frame it
         sent until its own FrameAck comes back (tagio.session.host), so an acknowledgement cannot
         stand for older ones: they wait side by side, in order (with the capability the viewer
         sends fewer, tagio.session.acks, still in order). A well-behaved host has at most a
         couple of frames unacknowledged, so MAX_ACKS is never reached unless the path is
         stalled; then put() returns False, as for INPUT.
  ACK_UPTO  an acknowledgement that stands for every earlier frame (CAP_ACK_UPTO agreed): it
         replaces an acknowledgement still waiting at the tail, as a move replaces a move, since it
         says all that one said.

put() never waits, except in one case: when a message that must not be dropped finds the outbox
full, it gives the sender `grace` seconds (a few milliseconds) to take what waits. A burst that ran
ahead of a sender thread not yet scheduled is not a stalled path; a sender stuck in send() makes
no room, and put() says so.

close() lets the sender finish what is waiting (a script's last key goes out before the Bye);
abandon() drops everything (the session is over). take() returns None after either, once there is
nothing left to send.
"""

import collections
import threading

MAX_INPUT = 256             # input messages waiting (a human types a few per second)
MAX_INPUT_BYTES = 4 << 20   # ... and their bytes (a clipboard is at most 256 KiB)
MAX_ACKS = 64               # acknowledgements waiting
MAX_FILES = 32              # file-transfer messages waiting (chunks: the engine's window)
MOVE, INPUT, ACK, FILE, ACK_UPTO = "move", "input", "ack", "file", "ack-upto"


class Outbox:
    def __init__(self, max_input=MAX_INPUT, max_bytes=MAX_INPUT_BYTES, max_acks=MAX_ACKS,
                 max_files=MAX_FILES):
        self.max_input, self.max_bytes, self.max_acks = max_input, max_bytes, max_acks
        self.max_files = max_files
        self._files = collections.deque()
        self.dropped_moves = 0
        self._cond = threading.Condition()
        self._input = collections.deque()   # (kind, bytes), in the order they were put
        self._input_bytes = 0
        self._acks = collections.deque()
        self._closing = False
        self._abandoned = False

    def put(self, data: bytes, kind=INPUT, grace=0.0) -> bool:
        """Queue one encoded message. False only when a message that must not be dropped (INPUT,
        ACK) finds the outbox full and the sender does not make room within `grace` seconds (a
        burst that ran ahead of a sender not yet scheduled is not a stalled path). Never waits
        otherwise. After close()/abandon() messages are ignored: the session is ending."""
        with self._cond:
            if kind == MOVE and self._replace_tail_move(data):
                return True
            if kind == ACK_UPTO:
                if self._acks and not (self._closing or self._abandoned):
                    self._acks[-1] = data       # the newer ack covers the one waiting
                    return True
                kind = ACK
            wait = 0.0 if kind == MOVE else grace       # a move is not worth any wait
            if not self._cond.wait_for(lambda: self._has_room(kind, len(data)), wait):
                if kind != MOVE:
                    return False
                self.dropped_moves += 1
                return True
            if not (self._closing or self._abandoned):
                self._append(kind, data)
            return True

    def _append(self, kind, data):
        if kind == ACK:
            self._acks.append(data)
        elif kind == FILE:
            self._files.append(data)
        else:
            self._input.append((kind, data))
            self._input_bytes += len(data)
        self._cond.notify_all()

    def _replace_tail_move(self, data):
        if self._closing or self._abandoned or not self._input or self._input[-1][0] != MOVE:
            return False
        self._input_bytes += len(data) - len(self._input[-1][1])
        self._input[-1] = (MOVE, data)
        return True

    def _has_room(self, kind, size):
        if self._closing or self._abandoned:
            return True         # nothing is kept any more: never a reason to wait
        if kind == ACK:
            return len(self._acks) < self.max_acks
        if kind == FILE:
            return len(self._files) < self.max_files
        return len(self._input) < self.max_input and self._input_bytes + size <= self.max_bytes

    def take(self, timeout=None):
        """Sender thread: everything waiting, input first ([] after `timeout` seconds with
        nothing), or None once closed and empty, or abandoned."""
        with self._cond:
            self._cond.wait_for(self._ready, timeout)
            if self._abandoned:
                return None
            batch = [data for _kind, data in self._input] + list(self._acks) + list(self._files)
            self._input.clear()
            self._acks.clear()
            self._files.clear()
            self._input_bytes = 0
            self._cond.notify_all()         # a put() may wait for room
            return None if not batch and self._closing else batch

    def _ready(self):
        return bool(self._input or self._acks or self._files or self._closing or self._abandoned)

    def close(self) -> bool:
        """Take no more messages; take() hands out what waits, then None. True for the call that
        closed it (neither closed nor abandoned before)."""
        with self._cond:
            first = not (self._closing or self._abandoned)
            self._closing = True
            self._cond.notify_all()
            return first

    def abandon(self) -> bool:
        """Drop everything; take() returns None from now on. True for the call that abandoned it."""
        with self._cond:
            first = not self._abandoned
            self._abandoned = True
            self._input.clear()
            self._acks.clear()
            self._files.clear()
            self._input_bytes = 0
            self._cond.notify_all()
            return first

    def pending(self):
        """(input messages, input bytes, acknowledgements) waiting now."""
        with self._cond:
            return len(self._input), self._input_bytes, len(self._acks)
