"""File-transfer messages, carried inside the session's `Files` message (tagio.protocol.session).

Theory of operation: like the session codec, sans-I/O, `encode(msg) -> bytes` and `decode(bytes) ->
msg`; one byte of type code (the table MESSAGE_TYPES) then the message's fields in the order its
FIELDS table gives, each field coded by the kind table KINDS. Every length and count is checked
against the bounds below before anything is allocated; `decode` raises only RemoteProtocolError and
`encode` raises LocalProtocolError for values we must never send.

A transfer (id `tid`, unique in the session: the viewer's are even, the host's odd) goes:

    sender   Offer(tid, dest, policy, entries)   files and folders, sizes, mtimes (bounded)
    receiver Accept(tid, decisions)              one per entry: send / resume from offset (with block
                                                 hashes of the part it holds) / skip / refuse (why)
    sender   Chunk(tid, index, offset, data)...  file data in order, about CHUNK bytes each
             Done(tid, index, sha256)            the whole file's SHA-256; the receiver compares it
             End(tid)                            every entry was sent
    receiver Got(received)                       now and then: data bytes received (the sender's window)
    receiver Summary(tid, verified, failed, bytes)
    sender   Batch(messages)                     small files: their Chunk/Done/End in one message
    either   Error(tid, index, text)             one file failed (index ALL: the whole transfer)
             Cancel(tid, text)                   stop the transfer (parts are kept for a resume)

The viewer asks for files with Fetch(tid, paths, policy): the host answers with an Offer of that tid
(it becomes the sender). ListDir / Listing browse the host's allowed folder; MkDir, Rename and
Delete change it (one request each, numbered like ListDir) and the host answers each with one
Changed(req, error) ("" when done). Paths on the wire are
relative, with "/" between names; what a name may be is the receiver's check (tagio.session.files_names).
"""

import struct
from dataclasses import dataclass, field

from tagio.errors import LocalProtocolError, RemoteProtocolError

CHUNK = 128 * 1024              # bytes of file data the sender puts in one Chunk
MAX_CHUNK = 512 * 1024          # the most one Chunk may carry
MAX_PATH = 4096                 # bytes of UTF-8 in one relative path
MAX_TEXT = 1024                 # bytes of UTF-8 in a reason / note
MAX_ENTRIES = 16384             # entries in one Offer (a bigger tree is offered in several)
MAX_FETCH = 256                 # paths asked for in one Fetch
MAX_LISTING = 4096              # entries in one Listing (the rest is cut: `truncated`)
MAX_BLOCKS = 64                 # block hashes in one resume decision
MAX_SIZE = 1 << 50              # bytes in one file (1 PiB): a larger size is a lie
ALL = 0xFFFFFFFF                # Error.index: the whole transfer
MAX_BATCH = 1024                # messages in one Batch

KIND_FILE, KIND_DIR = 0, 1
ENTRY_KINDS = (KIND_FILE, KIND_DIR)

# What the receiver does when a file of that name exists (Offer.policy, Fetch.policy).
POLICY_ASK, POLICY_SKIP, POLICY_OVERWRITE, POLICY_KEEP_BOTH = 0, 1, 2, 3
POLICIES = {POLICY_ASK: "ask", POLICY_SKIP: "skip", POLICY_OVERWRITE: "overwrite",
            POLICY_KEEP_BOTH: "keep-both"}

# Accept decisions, one per offered entry.
ACT_SEND, ACT_RESUME, ACT_SKIP, ACT_REFUSE = 0, 1, 2, 3
ACTIONS = {ACT_SEND: "send", ACT_RESUME: "resume", ACT_SKIP: "skip", ACT_REFUSE: "refuse"}


def _need(cond, why):
    if not cond:
        raise RemoteProtocolError(why)


def _local(cond, why):
    if not cond:
        raise LocalProtocolError(why)


# ---------------------------------------------------------------------------- field kinds

