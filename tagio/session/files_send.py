"""The sending side of one transfer: the offer, then the messages that carry the accepted files.

Theory of operation. `Outgoing` holds the entries of one offer (built by files_disk.walk, at most
MAX_ENTRIES and about OFFER_BYTES of them: `split_offers` cuts a bigger tree into several offers).
After the receiver's Accept, `messages()` is a generator run by the engine's pump thread: for each
file to send it opens the file, finds where to start (for a resume: the first block whose hash
differs from the receiver's part), hashes what comes before, then yields Chunk after Chunk read
straight from the file (`chunk_size()` bytes each: the engine's window picks the size; nothing
else of the file is held in memory), and Done with the SHA-256 of the whole file; End after the
last. It stops between chunks when the transfer is cancelled or the receiver reported that file
failed. A file that changed size since it was offered fails with an Error (the receiver then drops
it): the size announced is never a lie on our side.
"""

from tagio.errors import RemoteProtocolError
from tagio.protocol import files as f
from tagio.session import files_disk as disk

OFFER_BYTES = 768 * 1024    # encoded entries per offer: one offer stays well inside a message
ENTRY_OVERHEAD = 2 + 1 + 8 + 8


def split_offers(entries):
    """Cut walk() entries into lists that each fit one Offer (count and bytes)."""
    batch, size = [], 0
    for entry in entries:
        cost = len(entry[0].encode("utf-8")) + ENTRY_OVERHEAD
        if batch and (len(batch) >= f.MAX_ENTRIES or size + cost > OFFER_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += cost
    if batch:
        yield batch


class Outgoing:
    def __init__(self, tid, entries, dest="", policy=f.POLICY_ASK):
        self.tid, self.entries, self.dest, self.policy = tid, list(entries), dest, policy
        self.decisions = None
        self.refused = []           # (path, reason) from the receiver's decisions
        self.skipped = 0
        self.errors = {}            # index -> reason: files that failed (here or at the receiver)
        self.bytes_sent = 0         # file data handed to the session (the engine counts it; a
                                    # resume sends only the rest: tests count it)
        self.pending = None         # a Chunk read as the transfer was paused: the first after it
        self.total = 0
        self.files_total = 0
        self.files_sent = 0
        self.stopped = False        # cancelled or failed: the generator ends at the next chunk
        self.paused = False         # the pump skips it until resumed
        self.mine = False           # we offered it (send_paths), not the partner's Fetch
        self.cut = False            # the session ended under it: a reconnect carries it on
        self.state = None           # a files.Sending, moved by the engine's table
        self.iterator = None        # messages() once accepted, run by the pump
        self.chunk_size = lambda: f.CHUNK   # bytes of the next Chunk (the engine's window decides)

    def offer(self) -> f.Offer:
        return f.Offer(self.tid, self.dest, self.policy,
                       [(rel, kind, size, mtime) for rel, kind, size, mtime, _local in self.entries])

    def accepted(self, accept):
        if len(accept.decisions) != len(self.entries):
            raise RemoteProtocolError(f"{len(accept.decisions)} decisions for {len(self.entries)} entries")
        self.decisions = accept.decisions
        for (rel, kind, size, _m, _l), (action, offset, _b, _h, note) in zip(self.entries, self.decisions):
            if action == f.ACT_REFUSE:
                self.refused.append((rel, note))
            elif action == f.ACT_SKIP:
                self.skipped += kind == f.KIND_FILE
            elif kind == f.KIND_FILE:
                self.files_total += 1
                self.total += size - (offset if action == f.ACT_RESUME else 0)

    def file_failed(self, index, text):
        if index < len(self.entries):
            self.errors.setdefault(index, text)

    @property
    def ok(self) -> bool:
        return not (self.refused or self.errors)

    # ------------------------------------------------------------------ the pump's generator

    def messages(self):
        """Chunk..., Done per accepted file, then End. Runs on the engine's pump thread."""
        for index, (rel, kind, size, _mtime, local) in enumerate(self.entries):
            action, offset, block, hashes, _note = self.decisions[index]
            if kind != f.KIND_FILE or action not in (f.ACT_SEND, f.ACT_RESUME):
                continue
            if self.stopped:
                return
            resume = (offset, block, hashes) if action == f.ACT_RESUME else None
            yield from self._file(index, rel, size, local, resume)
        yield f.End(self.tid)

    def _file(self, index, rel, size, local, resume):
        try:
            yield from self._read(index, rel, size, local, resume)
        except OSError as exc:
            yield self._error(index, f"{rel}: cannot read it here: {exc.strerror or exc}")

    def _read(self, index, rel, size, local, resume):
        with open(local, "rb") as fh:
            start = disk.resume_start(fh, *resume) if resume else 0
            sha, _ = disk.hash_prefix(fh, start)
            pos = start
            while pos < size:
                if self.stopped or index in self.errors:
                    return
                data = fh.read(min(self.chunk_size(), size - pos))
                if not data:
                    yield self._error(index, f"{rel}: it became shorter while being sent")
                    return
                sha.update(data)
                yield f.Chunk(self.tid, index, pos, data)   # (the engine counts bytes_sent)
                pos += len(data)
            if fh.read(1):
                yield self._error(index, f"{rel}: it grew while being sent")
                return
        self.files_sent += 1
        yield f.Done(self.tid, index, sha.digest())

    def _error(self, index, text):
        self.file_failed(index, text)
        return f.Error(self.tid, index, text[:f.MAX_TEXT])
