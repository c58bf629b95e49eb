"""Sans-I/O AEAD record layer: seal messages into records, open a byte stream of records.

Theory of operation. The record layout is tagio.protocol.records; this module adds the
cryptography. Each direction has its own key and 4-byte nonce prefix
(see kdf.record_keys). A record on the wire is

    length (4, big-endian) || seq (8, big-endian) || AEAD(type || payload) || tag (16)

where the 12-byte header is the AEAD's associated data and the nonce is
prefix || seq. Sequence numbers start at 0 and must arrive in order, so the
receiver knows exactly which nonce to expect: a flipped bit fails the tag
("tamper"); a record whose header names an earlier/later seq that still
authenticates under its own nonce was replayed/reordered ("replay",
"reorder"); a stream that ends inside a record or without a CLOSE record was
cut ("truncation"). Every REKEY_INTERVAL records both sides step the key
through a one-way function (kdf.next_key), far below any counter limit; the
64-bit seq itself can never wrap in practice and is refused if it would.

The record types live inside the ciphertext so an attacker cannot forge a
CLOSE. Any failure is terminal: the opener stays failed and re-raises.

Each key (per direction, per epoch) is used through one keyed object (tagio.crypto.aead): for
AES-GCM that object does the per-key work once instead of per record, which is most of what a
small record costs; the records are the same bytes as pycryptodome's GCM makes.

The host seals a record per frame and opens an acknowledgement every other frame, so the path of
one record is kept short: the epoch's keyed object, prefix and seq range are attributes read per
record (the key steps only at the epoch's end), the nonce's seq bytes are the header's own, the
header's length is checked inline rather than through a header object, and each record is laid
out and encrypted in one output buffer.
"""

from Crypto.Cipher import AES, ChaCha20_Poly1305

from tagio.crypto import aead
from tagio.crypto.kdf import next_key
from tagio.errors import LocalProtocolError, SecureChannelError
from tagio.protocol.records import (  # noqa: F401  (the wire layout lives in protocol/records.py)
    HEADER, HEADER_LEN, MAX_BODY, MAX_MESSAGE, MAX_RECORD, MAX_SEQ, MIN_BODY, REC_CLOSE, REC_DATA,
    RECORD_TYPES, TAG_LEN, decode_header,
)

REKEY_INTERVAL = 1 << 20        # records per key: 64 GiB at 64 KiB records

# The cipher is fixed per protocol version; the table keeps the choice in one place.
# AES-256-GCM measured ~800 MB/s here vs ~490 MB/s for ChaCha20-Poly1305 (tests/bench/crypto.py).
CIPHERS = {
    "aes-256-gcm": lambda key, nonce: AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_LEN),
    "chacha20-poly1305": lambda key, nonce: ChaCha20_Poly1305.new(key=key, nonce=nonce),
}
DEFAULT_CIPHER = "aes-256-gcm"
# key -> keyed AEAD for the ciphers that have a faster form than a CIPHERS object per record
# (aead.KeyedGcm is None if pycryptodome's private pieces failed its self-tests).
KEYED = {"aes-256-gcm": lambda key: aead.KeyedGcm(key, TAG_LEN)} if aead.KeyedGcm else {}


def keyed_aead(cipher: str, key: bytes):
    """The object that seals and opens every record of one key: seal(nonce, aad, body) -> tag,
    open(nonce, aad, ciphertext, tag) -> plaintext or ValueError."""
    if cipher in KEYED:
        return KEYED[cipher](key)
    return aead.PerRecordAead(CIPHERS[cipher], key)


def channel_error(cause: str, detail: str) -> SecureChannelError:
    """A SecureChannelError whose `.cause` names what happened."""
    err = SecureChannelError(f"secure channel broken ({cause}): {detail}")
    err.cause = cause
    return err


class _KeySchedule:
    """The keyed AEAD of one direction's current epoch, which holds the records start..end - 1;
    step() moves to the next epoch. Records read `aead`, `prefix`, `start` and `end` directly
    (attributes, not calls: this is on the path of every record)."""

    def __init__(self, key: bytes, prefix: bytes, cipher: str, rekey_interval: int):
        if cipher not in CIPHERS or len(prefix) != 4 or rekey_interval < 1:
            raise LocalProtocolError("bad record key parameters")
        self._key, self._cipher, self._interval = key, cipher, rekey_interval
        self.prefix, self.start, self.end = prefix, 0, rekey_interval
        self.aead = keyed_aead(cipher, key)

    def step(self) -> None:
        """The next epoch: its key is next_key() of this one's."""
        self._key = next_key(self._key)
        self.start, self.end = self.end, self.end + self._interval
        self.aead = keyed_aead(self._cipher, self._key)