class _Reader:
    def __init__(self, data, what):
        self.data, self.pos, self.what = memoryview(data), 0, what

    def take(self, n, name):
        _need(self.pos + n <= len(self.data), f"{self.what}: {name} truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, st, name):
        return st.unpack(self.take(st.size, name))


def _int(fmt):
    st = struct.Struct("!" + fmt)

    def enc(value, name):
        try:
            return st.pack(value)
        except struct.error as exc:
            raise LocalProtocolError(f"{name}: {exc}") from exc
    return enc, lambda r, name: r.unpack(st, name)[0]


def _blob(len_fmt, limit, text=False):
    """A length-prefixed byte string (or UTF-8 string) of at most `limit` bytes."""
    st = struct.Struct("!" + len_fmt)

    def enc(value, name):
        raw = value.encode("utf-8") if text else bytes(value)
        _local(len(raw) <= limit, f"{name} over {limit} bytes")
        return st.pack(len(raw)) + raw

    def dec(r, name):
        n = r.unpack(st, name)[0]
        _need(n <= limit, f"{r.what}: {name} of {n} bytes (max {limit})")
        raw = bytes(r.take(n, name))
        if not text:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{r.what}: {name} is not valid UTF-8") from None
    return enc, dec


def _list(item_fields, limit):
    """u32 count (<= limit) + that many items: tuples of `item_fields` kinds, or single values when
    `item_fields` is one kind name."""
    scalar = isinstance(item_fields, str)
    kinds = (item_fields,) if scalar else item_fields

    def enc(items, name):
        _local(len(items) <= limit, f"{name}: {len(items)} items (max {limit})")
        parts = [struct.pack("!I", len(items))]
        for item in items:
            item = (item,) if scalar else item
            _local(len(item) == len(kinds), f"{name}: an item needs {len(kinds)} values")
            parts += [KINDS[kind][0](value, name) for kind, value in zip(kinds, item)]
        return b"".join(parts)

    def dec(r, name):
        count = r.unpack(_U32, name)[0]
        _need(count <= limit, f"{r.what}: {count} {name} (max {limit})")
        items = [tuple(KINDS[kind][1](r, name) for kind in kinds) for _ in range(count)]
        return [i[0] for i in items] if scalar else items
    return enc, dec


_U32 = struct.Struct("!I")


def _data():
    """File data: u32 length + bytes, at most MAX_CHUNK. Neither side copies it here: encode hands
    the length and the data to encode()'s one join as two pieces, decode returns a memoryview of
    the message (hashlib and file writes take it as it is)."""
    st = struct.Struct("!I")

    def enc(value, name):
        _local(len(value) <= MAX_CHUNK, f"{name} over {MAX_CHUNK} bytes")
        return (st.pack(len(value)), value)

    def dec(r, name):
        n = r.unpack(st, name)[0]
        _need(n <= MAX_CHUNK, f"{r.what}: {name} of {n} bytes (max {MAX_CHUNK})")
        return r.take(n, name)
    return enc, dec


def _digest():
    """Exactly 32 bytes (a SHA-256)."""
    def enc(value, name):
        _local(len(value) == 32, f"{name} must be 32 bytes")
        return bytes(value)
    return enc, lambda r, name: bytes(r.take(32, name))

def _batch():
    """u16 count (<= MAX_BATCH) + that many (u32 length + one encoded file message, not a Batch)."""
    count, length = struct.Struct("!H"), struct.Struct("!I")

    def enc(messages, name):
        _local(len(messages) <= MAX_BATCH, f"{name}: {len(messages)} messages (max {MAX_BATCH})")
        _local(not any(isinstance(msg, Batch) for msg in messages), f"{name}: a Batch inside a Batch")
        parts = [count.pack(len(messages))]
        for msg in messages:
            raw = encode(msg)
            parts += (length.pack(len(raw)), raw)
        return tuple(parts)

    def dec(r, name):
        n = r.unpack(count, name)[0]
        _need(n <= MAX_BATCH, f"{r.what}: {n} {name} (max {MAX_BATCH})")
        messages = []
        for _ in range(n):
            size = r.unpack(length, name)[0]
            raw = r.take(size, name)
            _need(size > 0 and raw[0] != BATCH_CODE, f"{r.what}: an empty message or a Batch inside")
            messages.append(decode(raw))
        return messages
    return enc, dec


KINDS = {
    "u8": _int("B"), "u32": _int("I"), "u64": _int("Q"), "i64": _int("q"),
    "path": _blob("H", MAX_PATH, text=True),
    "text": _blob("H", MAX_TEXT, text=True),
    "data": _data(),
    "b32": _digest(),
    "hashes": _blob("H", 32 * MAX_BLOCKS),
    "batch": _batch(),
}
KINDS["entries"] = _list(("path", "u8", "u64", "i64"), MAX_ENTRIES)        # path, kind, size, mtime_ns
KINDS["decisions"] = _list(("u8", "u64", "u32", "hashes", "text"), MAX_ENTRIES)
KINDS["paths"] = _list("path", MAX_FETCH)
KINDS["listing"] = _list(("path", "u8", "u64", "i64"), MAX_LISTING)       # name, kind, size, mtime_ns


# ---------------------------------------------------------------------------- messages

class _Message:
    """FIELDS: ((attribute, kind), ...) in wire order."""
    FIELDS = ()

    def validate(self):
        """Raise RemoteProtocolError when decoded values make no sense."""


@dataclass
class ListDir(_Message):
    """Viewer -> host: list this folder of the host's allowed folder ("" = the folder itself)."""
    req: int
    path: str
    FIELDS = (("req", "u32"), ("path", "path"))


@dataclass
class Listing(_Message):
    """Host -> viewer: the folder's entries [(name, kind, size, mtime_ns)], or why not (`error`)."""
    req: int
    path: str
    error: str = ""
    truncated: int = 0
    entries: list = field(default_factory=list)
    FIELDS = (("req", "u32"), ("path", "path"), ("error", "text"), ("truncated", "u8"),
              ("entries", "listing"))


@dataclass
class Fetch(_Message):
    """Viewer -> host: send me these paths (relative to the host's folder) as transfer `tid`."""
    tid: int
    policy: int
    paths: list
    FIELDS = (("tid", "u32"), ("policy", "u8"), ("paths", "paths"))

    def validate(self):
        _need(self.policy in POLICIES, f"unknown policy {self.policy}")


@dataclass
class Offer(_Message):
    """Sender -> receiver: entries [(path, kind, size, mtime_ns)] to write under folder `dest`
    (relative to the receiver's folder); folders come before what they hold."""
    tid: int
    dest: str
    policy: int
    entries: list
    FIELDS = (("tid", "u32"), ("dest", "path"), ("policy", "u8"), ("entries", "entries"))

    def validate(self):
        _need(self.policy in POLICIES, f"unknown policy {self.policy}")
        for _path, kind, size, _mtime in self.entries:
            _need(kind in ENTRY_KINDS, f"unknown entry kind {kind}")
            _need(size <= MAX_SIZE, f"entry size {size} is not believable")


@dataclass
class Accept(_Message):
    """Receiver -> sender: [(action, offset, block, hashes, note)] one per offered entry.

    RESUME: the receiver holds `offset` bytes; `hashes` are the SHA-256 of each `block`-byte piece
    of them, so the sender starts at the first piece that differs from its file."""
    tid: int
    decisions: list
    FIELDS = (("tid", "u32"), ("decisions", "decisions"))

    def validate(self):
        for action, offset, block, hashes, _note in self.decisions:
            _need(action in ACTIONS, f"unknown decision {action}")
            _need(len(hashes) % 32 == 0, "resume hashes are not whole SHA-256 digests")
            if action == ACT_RESUME:
                _need(block > 0 and len(hashes) // 32 * block >= offset, "resume hashes do not cover the part")


@dataclass
class Chunk(_Message):
    tid: int
    index: int
    offset: int
    data: bytes
    FIELDS = (("tid", "u32"), ("index", "u32"), ("offset", "u64"), ("data", "data"))


@dataclass
class Done(_Message):
    tid: int
    index: int
    sha256: bytes
    FIELDS = (("tid", "u32"), ("index", "u32"), ("sha256", "b32"))


@dataclass
class End(_Message):
    tid: int
    FIELDS = (("tid", "u32"),)


@dataclass
class Summary(_Message):
    tid: int
    verified: int
    failed: int
    bytes: int
    FIELDS = (("tid", "u32"), ("verified", "u32"), ("failed", "u32"), ("bytes", "u64"))


@dataclass
class Error(_Message):
    tid: int
    index: int
    text: str
    FIELDS = (("tid", "u32"), ("index", "u32"), ("text", "text"))


@dataclass
class Cancel(_Message):
    tid: int
    text: str = ""
    FIELDS = (("tid", "u32"), ("text", "text"))


@dataclass
class MkDir(_Message):
    """Viewer -> host: make the folder `path` (its parent must exist; an existing name is refused)."""
    req: int
    path: str
    FIELDS = (("req", "u32"), ("path", "path"))


@dataclass
class Rename(_Message):
    """Viewer -> host: give `path` the name/place `new_path` (never over an existing name)."""
    req: int
    path: str
    new_path: str
    FIELDS = (("req", "u32"), ("path", "path"), ("new_path", "path"))


@dataclass
class Delete(_Message):
    """Viewer -> host: delete the file or the folder (with all it holds) `path`."""
    req: int
    path: str
    FIELDS = (("req", "u32"), ("path", "path"))


@dataclass
class Changed(_Message):
    """Host -> viewer: the answer to MkDir / Rename / Delete `req`: "" done, else why not."""
    req: int
    error: str = ""
    FIELDS = (("req", "u32"), ("error", "text"))


@dataclass
class Got(_Message):
    """Receiver -> sender: bytes of file data received in this session so far, every transfer
    counted (sent at least every files_flow.ACK_BYTES), so the sender keeps only a window in flight."""
    received: int
    FIELDS = (("received", "u64"),)


@dataclass
class Batch(_Message):
    """Several small file messages in one (the Chunk and Done of 10,000 small files would otherwise
    be 20,000 records, each with its cipher set-up); handled in order, as if sent one by one."""
    messages: list
    FIELDS = (("messages", "batch"),)


MESSAGE_TYPES = {1: ListDir, 2: Listing, 3: Fetch, 4: Offer, 5: Accept, 6: Chunk, 7: Done, 8: End,
                 9: Summary, 10: Error, 11: Cancel, 12: MkDir, 13: Rename, 14: Delete, 15: Changed,
                 16: Got, 17: Batch}
_TYPE_CODES = {cls: code for code, cls in MESSAGE_TYPES.items()}
CHUNK_CODE, BATCH_CODE = _TYPE_CODES[Chunk], _TYPE_CODES[Batch]


def encode(msg) -> bytes:
    """One file message -> bytes. Raises LocalProtocolError."""
    code = _TYPE_CODES.get(type(msg))
    _local(code is not None, f"not a file message: {type(msg).__name__}")
    parts = [bytes([code])]
    for name, kind in msg.FIELDS:
        piece = KINDS[kind][0](getattr(msg, name), f"{type(msg).__name__}.{name}")
        parts += piece if isinstance(piece, tuple) else (piece,)
    return b"".join(parts)


def decode(data) -> object:
    """bytes -> one file message. Raises RemoteProtocolError only."""
    _need(len(data) > 0, "empty file message")
    cls = MESSAGE_TYPES.get(data[0])
    _need(cls is not None, f"unknown file message type {data[0]}")
    reader = _Reader(data, cls.__name__)
    reader.pos = 1
    values = [KINDS[kind][1](reader, name) for name, kind in cls.FIELDS]
    _need(reader.pos == len(reader.data), f"{cls.__name__} has trailing bytes")
    msg = cls(*values)
    msg.validate()
    return msg
