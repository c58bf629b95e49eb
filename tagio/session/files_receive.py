"""The receiving side of one transfer: decide on an offer, write chunks to parts, verify, commit.

Theory of operation. `Incoming.decide(offer)` checks every entry (names: files_names; place, space
and permission: files_disk) and answers one decision each: folders are made at once (empty ones
too); a file is SENT into `<name>.tagio-part`, RESUMED from the part already there (with the part's
block hashes, so the sender starts at the first block that differs), SKIPPED (the same size and
date are already there, or the policy says skip) or REFUSED with a sentence. An existing file is
replaced only under the overwrite policy, or kept beside as "name (1)" under keep-both; under the
default policy (ask) it is refused: nothing is overwritten without a decision.

Then `chunk` / `done` / `file_error` / `end` follow the sender. Data must come in order and never
beyond the announced size (more data, or Done before all of it, is the sender's lie: the file fails
and its part is deleted). At Done the SHA-256 of the whole file is compared before the part takes
its final name; folder dates are set at End (deepest first, after their content was written).
Only one part is open at a time and nothing is kept in memory: the file is streamed to disk, a
big one by a PartWriter (files_writer: written and hashed on its own thread, so the session's
receive thread only decrypts).

Methods return the messages to send back (Error per failed file, Summary at the end) and raise
RemoteProtocolError for what breaks the protocol (data for an entry that was not accepted, data
out of order): that ends the session. A refused or failed file does not.
"""

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from tagio.errors import RemoteProtocolError
from tagio.protocol import files as f
from tagio.session import files_disk as disk
from tagio.session.files_names import CaseFolder, FileRefused, check_path
from tagio.session.files_writer import ASYNC_MIN, PartWriter

SPACE_MARGIN = 1 << 20      # leave this much free on the disk
# The end of the refusal of a file that is there under the ask policy: a front end that sees it
# asks its user (overwrite, skip, keep both) and sends that file again with the answer.
EXISTS_ASK = "a file of that name is already there; choose overwrite, skip or keep both"


@dataclass
class Plan:
    """One accepted file."""
    index: int
    path: str               # as offered, for messages
    target: Path
    size: int
    mtime_ns: int
    replace: bool = False
    have: int = 0           # bytes of the part already there (a resume)
    pos: int = 0
    fh: object = None
    sha: object = None
    writer: object = None   # a PartWriter while a big file is written off the receive thread
    failed: bool = False
    done: bool = False
    part: Path = field(init=False)

    def __post_init__(self):
        self.part = disk.part_path(self.target)


def _refusal(text):
    return (f.ACT_REFUSE, 0, 0, b"", text.encode("utf-8")[:f.MAX_TEXT].decode("utf-8", "ignore"))