class RecordSealer:
    """Turns messages into records for one direction."""

    def __init__(self, key, prefix, *, cipher=DEFAULT_CIPHER, rekey_interval=REKEY_INTERVAL):
        self._keys = _KeySchedule(key, prefix, cipher, rekey_interval)
        self.seq = 0

    def seal(self, payload: bytes, rec_type: int = REC_DATA) -> bytes:
        """One record; raises LocalProtocolError if the payload is too big."""
        size, seq, keys = len(payload), self.seq, self._keys
        if size > MAX_RECORD:
            raise LocalProtocolError(f"message of {size} bytes exceeds {MAX_RECORD}")
        if seq >= MAX_SEQ:
            raise channel_error("exhausted", "record counter would wrap")
        if seq >= keys.end:     # seq counts up by one, so this is the first record of the next epoch
            keys.step()
        header = HEADER.pack(1 + size + TAG_LEN, seq)
        # The plaintext is laid out in the output buffer once and encrypted there in place.
        end = HEADER_LEN + 1 + size
        out = bytearray(end + TAG_LEN)
        out[:HEADER_LEN], out[HEADER_LEN] = header, rec_type
        out[HEADER_LEN + 1:end] = payload
        # The nonce is prefix || seq, and the header's last 8 bytes are seq (big-endian).
        out[end:] = keys.aead.seal(keys.prefix + header[4:], header, memoryview(out)[HEADER_LEN:end])
        self.seq = seq + 1
        return out


class RecordOpener:
    """Feed it received bytes; it returns whole (type, payload) records, in order."""

    def __init__(self, key, prefix, *, cipher=DEFAULT_CIPHER, rekey_interval=REKEY_INTERVAL):
        self._keys = _KeySchedule(key, prefix, cipher, rekey_interval)
        self._buf = bytearray()
        self.seq = 0
        self.error = None
        self.closed = False     # a CLOSE record arrived

    def feed(self, data: bytes) -> list:
        """Records completed by `data`; raises SecureChannelError (terminal).

        Records that authenticated before a failure are still returned; the
        failure is then raised by the next feed()/end_of_stream() call.
        """
        if self.error is not None:
            raise self.error
        if self.closed:
            return []           # bytes after CLOSE are ignored, never delivered
        self._buf += data
        out = []
        try:
            while not self.closed and len(self._buf) >= HEADER_LEN:
                record = self._next_record()
                if record is None:
                    break
                out.append(record)
        except SecureChannelError as exc:
            self.error = exc
            self._buf = bytearray()     # not clear(): a traceback may still hold a view of it
            if not out:
                raise
            # Deliver the good records that came before the bad one; the next call raises.
        return out

    def end_of_stream(self) -> None:
        """The transport hit EOF: raise SecureChannelError unless the peer closed cleanly."""
        if self.error is not None:
            raise self.error
        if self.closed:
            return
        where = "inside a record" if self._buf else "without a close record"
        self.error = channel_error("truncation", f"the stream ended {where}")
        raise self.error

    def _next_record(self):
        """The next whole record of the buffer (which holds at least a header), or None."""
        buf = self._buf
        length, seq = HEADER.unpack_from(buf)
        if not MIN_BODY <= length <= MAX_BODY:  # protocol.records.decode_header's rule, inline (per record)
            # The header is authenticated data: a bad one is tamper.
            raise channel_error("tamper", f"record length {length} out of range")
        end = HEADER_LEN + length
        if len(buf) < end:
            return None
        rec_type, payload = self._open(memoryview(buf)[:end], seq)
        del buf[:end]               # the views above are gone by now (they were temporaries)
        return self._accept(seq, rec_type, payload)

    def _open(self, record, seq) -> tuple:
        """(type, payload) of one whole record, decrypted in place of copies; tamper if forged."""
        # Authenticate under the nonce the header claims (prefix || the header's seq bytes): if
        # that works, the header's seq is genuine and a mismatch is a replay/reorder, not a bit flip.
        keys = self._keys
        if seq == self.seq and seq >= keys.end:     # the first record of the next epoch
            keys.step()
        try:
            if not keys.start <= seq < keys.end:
                raise ValueError("other epoch")
            # open() returns nothing before the tag passed
            plain = keys.aead.open(keys.prefix + record[4:HEADER_LEN], record[:HEADER_LEN],
                                   record[HEADER_LEN:-TAG_LEN], record[-TAG_LEN:])
            return plain[0], plain[1:]
        except ValueError:
            raise channel_error("tamper", f"record {seq} failed authentication") from None

    def _accept(self, seq, rec_type, payload):
        if seq < self.seq:
            raise channel_error("replay", f"record {seq} arrived again (expected {self.seq})")
        if seq > self.seq:
            raise channel_error("reorder", f"record {seq} arrived while {self.seq} was expected")
        if rec_type not in RECORD_TYPES:
            raise channel_error("protocol", f"unknown record type {rec_type}")
        self.seq += 1
        if rec_type == REC_CLOSE:
            self.closed = True
        return rec_type, payload
