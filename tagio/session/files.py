"""The file-transfer engine of one session side: messages in, messages out, no network I/O.

Theory of operation. A session (host or viewer) owns one FileEngine and gives it `send(msg)`, which
posts one file message to the partner (the session wraps it in a session `Files` message), and a
thread that runs `pump(stopping)`. The session's receive thread hands every incoming file message
to `handle(msg)`; its sender calls `sent(data)` for every record it wrote, which frees the window
of chunks in flight (WINDOW: the screen and input never wait behind more than that much file data
the session has queued, and a pump never runs ahead of the path). Beyond the session, the data on
its way through the path is bounded too: the receiver acknowledges what it got (Got) and the pump
keeps only a window in flight that adds little queue in front of the screen and input
(files_flow: LEDBAT-like, yielding to them).

Transfers are Outgoing (files_send: we are the sender) or Incoming (files_receive: we receive),
keyed by a transfer id unique in the session (the viewer allocates even ids, the host odd ones).
Each has a state machine (files_states: the states are Enums, the transitions one table each); a
message that has no entry for the current state is the partner breaking the protocol
(RemoteProtocolError ends the session).

Reconnect: when a session's path breaks, `close()` marks what was still moving as cut (the
`transfer_done` event says `cut=True`; parts stay on disk). After the reconnect the front end hands
the broken session's engine to the new one: `carry(old)` offers our sends again and asks for our
fetches again, with new transfer ids after the old ones. The receiver finds its parts and answers
RESUME with their block hashes, so the data continues from where it stopped (files_send), and
files that had arrived are skipped as already there. Transfers the partner started are the
partner's to carry; cancelled or failed ones are not carried.

Permission: `root` is the one folder a partner may list, fetch from and write to (the host's files
folder). Without it every request and offer is refused with a sentence. A viewer never takes files
it did not ask for: an Offer is accepted only for a transfer it opened with fetch().

Events (`on_event(name, **fields)`, from the receive or pump thread): file_progress(tid, direction,
bytes, total, files, files_total), file_refused(tid, direction, path, reason), file_error(tid,
direction, path, message), transfer_done(tid, direction, ok, verified, failed, refused, skipped,
bytes, message, cut) (cut: the session ended under it), listing(req, path, entries, error,
truncated), changed(req, error) (the answer to our make_dir / rename / delete; the host side does
them with tagio.session.files_actions).
"""

import os
import threading
import time

from tagio.errors import RemoteProtocolError
from tagio.protocol import files as f
from tagio.protocol import session as sm
from tagio.session import files_actions, files_disk as disk
from tagio.session.files_flow import AckRule, FileWindow
from tagio.session.files_names import FileRefused, check_path
from tagio.session.files_receive import Incoming
from tagio.session.files_send import Outgoing, split_offers
from tagio.session.files_states import _FINAL, Receiving, Sending, fire

WINDOW = 2                  # chunks handed to the session but not yet written to the channel
MAX_TRANSFERS = 64          # transfers open at once, each way
KEEP_FINISHED = 64          # finished transfers remembered (late messages are recognised)
KEEP_LISTINGS = 16          # folder listings kept for a display to pick up
KEEP_CHANGES = 16           # answers to make_dir / rename / delete kept likewise
PROGRESS_EVERY = 0.25       # seconds between progress events of one transfer
POLL = 0.1
BATCH_SMALL = 16 * 1024     # chunks smaller than this (small files) are batched ...
BATCH_BYTES = 64 * 1024     # ... up to about this much in one message
NO_PERMISSION = "the partner does not accept files (no files folder allowed)"
NOT_ALLOWED_HERE = "refused: this desk does not allow files (no files folder is shared)"
PAUSABLE = (Sending.OFFERED, Sending.SENDING)    # the states a send can be held in


def is_chunk(data) -> bool:
    """True for an encoded session message that carries a file Chunk (or a Batch of them)."""
    return len(data) > 1 and data[0] == sm.FILES_CODE and data[1] in (f.CHUNK_CODE, f.BATCH_CODE)


