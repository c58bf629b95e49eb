"""The X11 clipboard (the CLIPBOARD selection) through python-xlib, without Tk.

Theory of operation. On X the clipboard is not a store: the program that "copied" owns the
CLIPBOARD selection and hands the data to whoever asks (ICCCM section 2). So:

  write    we keep the value, take ownership of CLIPBOARD with our own small window, and answer each
           SelectionRequest: TARGETS (what we offer), TIMESTAMP, UTF8_STRING / TEXT / STRING /
           text/plain;charset=utf-8 for text, image/png for an image. Data over CHUNK bytes goes by
           INCR: an INCR property with the size, then one chunk each time the requestor deletes the
           property, then an empty chunk. Another program taking ownership (SelectionClear) ends it.
  read     ConvertSelection(CLIPBOARD, TARGETS), pick text if offered, else image/png, convert
           that, and read the property our window receives (following INCR when the owner uses it).
           Reads are bounded by `max_bytes`: a larger value is reported by size, never truncated.
  changes  XFixes SetSelectionOwnerNotify tells us whenever CLIPBOARD gets a new owner; we read the
           new value then and call the watcher. Without XFixes the owner is polled every POLL_INTERVAL (a
           new value from the same owner window is then missed: XFixes is in every X server
           since 2003, so this is a fallback only). A change whose
           new owner is our own window is our write: not reported (no echo back to the partner).

  closing  on X the value goes with its owner: before our window goes, a clipboard manager (if the
           desktop runs one: GNOME, KDE, xfce do) is asked to keep a copy (freedesktop's
           ClipboardManager spec: convert CLIPBOARD_MANAGER to SAVE_TARGETS and answer its
           requests), so what the partner copied can still be pasted after the session.

One thread ("clipboard-x11") owns the X connection and does all of this; read() and write() from
other threads are commands it picks up (a self-pipe wakes its select()). Waiting for a reply (a
SelectionNotify, an INCR chunk) runs the same event dispatch, so requests from other programs are
still answered meanwhile; every wait has a deadline, and INCR transfers are bounded in number and
time. An X server that goes away ends the thread quietly: the clipboard is then simply not shared.
"""

import logging
import os
import queue
import select
import struct
import threading
import time

from tagio.protocol.session import CLIP_PNG, CLIP_TEXT
from tagio.session.clipboard import DEFAULT_MAX_BYTES, POLL_INTERVAL, Content

log = logging.getLogger("tagio.clipboard")

CHUNK = 64 * 1024           # bytes per ChangeProperty (python-xlib has no BIG-REQUESTS: < 256 KiB)
REPLY_TIMEOUT = 2.0         # seconds for an owner to answer one conversion (or one INCR chunk)
INCR_TIMEOUT = 10.0         # seconds a requestor may take to fetch all of an INCR transfer
HANDOVER_TIMEOUT = 2.0      # seconds a clipboard manager may take to copy our value at close
MAX_INCR = 8                # INCR transfers we serve at once; more requests are refused
COMMANDS = 16               # pending read() commands
PROPERTY = "TAGIO_CLIPBOARD"
TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "TEXT", "STRING")
_ATOMS = ("CLIPBOARD", "TARGETS", "TIMESTAMP", "INCR", "ATOM", "INTEGER", "MULTIPLE", "image/png",
          "CLIPBOARD_MANAGER", "SAVE_TARGETS", PROPERTY) + TEXT_TARGETS