class Incoming:
    def __init__(self, tid, folder: disk.Folder, dest_names=(), policy=f.POLICY_ASK):
        self.tid, self.folder, self.dest_names, self.policy = tid, folder, tuple(dest_names), policy
        self.plans = {}
        self.dirs = []              # (path, mtime_ns) of the folders offered
        self.refused = []           # (path, reason)
        self.skipped = 0
        self.verified = self.failed = self.bytes = 0
        self.total = 0
        self.errors = []            # (path, reason) of files that failed
        self._current = None
        self._made = {}             # folder names -> Path, made (or found) during this offer
        self.stopped = False
        self.paused = False         # (only what we send pauses; shown in snapshots)
        self.asked = None           # (paths, policy) of our Fetch that it answers, else None
        self.cut = False            # the session ended under it: a reconnect carries it on
        self.state = None           # a files.Receiving, moved by the engine's table

    # ------------------------------------------------------------------ the offer

    def decide(self, offer) -> f.Accept:
        case, decisions = CaseFolder(), []
        try:
            budget = disk.free_bytes(self.folder.root) - SPACE_MARGIN
        except OSError:             # cannot tell: the writes will say if the disk fills
            budget = f.MAX_SIZE
        for index, (path, kind, size, mtime) in enumerate(offer.entries):
            try:
                names = self.dest_names + check_path(path)
                case.add(names)
                decision, cost = self._decide_one(index, path, names, kind, size, mtime)
                if cost > budget:
                    self.plans.pop(index, None)
                    raise FileRefused(f"{path}: not enough space on the receiving disk "
                                      f"({size} bytes, {max(budget, 0)} free)")
                budget -= cost
            except (FileRefused, OSError) as exc:
                text = str(exc) if isinstance(exc, FileRefused) else f"{path}: {disk.disk_words(exc, path)}"
                self.plans.pop(index, None)
                self.refused.append((path, text))
                decision = _refusal(text)
            decisions.append(decision)
        self.total = sum(p.size - p.have for p in self.plans.values())
        return f.Accept(self.tid, decisions)

    def _decide_one(self, index, path, names, kind, size, mtime):
        """(decision, bytes it will take on disk). Raises FileRefused."""
        if kind == f.KIND_DIR:
            self.folder.make_dirs(names)
            self.dirs.append((names, mtime))
            return (f.ACT_SEND, 0, 0, b"", ""), 0
        self._folder(names[:-1])          # made, checked writable (or FileRefused)
        target = self.folder.place(names)
        plan = Plan(index, path, target, size, mtime)
        if target.exists() or target.is_symlink():
            skip = self._existing(plan)
            if skip is not None:
                self.skipped += 1
                return (f.ACT_SKIP, 0, 0, b"", skip), 0
        self.plans[index] = plan
        return self._resume_or_send(plan), size - plan.have

    def _folder(self, names):
        """Make folder `names` (checked once per offer: 10,000 files in one folder are 10,000
        decisions, not 10,000 walks up the tree) and check that we may write in it."""
        parent = self._made.get(names)
        if parent is None:
            parent = self.folder.make_dirs(names)
            if not disk.writable(parent):
                raise FileRefused(f"{'/'.join(names) or 'the folder'}: cannot write in {parent}: "
                                  f"read-only or no permission")
            self._made[names] = parent
        return parent

    def _existing(self, plan):
        """What to do about a file already at the target: a skip note, or None to receive it
        (to overwrite, or under a new name). Raises FileRefused."""
        if plan.target.is_dir():
            raise FileRefused(f"{plan.path}: a folder of that name is already there")
        st = plan.target.stat()
        if st.st_size == plan.size and st.st_mtime_ns == plan.mtime_ns:
            return "already there (same size and date)"
        if self.policy == f.POLICY_SKIP:
            return "a file of that name is already there (skipped)"
        if self.policy == f.POLICY_OVERWRITE:
            plan.replace = True
        elif self.policy == f.POLICY_KEEP_BOTH:
            plan.target = disk.keep_both_name(plan.target)
            plan.part = disk.part_path(plan.target)
        else:
            raise FileRefused(f"{plan.path}: {EXISTS_ASK}")
        return None

    def _resume_or_send(self, plan):
        try:
            have = plan.part.stat().st_size if plan.part.is_file() else 0
        except OSError:
            have = 0
        if not 0 < have <= plan.size:
            return (f.ACT_SEND, 0, 0, b"", "")
        block = disk.block_size(have)
        with open(plan.part, "rb") as fh:
            hashes = disk.block_hashes(fh, have, block)
        plan.have = have
        return (f.ACT_RESUME, have, block, hashes, f"resuming after {have} bytes")

    # ------------------------------------------------------------------ data

    def chunk(self, msg) -> list:
        plan = self._plan(msg.index)
        if plan.failed:
            return []       # data of a file that failed here, still on its way
        if self._current is not plan:
            failed = self._open(plan, msg.offset)
            if failed:
                return failed
        if msg.offset != plan.pos:
            raise RemoteProtocolError(f"{plan.path}: data at {msg.offset}, expected {plan.pos}")
        if plan.pos + len(msg.data) > plan.size:
            return self._fail(plan, f"{plan.path}: more data than the {plan.size} bytes announced",
                              drop=True)
        try:
            self._write(plan, msg.data)
        except OSError as exc:
            return self._fail(plan, f"{plan.path}: {disk.disk_words(exc, plan.target.parent)}", drop=True)
        plan.pos += len(msg.data)
        self.bytes += len(msg.data)
        return []

    @staticmethod
    def _write(plan, data):
        """Append `data` to the part and its hash (raises the OSError of a failed write)."""
        if plan.writer is None:
            plan.fh.write(data)
            plan.sha.update(data)
            return
        error = plan.writer.put(data)
        if error is not None:
            raise error

    def _plan(self, index):
        plan = self.plans.get(index)
        if plan is None or plan.done:
            raise RemoteProtocolError(f"data for entry {index}, which is not being received")
        return plan

    def _open(self, plan, offset):
        """Open the part of `plan` for data from `offset` (a resume may start before the end of
        the part: the sender found a block that differs). [] or the failure's messages."""
        if self._current is not None and not self._current.failed:
            raise RemoteProtocolError(f"data for {plan.path} before {self._current.path} was done")
        if offset > plan.have:
            raise RemoteProtocolError(f"{plan.path}: data starts at {offset}, past the {plan.have} "
                                      f"bytes held here")
        self._current = plan
        if not disk.PARTS.claim(plan.part, self):
            return self._fail(plan, f"{plan.path}: another transfer is still writing it here")
        try:
            if plan.have:
                plan.fh = open(plan.part, "r+b")
                plan.sha, _ = disk.hash_prefix(plan.fh, offset)
                plan.fh.truncate(offset)
                plan.fh.seek(offset)
            else:
                plan.fh, plan.sha = open(plan.part, "wb"), hashlib.sha256()
        except OSError as exc:
            return self._fail(plan, f"{plan.path}: {disk.disk_words(exc, plan.target.parent)}")
        plan.pos = offset
        if plan.size - offset >= ASYNC_MIN:
            plan.writer = PartWriter(plan.fh, plan.sha)
        return []

    def done(self, msg) -> list:
        plan = self._plan(msg.index)
        if plan.failed:
            return []
        if self._current is not plan:          # no chunk: an empty file, or a part already whole
            failed = self._open(plan, plan.size) if plan.have == plan.size else None
            if failed is None:
                raise RemoteProtocolError(f"{plan.path}: Done before its data")
            if failed:
                return failed
        if plan.pos != plan.size:
            return self._fail(plan, f"{plan.path}: the sender announced {plan.size} bytes and sent "
                                    f"{plan.pos}", drop=True)
        if plan.writer is not None:             # everything on disk and hashed before the check
            writer, plan.writer = plan.writer, None
            error = writer.finish()
            if error is not None:
                return self._fail(plan, f"{plan.path}: {disk.disk_words(error, plan.target.parent)}",
                                  drop=True)
        if plan.sha.digest() != msg.sha256:
            return self._fail(plan, f"{plan.path}: SHA-256 differs: the file was damaged or changed "
                                    f"while it was sent", drop=True)
        return self._commit(plan)

    def _commit(self, plan):
        try:
            plan.fh.close()
            disk.commit(plan.part, plan.target, plan.replace)
        except FileRefused as exc:
            return self._fail(plan, str(exc))
        except OSError as exc:
            return self._fail(plan, f"{plan.path}: {disk.disk_words(exc, plan.target.parent)}")
        try:
            os.utime(plan.target, ns=(plan.mtime_ns, plan.mtime_ns))
        except OSError:
            pass        # the file is whole and verified; a date the disk refuses is not worth failing it
        plan.done, self._current = True, None
        disk.PARTS.release(plan.part, self)
        self.verified += 1
        return []

    def _fail(self, plan, text, drop=False) -> list:
        """The file fails here: close it (deleting the part when its content is bad or the disk
        is full), count it, and tell the sender."""
        self._close(plan, drop)
        plan.failed = True
        self.failed += 1
        self.errors.append((plan.path, text))
        return [f.Error(self.tid, plan.index, text[:f.MAX_TEXT])]

    def _close(self, plan, drop=False):
        if self._current is plan:
            self._current = None
        if plan.writer is not None:             # its thread stops before the file is closed; what
            writer, plan.writer = plan.writer, None     # arrived stays in a part kept for a resume
            writer.abort() if drop else writer.finish()
        if plan.fh is not None:
            try:
                plan.fh.close()
            except OSError:
                pass
            plan.fh = None
        if drop:
            try:
                plan.part.unlink()
            except OSError:
                pass
        disk.PARTS.release(plan.part, self)

    def file_error(self, index, text):
        """The sender could not send entry `index` (it could not read it)."""
        plan = self.plans.get(index)
        if plan is not None and not plan.failed and not plan.done:
            self._close(plan)
            plan.failed = True
            self.failed += 1
            self.errors.append((plan.path, text))

    def end(self) -> list:
        self.stop()
        for names, mtime in sorted(self.dirs, key=lambda d: -len(d[0])):
            try:
                os.utime(self.folder.place(names), ns=(mtime, mtime))
            except (OSError, FileRefused):
                pass        # a date is not worth failing the transfer for
        missing = [p for p in self.plans.values() if not p.done and not p.failed]
        for plan in missing:
            self.file_error(plan.index, f"{plan.path}: the sender ended without sending it")
        return [f.Summary(self.tid, self.verified, self.failed, self.bytes)]

    def stop(self):
        """Cancel or session end: close what is open, keeping its part for a resume."""
        if self._current is not None:
            self._close(self._current)