def _small(msg) -> int:
    """About the encoded size of a message worth batching, else 0."""
    if isinstance(msg, f.Chunk):
        return len(msg.data) + 24 if len(msg.data) < BATCH_SMALL else 0
    return 64 if isinstance(msg, (f.Done, f.End, f.Error)) else 0


class FileEngine:
    def __init__(self, send, *, root=None, first_tid=2, on_event=None, clock=time.monotonic,
                 share=None):
        self._send = send
        # share: the flow.LinkShare of a side that also sends frames (the host): our Gots count
        # in its link rate and our window tells it when the files want more (flow.py has the
        # rule).
        self.root = disk.Folder(root) if root is not None else None
        self.on_event = on_event or (lambda name, **fields: None)
        self.clock = clock
        self._next_tid = first_tid
        self._next_req = 1
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._window = threading.Semaphore(WINDOW)
        self._out, self._in = {}, {}        # tid -> Outgoing / Incoming (running and recent)
        self._asked = {}                    # tid -> (Folder, policy, paths) of our Fetch requests
        self._progress_at = {}
        self.results = {}                   # tid -> transfer_done fields, once finished
        self.listings = {}                  # req -> listing fields (the last KEEP_LISTINGS)
        self.changes = {}                   # req -> error ("" done) of make_dir / rename / delete
        self.flow = FileWindow(clock, share)    # what we send: the window in flight (pump, Got)
        self._received = 0                  # what we receive: bytes of data (our Got says it)
        self._acks = AckRule()              # ... and when we say it

    # ------------------------------------------------------------------ commands (any thread)

    def send_paths(self, paths, dest="", policy=f.POLICY_ASK) -> list:
        """Offer local files and folders (each lands under its own name in `dest`, a folder of the
        partner's files folder). Returns the transfer ids (a big tree needs several offers).
        Raises FileRefused when a path cannot be offered."""
        entries, skipped = [], []
        for path in paths:
            name = os.path.basename(os.path.normpath(path))
            try:
                entries += disk.walk(path, name, skipped)
            except OSError as exc:
                raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from None
        for rel in skipped:
            self.on_event("file_refused", tid=0, direction="send", path=rel,
                          reason="not a regular file or folder (a link?): not sent")
        return [self._offer(batch, dest, policy) for batch in split_offers(entries)]

    def _offer(self, entries, dest, policy, paused=False):
        with self._lock:
            tid = self._new_tid()
            out = self._out[tid] = Outgoing(tid, entries, dest, policy)
            out.state, out.mine, out.paused = Sending.OFFERED, True, paused
            out.chunk_size = self.flow.chunk_size
        self._send(out.offer())
        return tid

    def fetch(self, paths, local_dir, policy=f.POLICY_ASK) -> int:
        """Ask the partner to send `paths` (relative to its files folder) into local folder
        `local_dir`. Returns the transfer id. Raises FileRefused when the folder is unusable."""
        folder = disk.Folder(local_dir)
        with self._lock:
            tid = self._new_tid()
            self._asked[tid] = (folder, policy, list(paths))
        self._send(f.Fetch(tid, policy, list(paths)))
        return tid

    def list_dir(self, path="") -> int:
        return self._request(f.ListDir, path)

    def make_dir(self, path) -> int:
        """Ask the partner to make folder `path` of its files folder; the answer lands in
        `changes[req]` (and a `changed` event)."""
        return self._request(f.MkDir, path)

    def rename(self, path, new_path) -> int:
        return self._request(f.Rename, path, new_path)

    def delete(self, path) -> int:
        """Ask the partner to delete `path` (a folder with all it holds)."""
        return self._request(f.Delete, path)

    def _request(self, cls, *args) -> int:
        with self._lock:
            req, self._next_req = self._next_req, (self._next_req + 1) & 0xFFFFFFFF
        self._send(cls(req, *args))
        return req

    def cancel(self, tid, text="cancelled"):
        with self._lock:
            transfer = self._out.get(tid) or self._in.get(tid)
            if transfer is None or transfer.state in _FINAL:
                return
            self._cancelled(transfer)
        self._finish_failed(transfer, text)
        self._send(f.Cancel(tid, text))

    def pause(self, tid, paused=True):
        """Hold (or, with paused=False, go on with) the data of a transfer we send. A transfer we
        receive is paused by cancelling it (its part stays) and resumed by asking again. Only a
        send with data still to go pauses: a Pause clicked as the last data went out (the display
        polls, so it may be a moment late) changes nothing, never shows a finished one "paused"."""
        with self._work:
            out = self._out.get(tid)
            if out is not None and (out.state in PAUSABLE or not paused):
                out.paused = paused
                self._work.notify_all()

    def close(self):
        """The session ends: stop the pump's files, close parts (kept for a resume). What was
        still moving is cut: `carry` on the next session's engine takes ours up again."""
        with self._lock:
            for tid in list(self._asked):       # fetches the partner never answered
                self._asked_stub(tid)
            running = [t for t in list(self._out.values()) + list(self._in.values())
                       if t.state not in _FINAL]
            for transfer in running:
                self._cancelled(transfer)
                transfer.cut = True
        for transfer in running:
            self._finish_failed(transfer, "the session ended")

    def carry(self, old) -> dict:
        """After a reconnect: offer again what `old` (the broken session's engine) was sending for
        us and ask again for what it was fetching for us, each continuing from the part the
        receiver holds. Returns {old tid: new tid}. One that cannot be asked again (its folder is
        gone) ends with transfer_done (ok False) under its old id."""
        old.close()                 # (closed already when its session ended: then a no-op)
        with old._lock:
            cut = [t for t in list(old._out.values()) + list(old._in.values()) if t.cut]
        with self._lock:
            self._next_tid = max(self._next_tid, old._next_tid)
        carried = {}
        for t in cut:
            try:
                if isinstance(t, Outgoing) and t.mine:
                    carried[t.tid] = self._offer(t.entries, t.dest, t.policy, t.paused)
                elif isinstance(t, Incoming) and t.asked is not None:
                    carried[t.tid] = self.fetch(t.asked[0], t.folder.root, t.asked[1])
            except FileRefused as exc:
                direction = "send" if isinstance(t, Outgoing) else "receive"
                self._finish(t, direction, False, 0, 0, 0, 0, 0, str(exc), cut=False)
        return carried

    def snapshot(self) -> list:
        """What a display shows of each transfer: [{tid, direction, name, bytes, total, state,
        ok, message, refused: [(path, reason)]}] (any thread; a display polls it instead of
        queueing events)."""
        rows = []
        with self._lock:
            for direction, table in (("send", self._out), ("receive", self._in)):
                for tid, t in table.items():
                    result = self.results.get(tid, {})
                    entries = t.entries if direction == "send" else list(t.plans.values())
                    name = (entries[0][0] if direction == "send" else entries[0].path) if entries else ""
                    rows.append({"tid": tid, "direction": direction, "name": name.split("/")[0],
                                 "bytes": t.bytes_sent if direction == "send" else t.bytes,
                                 "total": t.total, "paused": t.paused,
                                 "state": t.state.value if t.state else "",
                                 "ok": result.get("ok"), "message": result.get("message", ""),
                                 "refused": list(t.refused)})
        return sorted(rows, key=lambda r: r["tid"])

    def _new_tid(self):
        if sum(t.state not in _FINAL for t in self._out.values()) + len(self._asked) >= MAX_TRANSFERS:
            raise FileRefused(f"more than {MAX_TRANSFERS} transfers at once")
        tid, self._next_tid = self._next_tid, (self._next_tid + 2) & 0xFFFFFFFF
        return tid

    # ------------------------------------------------------------------ the pump (one thread)

    def pump(self, stopping):
        """Send the data of accepted transfers until `stopping` is set (the session's files thread)."""
        while not stopping.is_set():
            if not self._wait_for_window():
                continue
            msg = self.next_message(POLL)
            if msg is None:
                continue
            msg = self._batch_with(msg)
            if isinstance(msg, (f.Chunk, f.Batch)) and not self._take_window(stopping):
                return
            self._send(msg)

    def _batch_with(self, msg):
        """`msg`, or a Batch of it and the small messages ready behind it (up to BATCH_BYTES):
        small files go many to a record instead of two records each."""
        batch, size = [msg], _small(msg)
        while size and size < BATCH_BYTES and len(batch) < f.MAX_BATCH:
            with self._work:
                if not self.flow.may_send():
                    break
            more = self.next_message()
            if more is None:
                break
            batch.append(more)
            cost = _small(more)
            if not cost:            # a big chunk ends the batch
                break
            size += cost
        return batch[0] if len(batch) == 1 else f.Batch(batch)

    def _wait_for_window(self) -> bool:
        """Until the path has room for more file data (a Got frees it), at most POLL seconds."""
        with self._work:
            return self._work.wait_for(self.flow.may_send, POLL)

    def next_message(self, timeout=0.0):
        """The next message of the first accepted transfer, or None (after waiting up to
        `timeout` seconds for one to be accepted). Reads the disk: not under the lock. A chunk
        read while its transfer was being paused waits in `pending`: a pause stops the data at
        once, and a resume sends that chunk first."""
        with self._work:
            out = next((o for o in self._out.values() if o.state is Sending.SENDING
                        and o.iterator is not None and not o.paused), None)
            if out is None:
                if timeout:
                    self._work.wait(timeout)
                return None
            msg, out.pending = out.pending, None
        if msg is None:
            msg = next(out.iterator, None)
        if msg is None:
            out.iterator = None
        elif isinstance(msg, f.End):
            with self._lock:
                fire(out, "end_sent")
        elif isinstance(msg, f.Chunk):
            return self._chunk_out(out, msg)
        return msg

    def _chunk_out(self, out, msg):
        with self._work:
            if out.paused:
                out.pending = msg
                return None
            out.bytes_sent += len(msg.data)
            self.flow.posted(len(msg.data))
        self._progress(out, "send")
        return msg

    def _take_window(self, stopping):
        while not stopping.is_set():
            if self._window.acquire(timeout=POLL):
                return True
        return False

    def sent(self, data):
        """The session wrote `data` (one encoded session message) to the channel."""
        if is_chunk(data):
            self._window.release()

    # ------------------------------------------------------------------ incoming messages

    def handle(self, msg):
        """One file message from the partner (the session's receive thread). Raises
        RemoteProtocolError for a message that breaks the protocol."""
        replies = self._HANDLERS[type(msg)](self, msg) or []
        for reply in replies:
            self._send(reply)

    def _on_list(self, msg):
        if self.root is None:
            return [f.Listing(msg.req, msg.path, NO_PERMISSION)]
        try:
            place = self.root.place(check_path(msg.path, allow_empty=True))
            entries, truncated = disk.listing(place, self.root)
        except FileRefused as exc:
            return [f.Listing(msg.req, msg.path, str(exc)[:f.MAX_TEXT])]
        except OSError as exc:
            return [f.Listing(msg.req, msg.path, f"cannot list {msg.path or 'the folder'}: "
                                                 f"{exc.strerror or exc}"[:f.MAX_TEXT])]
        return [f.Listing(msg.req, msg.path, "", int(truncated), entries)]

    def _on_listing(self, msg):
        with self._lock:
            self.listings[msg.req] = {"path": msg.path, "entries": msg.entries, "error": msg.error}
            for old in sorted(self.listings)[:-KEEP_LISTINGS]:
                del self.listings[old]
        self.on_event("listing", req=msg.req, path=msg.path, entries=msg.entries, error=msg.error,
                      truncated=bool(msg.truncated))

    def _on_change(self, msg):
        return [files_actions.answer(self.root, msg, NO_PERMISSION)]

    def _on_changed(self, msg):
        with self._lock:
            self.changes[msg.req] = msg.error
            for old in sorted(self.changes)[:-KEEP_CHANGES]:
                del self.changes[old]
        self.on_event("changed", req=msg.req, error=msg.error)

    def _not_allowed(self, tid, direction, paths):
        """No files folder: the partner is told why, and so is our side (file_refused)."""
        shown = (paths[0] + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")) if paths else "files"
        self.on_event("file_refused", tid=tid, direction=direction, path=shown, reason=NOT_ALLOWED_HERE)
        return [f.Error(tid, f.ALL, NO_PERMISSION)]

    def _on_fetch(self, msg):
        if self.root is None:
            return self._not_allowed(msg.tid, "send", msg.paths)
        try:
            entries, skipped = [], []
            for path in msg.paths:
                names = check_path(path)
                place = self.root.place(names)
                entries += disk.walk(place, names[-1], skipped)
        except (FileRefused, OSError) as exc:
            text = str(exc) if isinstance(exc, FileRefused) else f"cannot read it: {exc.strerror or exc}"
            return [f.Error(msg.tid, f.ALL, text[:f.MAX_TEXT])]
        if len(entries) > f.MAX_ENTRIES:
            return [f.Error(msg.tid, f.ALL, f"more than {f.MAX_ENTRIES} files and folders: ask for "
                                            f"fewer at once")]
        with self._lock:
            if msg.tid in self._out or msg.tid in self._in:
                raise RemoteProtocolError(f"transfer id {msg.tid} is already in use")
            if sum(t.state not in _FINAL for t in self._out.values()) >= MAX_TRANSFERS:
                return [f.Error(msg.tid, f.ALL, f"more than {MAX_TRANSFERS} transfers at once")]
            out = self._out[msg.tid] = Outgoing(msg.tid, entries, "", msg.policy)
            out.state, out.chunk_size = Sending.OFFERED, self.flow.chunk_size
            self._forget_old(self._out)
        return [out.offer()]

    def _on_offer(self, msg):
        with self._lock:
            asked = self._asked.pop(msg.tid, None)
            if msg.tid in self._in or msg.tid in self._out:
                raise RemoteProtocolError(f"transfer id {msg.tid} is already in use")
        if asked is None and self.root is None:
            self.on_event("transfer_done", **self._summary_fields(msg.tid, "receive", False, 0, 0, 0, 0, 0,
                                                                   NOT_ALLOWED_HERE))
            return self._not_allowed(msg.tid, "receive", [e[0] for e in msg.entries])
        try:
            incoming = self._incoming(msg, asked)
        except FileRefused as exc:
            self.on_event("transfer_done", **self._summary_fields(msg.tid, "receive", False, 0, 0, 0, 0, 0,
                                                                   str(exc)))
            return [f.Error(msg.tid, f.ALL, str(exc)[:f.MAX_TEXT])]
        accept = incoming.decide(msg)
        for path, reason in incoming.refused:
            self.on_event("file_refused", tid=msg.tid, direction="receive", path=path, reason=reason)
        with self._lock:
            self._in[msg.tid] = incoming
            self._forget_old(self._in)
        return [accept]

    def _incoming(self, offer, asked):
        if asked is not None:
            folder, policy, paths = asked
            incoming = Incoming(offer.tid, folder, (), policy)
            incoming.asked = (paths, policy)
            incoming.state = Receiving.ASKED
            fire(incoming, "offer")
            return incoming
        if sum(t.state not in _FINAL for t in self._in.values()) >= MAX_TRANSFERS:
            raise FileRefused(f"more than {MAX_TRANSFERS} transfers at once")
        incoming = Incoming(offer.tid, self.root, check_path(offer.dest, allow_empty=True), offer.policy)
        incoming.state = Receiving.RECEIVING
        return incoming

    def _on_accept(self, msg):
        with self._lock:
            out = self._transfer(self._out, msg.tid)
            if not fire(out, "accept"):
                return
            out.accepted(msg)
            out.iterator = out.messages()
            self._work.notify_all()
        for path, reason in out.refused:
            self.on_event("file_refused", tid=out.tid, direction="send", path=path, reason=reason)

    def _on_chunk(self, msg):
        incoming = self._transfer(self._in, msg.tid)
        fire(incoming, "chunk")
        got = self._count_received(len(msg.data))
        if incoming.state is not Receiving.RECEIVING:
            return got
        replies = incoming.chunk(msg)
        self._report_failures(incoming, replies)
        self._progress(incoming, "receive")
        return replies + got

    def _count_received(self, nbytes):
        """Every chunk counts for the sender's window, whatever becomes of it: [Got] by AckRule."""
        self._received += nbytes
        return [f.Got(self._received)] if self._acks.chunk(nbytes) else []

    def _on_batch(self, msg):
        """The messages of a Batch in order, as if they came one by one (a Batch holds no Batch:
        the codec refuses it). Of their Gots only the last is worth sending."""
        replies = []
        for inner in msg.messages:
            replies += self._HANDLERS[type(inner)](self, inner) or []
        gots = [r for r in replies if isinstance(r, f.Got)]
        return [r for r in replies if not isinstance(r, f.Got)] + gots[-1:]

    def _on_got(self, msg):
        with self._work:
            self.flow.got(msg.received)
            self._work.notify_all()

    def _on_done(self, msg):
        incoming = self._transfer(self._in, msg.tid)
        fire(incoming, "done")
        if incoming.state is not Receiving.RECEIVING:
            return []
        replies = incoming.done(msg)
        self._report_failures(incoming, replies)
        return replies

    def _on_end(self, msg):
        incoming = self._transfer(self._in, msg.tid)
        if not fire(incoming, "end") and incoming.state is not Receiving.DONE:
            return []
        replies = incoming.end()
        self._progress(incoming, "receive", force=True)
        ok = not (incoming.failed or incoming.refused)
        self._finish(incoming, "receive", ok, incoming.verified, incoming.failed, len(incoming.refused),
                     incoming.skipped, incoming.bytes, _first_problem(incoming))
        return replies

    def _on_summary(self, msg):
        with self._lock:
            out = self._transfer(self._out, msg.tid)
            late = out.state is not Sending.ENDING     # after a cancel: ignored (else the table raises)
            fire(out, "summary")
        if late:
            return
        if msg.verified != out.files_sent and not out.errors:
            out.file_failed(0, f"the partner verified {msg.verified} of {out.files_sent} files")
        self._progress(out, "send", force=True)
        self._finish(out, "send", out.ok, msg.verified, max(msg.failed, len(out.errors)),
                     len(out.refused), out.skipped, out.bytes_sent, _first_problem(out))

    def _on_error(self, msg):
        with self._lock:
            transfer = self._out.get(msg.tid) or self._in.get(msg.tid) or self._asked_stub(msg.tid)
        if transfer is None:
            raise RemoteProtocolError(f"error for unknown transfer {msg.tid}")
        if msg.index != f.ALL:
            return self._file_error(transfer, msg)
        with self._lock:
            changed = fire(transfer, "error")
            transfer.stopped = True
        if changed:
            self._finish_failed(transfer, msg.text)

    def _file_error(self, transfer, msg):
        fire(transfer, "file_error")
        if transfer.state in _FINAL:
            return
        if isinstance(transfer, Outgoing):
            transfer.file_failed(msg.index, msg.text)
            path = transfer.entries[msg.index][0] if msg.index < len(transfer.entries) else "?"
            self.on_event("file_error", tid=transfer.tid, direction="send", path=path, message=msg.text)
        else:
            transfer.file_error(msg.index, msg.text)
            self.on_event("file_error", tid=transfer.tid, direction="receive", path="", message=msg.text)

    def _on_cancel(self, msg):
        with self._lock:
            transfer = self._out.get(msg.tid) or self._in.get(msg.tid) or self._asked_stub(msg.tid)
            if transfer is None:
                raise RemoteProtocolError(f"cancel for unknown transfer {msg.tid}")
            if transfer.state in _FINAL:
                return
            self._cancelled(transfer)
        self._finish_failed(transfer, f"the partner cancelled: {msg.text}" if msg.text
                            else "the partner cancelled")

    _HANDLERS = {f.ListDir: _on_list, f.Listing: _on_listing, f.Fetch: _on_fetch, f.Offer: _on_offer,
                 f.Accept: _on_accept, f.Chunk: _on_chunk, f.Done: _on_done, f.End: _on_end,
                 f.Summary: _on_summary, f.Error: _on_error, f.Cancel: _on_cancel,
                 f.MkDir: _on_change, f.Rename: _on_change, f.Delete: _on_change, f.Changed: _on_changed,
                 f.Got: _on_got, f.Batch: _on_batch}

    # ------------------------------------------------------------------ helpers

    def _transfer(self, table, tid):
        transfer = table.get(tid)
        if transfer is None:
            raise RemoteProtocolError(f"message for unknown transfer {tid}")
        return transfer

    def _asked_stub(self, tid):
        """A Fetch the partner refused before offering anything: an Incoming in ASKED state."""
        asked = self._asked.pop(tid, None)
        if asked is None:
            return None
        folder, policy, paths = asked
        stub = self._in[tid] = Incoming(tid, folder, (), policy)
        stub.asked = (paths, policy)
        stub.state = Receiving.ASKED
        return stub

    def _cancelled(self, transfer):
        """Under the lock: stop it (the caller reports it once the lock is released)."""
        fire(transfer, "cancel")
        transfer.stopped = True
        self._work.notify_all()

    def _finish_failed(self, transfer, text):
        direction = "send" if isinstance(transfer, Outgoing) else "receive"
        if isinstance(transfer, Incoming):
            transfer.stop()
        self._finish(transfer, direction, False, 0, 0, len(transfer.refused), transfer.skipped,
                     transfer.bytes_sent if direction == "send" else transfer.bytes, text)

    def _finish(self, transfer, direction, ok, verified, failed, refused, skipped, nbytes, message,
                cut=None):
        fields = self._summary_fields(transfer.tid, direction, ok, verified, failed, refused, skipped,
                                      nbytes, message, transfer.cut if cut is None else cut)
        self.results[transfer.tid] = fields
        self.on_event("transfer_done", **fields)

    @staticmethod
    def _summary_fields(tid, direction, ok, verified, failed, refused, skipped, nbytes, message,
                        cut=False):
        return {"tid": tid, "direction": direction, "ok": ok, "verified": verified, "failed": failed,
                "refused": refused, "skipped": skipped, "bytes": nbytes, "message": message,
                "cut": cut}

    def _report_failures(self, incoming, replies):
        for reply in replies:
            if isinstance(reply, f.Error):
                self.on_event("file_error", tid=incoming.tid, direction="receive",
                              path=incoming.errors[-1][0], message=reply.text)

    def _progress(self, transfer, direction, force=False):
        now = self.clock()
        if not force and now - self._progress_at.get(transfer.tid, -1e9) < PROGRESS_EVERY:
            return
        self._progress_at[transfer.tid] = now
        sending = direction == "send"
        self.on_event("file_progress", tid=transfer.tid, direction=direction,
                      bytes=transfer.bytes_sent if sending else transfer.bytes, total=transfer.total,
                      files=transfer.files_sent if sending else transfer.verified,
                      files_total=transfer.files_total if sending else len(transfer.plans))

    def _forget_old(self, table):
        finished = [tid for tid, t in table.items() if t.state in _FINAL]
        for tid in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del table[tid]


def _first_problem(transfer) -> str:
    problems = list(transfer.refused)
    problems += (list(transfer.errors.items()) if isinstance(transfer.errors, dict) else transfer.errors)
    if not problems:
        return ""
    text = problems[0][1]
    return text if len(problems) == 1 else f"{text} (and {len(problems) - 1} more)"