class X11Clipboard:
    def __init__(self, conn, xfixes, max_bytes=DEFAULT_MAX_BYTES):
        from Xlib import X
        self._X = X
        self._conn = conn
        self._xfixes = xfixes           # the python-xlib xfixes module, or None
        self._owner_event = None        # the event type code of XFixes' SelectionNotify
        self.max_bytes = max_bytes
        self._atom = {name: conn.intern_atom(name) for name in _ATOMS}
        self._window = conn.screen().root.create_window(
            -10, -10, 1, 1, 0, X.CopyFromParent, event_mask=X.PropertyChangeMask)
        self._owned = None              # {target atom: (type atom, bytes)} while we own CLIPBOARD
        self._owned_time = X.CurrentTime
        self._incr = {}                 # (requestor id, property) -> [window, type, data, offset, deadline]
        self._changed = False
        self._owner = None              # last owner seen (polling without XFixes)
        self._callback = None
        self._pending_write = None
        self._commands = queue.Queue(maxsize=COMMANDS)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)    # a full pipe already means "wake up"
        self._wake_lock = threading.Lock()      # the write end is closed (None) under it
        self._stop = threading.Event()
        if xfixes is not None:
            first = conn.query_extension(xfixes.extname).first_event
            self._owner_event = first + xfixes.XFixesSelectionNotify
            conn.xfixes_select_selection_input(self._window, self._atom["CLIPBOARD"],
                                               xfixes.XFixesSetSelectionOwnerNotifyMask)
        else:       # what is there already is not a change (nor is it ours to send)
            owner = conn.get_selection_owner(self._atom["CLIPBOARD"])
            self._owner = getattr(owner, "id", owner)
        conn.flush()
        self._thread = threading.Thread(target=self._run, name="clipboard-x11", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, display=None, max_bytes=DEFAULT_MAX_BYTES):
        """Connect to `display` (None: $DISPLAY). Raises what python-xlib raises without a server."""
        from Xlib import display as xdisplay
        from Xlib.ext import xfixes
        conn = xdisplay.Display(display)
        conn.set_error_handler(_x_error)    # a requestor window gone mid-transfer: not our failure
        try:
            if conn.has_extension(xfixes.extname):
                conn.xfixes_query_version()
            else:
                xfixes = None
            return cls(conn, xfixes, max_bytes)
        except Exception:
            conn.close()
            raise

    # -- the interface (any thread) --------------------------------------------------------------
    def read(self, timeout=REPLY_TIMEOUT * 3):
        """(mime, bytes) of what the clipboard holds, or None (empty, too big, no answer)."""
        box, done = [], threading.Event()
        if self._stop.is_set():
            return None
        try:
            self._commands.put_nowait((box, done))
        except queue.Full:
            return None
        self._wake()
        if not done.wait(timeout) or not box or box[0] is None or box[0].data is None:
            return None
        return box[0].mime, box[0].data

    def write(self, mime, data):
        """Own CLIPBOARD with this value (the latest write wins if several wait)."""
        self._pending_write = (mime, bytes(data))
        self._wake()

    def watch(self, callback):
        """callback(Content) from our thread whenever another program changes the clipboard."""
        self._callback = callback

    def close(self):
        self._stop.set()
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    @property
    def notifies(self):
        """True when changes come from XFixes events (else from polling the owner)."""
        return self._xfixes is not None

    def _wake(self):
        with self._wake_lock:       # never write to a closed descriptor's number (it may be reused)
            if self._wake_w is None:
                return
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:     # the pipe is full: a wake-up is pending anyway
                pass

    # -- the thread ------------------------------------------------------------------------------
    def _run(self):
        try:
            while not self._stop.is_set():
                self._dispatch_pending()
                self._do_commands()
                self._expire_incr()
                if self._changed:
                    self._changed = False
                    self._report_change()
                self._sleep()
        except Exception:       # the X server went away (or python-xlib broke): stop sharing
            log.debug("X clipboard thread ended", exc_info=True)
        finally:
            self._shutdown()

    def _sleep(self):
        timeout = None if self._xfixes is not None and not self._incr else POLL_INTERVAL
        if self._conn.pending_events():
            return
        ready, _, _ = select.select([self._conn.fileno(), self._wake_r], [], [], timeout)
        if self._wake_r in ready:
            os.read(self._wake_r, 512)
        if not ready and self._xfixes is None:
            self._poll_owner()

    def _shutdown(self):
        try:
            self._hand_over()
        except Exception:       # the server is gone: nothing to hand over
            log.debug("no clipboard hand-over", exc_info=True)
        while True:         # a read() still waiting gets None now, not after its timeout
            try:
                _box, done = self._commands.get_nowait()
            except queue.Empty:
                break
            done.set()
        try:
            self._window.destroy()
            self._conn.close()
        except Exception:       # the server is gone already
            pass
        with self._wake_lock:
            fds, self._wake_w = (self._wake_r, self._wake_w), None
        for fd in fds:
            os.close(fd)

    def _do_commands(self):
        write, self._pending_write = self._pending_write, None
        if write is not None:
            self._own(*write)
        while True:
            try:
                box, done = self._commands.get_nowait()
            except queue.Empty:
                return
            box.append(self._fetch())
            done.set()

    def _report_change(self):
        content = self._fetch()
        if content is not None and self._callback is not None:
            self._callback(content)

    def _poll_owner(self):
        owner = self._conn.get_selection_owner(self._atom["CLIPBOARD"])
        owner = getattr(owner, "id", owner)
        if owner != self._owner:
            self._owner = owner
            self._changed = owner not in (0, self._window.id)

    # -- events ----------------------------------------------------------------------------------
    def _dispatch_pending(self):
        while self._conn.pending_events():
            self._dispatch(self._conn.next_event())

    def _dispatch(self, event):
        X = self._X
        if event.type == X.SelectionRequest:
            self._serve(event)
        elif event.type == X.SelectionClear:
            if event.window.id == self._window.id and event.atom == self._atom["CLIPBOARD"]:
                self._owned = None
        elif event.type == X.PropertyNotify and event.state == X.PropertyDelete:
            self._incr_next(event)
        elif event.type == self._owner_event and event.sub_code == self._xfixes.XFixesSetSelectionOwnerNotify:
            owner = getattr(event.owner, "id", event.owner)
            if event.selection == self._atom["CLIPBOARD"] and owner not in (0, self._window.id):
                self._changed = True

    def _wait_event(self, match, deadline, stoppable=True):
        """The first event `match(event)` accepts, dispatching the others; None at the deadline
        (or once close() was asked, when `stoppable`)."""
        while True:
            while self._conn.pending_events():
                event = self._conn.next_event()
                if match(event):
                    return event
                self._dispatch(event)
            left = deadline - time.monotonic()
            if left <= 0 or (stoppable and self._stop.is_set()):
                return None
            select.select([self._conn.fileno()], [], [], min(left, 0.5))

    # -- writing: owning the selection -----------------------------------------------------------
    def _own(self, mime, data):
        a = self._atom
        if mime == CLIP_TEXT:
            latin = data.decode("utf-8").encode("latin-1", "replace")
            owned = {a[t]: (a["UTF8_STRING"], data) for t in TEXT_TARGETS[:3]}
            owned[a["STRING"]] = (a["STRING"], latin)
        elif mime == CLIP_PNG:
            owned = {a["image/png"]: (a["image/png"], data)}
        else:
            return
        self._owned_time = self._server_time()
        self._window.set_selection_owner(a["CLIPBOARD"], self._owned_time)
        self._owned = owned
        self._conn.flush()

    def _server_time(self):
        """An X timestamp (ICCCM: never own a selection at CurrentTime): a zero-length append to a
        property of our window makes the server send a PropertyNotify carrying its time."""
        X, prop = self._X, self._atom[PROPERTY]
        self._window.change_property(prop, self._atom["INTEGER"], 32, [], X.PropModeAppend)
        self._conn.flush()
        event = self._wait_event(lambda e: e.type == X.PropertyNotify and e.window.id == self._window.id
                                 and e.atom == prop, time.monotonic() + REPLY_TIMEOUT)
        return event.time if event is not None else X.CurrentTime

    def _serve(self, event):
        """Answer one SelectionRequest (ICCCM 2.2); anything we do not offer is refused."""
        X, a = self._X, self._atom
        prop = event.property or event.target      # obsolete requestors leave the property None
        offer = self._owned if event.selection == a["CLIPBOARD"] else None
        requestor = event.requestor
        if offer is None:
            prop = X.NONE
        elif event.target == a["TARGETS"]:
            targets = [a["TARGETS"], a["TIMESTAMP"]] + list(offer)
            requestor.change_property(prop, a["ATOM"], 32, targets)
        elif event.target == a["TIMESTAMP"]:
            requestor.change_property(prop, a["INTEGER"], 32, [self._owned_time])
        elif event.target in offer:
            if not self._put(requestor, prop, *offer[event.target]):
                prop = X.NONE
        else:
            prop = X.NONE
        self._notify(event, prop)

    def _notify(self, request, prop):
        from Xlib.protocol import event as xevent
        reply = xevent.SelectionNotify(time=request.time, requestor=request.requestor,
                                       selection=request.selection, target=request.target,
                                       property=prop)
        request.requestor.send_event(reply, event_mask=0)
        self._conn.flush()

    def _put(self, requestor, prop, type_atom, data):
        """Store `data` in the requestor's property, or start an INCR transfer; False if refused."""
        if len(data) <= CHUNK:
            requestor.change_property(prop, type_atom, 8, data)
            return True
        if len(self._incr) >= MAX_INCR:
            return False
        requestor.change_attributes(event_mask=self._X.PropertyChangeMask)
        requestor.change_property(prop, self._atom["INCR"], 32, [len(data)])
        deadline = time.monotonic() + INCR_TIMEOUT
        self._incr[(requestor.id, prop)] = [requestor, type_atom, data, 0, deadline]
        return True

    def _incr_next(self, event):
        """The requestor deleted the property: the next chunk (an empty one ends the transfer)."""
        key = (event.window.id, event.atom)
        transfer = self._incr.get(key)
        if transfer is None:
            return
        window, type_atom, data, offset, _ = transfer
        chunk = data[offset:offset + CHUNK]
        window.change_property(event.atom, type_atom, 8, chunk)
        if chunk:
            transfer[3] = offset + len(chunk)
            transfer[4] = time.monotonic() + INCR_TIMEOUT
        else:
            self._end_incr(key)
        self._conn.flush()

    def _expire_incr(self):
        now = time.monotonic()
        for key in [k for k, t in self._incr.items() if t[4] < now]:
            self._end_incr(key)

    def _end_incr(self, key):
        """Forget a transfer; stop hearing the requestor's property changes once none is left."""
        window = self._incr.pop(key)[0]
        if window.id != self._window.id and not any(k[0] == window.id for k in self._incr):
            window.change_attributes(event_mask=0)

    def _hand_over(self):
        """Ask the clipboard manager, if any, to keep a copy of the value we own (we answer its
        requests while we wait, at most HANDOVER_TIMEOUT)."""
        X, a = self._X, self._atom
        if self._owned is None:
            return
        manager = self._conn.get_selection_owner(a["CLIPBOARD_MANAGER"])
        if getattr(manager, "id", manager) in (0, None):
            return
        self._window.change_property(a[PROPERTY], a["ATOM"], 32, list(self._owned))
        self._window.convert_selection(a["CLIPBOARD_MANAGER"], a["SAVE_TARGETS"], a[PROPERTY], X.CurrentTime)
        self._conn.flush()
        self._wait_event(lambda e: e.type == X.SelectionNotify and e.selection == a["CLIPBOARD_MANAGER"],
                         time.monotonic() + HANDOVER_TIMEOUT, stoppable=False)

    # -- reading: converting the selection -------------------------------------------------------
    def _fetch(self):
        """What CLIPBOARD holds now as Content (text before an image), or None."""
        a = self._atom
        if self._owned is not None:     # our own value: no round trip through the server
            return self._own_content()
        targets = self._convert(a["TARGETS"])
        offered = set(_atoms(targets[1])) if targets is not None and targets[0] == a["ATOM"] else None
        for target, mime in ((a["UTF8_STRING"], CLIP_TEXT), (a["text/plain;charset=utf-8"], CLIP_TEXT),
                             (a["image/png"], CLIP_PNG), (a["STRING"], CLIP_TEXT)):
            if offered is not None and target not in offered:
                continue
            got = self._convert(target)
            if got is not None:
                return self._content(mime, target, *got)
        return None

    def _own_content(self):
        text = self._owned.get(self._atom["UTF8_STRING"])
        mime, (_type, data) = (CLIP_TEXT, text) if text else (CLIP_PNG, self._owned[self._atom["image/png"]])
        return Content(mime, data if len(data) <= self.max_bytes else None, len(data))

    def _content(self, mime, target, type_atom, value, size):
        if value is None:
            return Content(mime, None, size)
        data = bytes(value)
        if target == self._atom["STRING"]:
            data = data.decode("latin-1").encode("utf-8")
        elif mime == CLIP_TEXT:
            data = data.decode("utf-8", "replace").encode("utf-8")
        return Content(mime, data, len(data))

    def _convert(self, target):
        """Ask the owner for `target`: (type atom, value, size) with value None when over
        max_bytes; None when refused, unanswered, or nobody owns the clipboard."""
        X, a = self._X, self._atom
        self._window.convert_selection(a["CLIPBOARD"], target, a[PROPERTY], X.CurrentTime)
        self._conn.flush()
        reply = self._wait_event(lambda e: e.type == X.SelectionNotify and e.requestor.id == self._window.id,
                                 time.monotonic() + REPLY_TIMEOUT)
        if reply is None or reply.property == X.NONE:
            return None
        got = self._window.get_property(a[PROPERTY], X.AnyPropertyType, 0, self.max_bytes // 4 + 1, True)
        if got is None:
            return None
        if got.property_type == a["INCR"]:
            return self._receive_incr()
        value = got.value
        size = _byte_len(got) + got.bytes_after
        if got.bytes_after or size > self.max_bytes:
            self._window.delete_property(a[PROPERTY])
            return got.property_type, None, size
        return got.property_type, _as_bytes(value, got.format), size

    def _receive_incr(self):
        """Collect an INCR transfer: each new value of our property is a chunk, an empty one ends."""
        X, prop = self._X, self._atom[PROPERTY]
        parts, size, type_atom = [], 0, None
        give_up = time.monotonic() + INCR_TIMEOUT      # an owner that never ends its stream
        while True:
            event = self._wait_event(lambda e: e.type == X.PropertyNotify and e.window.id == self._window.id
                                     and e.atom == prop and e.state == X.PropertyNewValue,
                                     min(give_up, time.monotonic() + REPLY_TIMEOUT))
            if event is None:
                return None
            # A chunk is deleted (asking for the next) only when read whole: read up to max_bytes.
            got = self._window.get_property(prop, X.AnyPropertyType, 0, self.max_bytes // 4 + 1, True)
            if got is None:
                return None
            chunk = _as_bytes(got.value, got.format)
            if got.bytes_after:
                self._window.delete_property(prop)
                self._conn.flush()
            if not chunk:
                break
            type_atom = got.property_type
            size += len(chunk) + got.bytes_after
            if size <= self.max_bytes and parts is not None:
                parts.append(chunk)
            else:
                parts = None
        return type_atom, (b"".join(parts) if parts is not None else None), size


def _as_bytes(value, fmt):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin-1")
    width = {8: "B", 16: "H", 32: "I"}[fmt]
    import array
    return array.array(width, value).tobytes()


def _atoms(data):
    """A TARGETS value (32-bit atoms, made bytes by _as_bytes) as atom numbers. Read as bytes, no
    atom above 255 was ever offered: on a real desktop that is every target, and nothing copied
    there crossed."""
    if data is None:
        return ()
    count = len(data) // 4
    return struct.unpack(f"={count}I", data[:count * 4])


def _byte_len(got):
    value = got.value
    return len(value) * (got.format // 8 if not isinstance(value, (bytes, str)) else 1)


def _x_error(error, request):
    log.debug("X error in the clipboard: %s", error)
