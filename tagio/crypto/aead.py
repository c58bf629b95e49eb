"""The record layer's AEAD, keyed once: AES-256-GCM with the per-key work cached.

Theory of operation. pycryptodome's `AES.new(key, MODE_GCM, nonce=...)` redoes the per-key work
for every message: three AES key expansions (ECB for H, CTR for the data, CTR for the tag), a GHASH
table expansion and ~30 cffi pointer conversions, all in Python. The host seals a record per frame
and opens an acknowledgement every other frame, so that setup used to be most of what a record
cost. `CachedGcm` does the per-key work once (per direction, per rekey epoch) and builds each
record from pycryptodome's own primitives, per NIST SP 800-38D with a 96-bit IV:

    J0 = nonce || 0x00000001                       mask = E_K(J0)   (the cached AES-ECB object)
    C  = P xor AES-CTR_K(inc32(J0), ...)           S    = GHASH_H(A || 0* || C || 0* || [8|A|]64 || [8|C|]64)
    tag = (S xor mask)[:tag_len]                   H    = E_K(0^128), its GHASH tables expanded once

All AES and all GHASH multiplication stay inside pycryptodome's C code: AES in the cached ECB object
(and a CTR object for long bodies), the GHASH tables and multiplications in pycryptodome's `_GHASH`
over the C module pycryptodome itself would pick (`_ghash_clmul`, else `_ghash_portable`), the
keystream xored onto the data, and S onto the tag mask, by `Crypto.Util.strxor`. What is written
here is only the composition: the counter blocks, the padding and length block, and which call gets
which bytes (an earlier Python GHASH was removed for cache-timing reasons; none comes back). For a
body up to SMALL_BODY the keystream is one ECB call over the counter blocks J0, inc32(J0), ...
(cheaper than building a CTR object, and it yields the mask too) and GHASH is one call over a copy
of the padded input; a longer body goes through a pycryptodome CTR object and is hashed in place,
where those fixed costs no longer matter. One `_GHASH` object serves every record of a key:
pycryptodome's GHASH continues from its last value Y, so each record first feeds Y itself as one
block, (Y xor Y)·H = 0, and so starts from zero.

Even so, a small record went through ~100 Python-level calls, nearly all of them pycryptodome's
wrappers (pointer conversions, output buffers, length checks) around a few microseconds of C, and
each costs several times more in the live host, whose threads sleep between frames. `RawGcm`, a
CachedGcm, skips the wrappers for bodies up to SMALL_BODY: it calls the same C functions
pycryptodome loaded (the raw ECB encrypt with the cached ECB object's state, the GHASH C function
with the key's expanded table, the raw strxor) with pointers and sizes, on a counter/keystream
buffer pair and a 16-byte S buffer allocated once per key and grown only for a longer record:

    counter blocks = template (0^96 || 1, 0^96 || 2, ...) xor (nonce || 0^32) repeated   strxor
    E_K(counter blocks) -> mask || keystream                                              ECB
    body xor keystream into the counter buffer, read out (into the body, for seal)        strxor
    S = GHASH from zero over A || 0* || C || 0* || lengths (one joined copy)               ghash
    tag = S xor mask                                                                      strxor

about fifteen calls a record. The buffers are the object's own and each object serves one thread
(each direction of a channel has its own); what leaves them is copied out (the tag, the plaintext)
and only the bytes this record wrote are read, so nothing passes from one record to another. The C
functions are pycryptodome's on either of its backends, cffi (used when it can be imported) or
ctypes: the few buffer operations that differ (allocate, offset, read out, a pointer to a caller's
buffer) come from a table per backend, as C-level callables where the backend has them, and on ctypes the functions are called through prototypes
of our own that convert sizes to size_t (pycryptodome declares none there).

Opening computes the tag over the received ciphertext and compares it in constant time
(hmac.compare_digest) before anything is decrypted. `_GHASH`, the raw libraries and the objects'
states are private to pycryptodome, so they are looked up defensively and each form is checked once
at import against the GCM spec's AES-256 known answers, against pycryptodome's own GCM (a long body,
then records of several sizes on one object): `RawGcm` is None if anything is missing or differs
(or off CPython), and `KeyedGcm`, what the record layer uses, falls back to `CachedGcm`; if that
fails too, KeyedGcm is None and the record layer uses a pycryptodome GCM object per record
(`PerRecordAead`), which is also how ChaCha20-Poly1305 is used. The records are the same bytes on
every path.

An object serves one thread at a time (each direction of a channel has its own).
"""

import functools
import importlib
import struct
import sys
from hmac import compare_digest

from Crypto.Cipher import AES
from Crypto.Util.strxor import strxor

try:
    from Crypto.Cipher import _mode_gcm     # private to pycryptodome: see cached_gcm()
except ImportError:
    _mode_gcm = None

BLOCK = 16
NONCE_LEN = 12
SMALL_BODY = 64 * 1024 + BLOCK              # bodies up to here take the one-ECB-call keystream
_LENGTHS = struct.Struct(">QQ")             # the last GHASH block: bit lengths of A and C
_ZEROS = bytes(BLOCK)
_J0_COUNTER = (1).to_bytes(4, "big")
_CTR_START = 2                              # inc32(J0): the first counter of the payload
# Low two bytes of the counters 1, 2, ... for the counter blocks of a small body (the two above
# them stay zero: a small body needs at most SMALL_BODY / 16 + 1 < 2**16 counters).
_COUNTER_HI = bytes(i >> 8 for i in range(1, SMALL_BODY // BLOCK + 2))
_COUNTER_LO = bytes(i & 0xFF for i in range(1, SMALL_BODY // BLOCK + 2))
_NONCE_TO_BLOCK = bytes(4)                  # nonce || these = a counter block with the counter zeroed


def _pad(length: int) -> bytes:
    """The zeros that fill the last GHASH block of `length` bytes."""
    return _ZEROS[:-length % BLOCK]


def _xor16(one, two) -> bytes:
    """One 16-byte block xor another (S and the mask) in pycryptodome's C strxor: constant time.
    Python ints would be ~4 us cheaper a record, but int.from_bytes strips leading zero bytes, so
    its time would depend on the secret mask, however slightly."""
    return strxor(one, two)


def _counter_blocks(nonce: bytes, count: int) -> bytearray:
    """J0 = nonce || 1, then nonce || 2, ..., `count` blocks (two strided copies, in C)."""
    blocks = bytearray((nonce + bytes(4)) * count)
    blocks[BLOCK - 2::BLOCK] = _COUNTER_HI[:count]
    blocks[BLOCK - 1::BLOCK] = _COUNTER_LO[:count]
    return blocks


# 0^96 || 1, 0^96 || 2, ...: xored with (nonce || 0^32) * n, the first n counter blocks of a nonce.
_COUNTERS = bytes(_counter_blocks(bytes(NONCE_LEN), SMALL_BODY // BLOCK + 1))


class PerRecordAead:
    """A pycryptodome AEAD object per record, from `new(key, nonce)`: ChaCha20-Poly1305, and
    AES-GCM where CachedGcm is unavailable. Same interface as CachedGcm."""

    def __init__(self, new, key: bytes):
        self._new, self._key = new, key

    def seal(self, nonce, aad, body) -> bytes:
        """Encrypt `body` (a writable buffer) in place; return the tag."""
        aead = self._new(self._key, nonce)
        aead.update(aad)
        aead.encrypt(body, output=body)
        return aead.digest()

    def open(self, nonce, aad, ciphertext, tag) -> bytes:
        """The plaintext; ValueError if the tag is wrong (nothing is returned then)."""
        aead = self._new(self._key, nonce)
        aead.update(aad)
        return aead.decrypt_and_verify(ciphertext, tag)


class _CachedGcm:
    """AES-GCM under one key with 96-bit nonces: the key's AES and GHASH set up once.
    cached_gcm() makes the usable subclass, with pycryptodome's GHASH pieces filled in."""

    GHASH = GHASH_C = None      # pycryptodome's _GHASH class and the C module it runs on

    def __init__(self, key: bytes, tag_len: int = BLOCK, ghash_c=None):
        self._key, self._tag_len = key, tag_len
        self._ecb = AES.new(key, AES.MODE_ECB)
        self._ghash = self.GHASH(self._ecb.encrypt(_ZEROS), ghash_c or self.GHASH_C)

    def seal(self, nonce, aad, body) -> bytes:
        """Encrypt `body` (a writable buffer) in place; return the tag."""
        mask, apply_keystream = self._ctr(nonce, len(body))
        apply_keystream(body, body)
        return _xor16(self._hash(aad, body), mask)[:self._tag_len]

    def open(self, nonce, aad, ciphertext, tag) -> bytes:
        """The plaintext; ValueError if the tag is wrong, checked before anything is decrypted."""
        mask, apply_keystream = self._ctr(nonce, len(ciphertext))
        expected = _xor16(self._hash(aad, ciphertext), mask)[:self._tag_len]
        if not compare_digest(expected, tag):
            raise ValueError("MAC check failed")
        return apply_keystream(ciphertext, None)

    def _ctr(self, nonce, size):
        """(E_K(J0), f(data, output) that xors AES-CTR's keystream from inc32(J0) onto data)."""
        if len(nonce) != NONCE_LEN:
            raise ValueError(f"nonce of {len(nonce)} bytes (need {NONCE_LEN})")
        if size <= SMALL_BODY:
            stream = memoryview(self._ecb.encrypt(_counter_blocks(nonce, 1 + -(-size // BLOCK))))
            keystream = stream[BLOCK:BLOCK + size]
            return stream[:BLOCK], lambda data, output: strxor(data, keystream, output)
        ctr = AES.new(self._key, AES.MODE_CTR, nonce=nonce, initial_value=_CTR_START)
        return self._ecb.encrypt(nonce + _J0_COUNTER), lambda data, output: ctr.encrypt(data, output=output)

    def _hash(self, aad, text) -> bytes:
        """S = GHASH_H(aad || 0* || text || 0* || lengths), from zero (see the module docstring)."""
        ghash = self._ghash
        head = (ghash.digest(), aad, _pad(len(aad)))
        tail = (_pad(len(text)), _LENGTHS.pack(8 * len(aad), 8 * len(text)))
        if len(text) > SMALL_BODY:              # hash the bulk where it lies instead of copying it
            whole = len(text) - len(text) % BLOCK
            ghash.update(b"".join(head))
            ghash.update(text[:whole])
            head, text = (), text[whole:]
        ghash.update(b"".join((*head, text, *tail)))
        return ghash.digest()


class _RawGcm(_CachedGcm):
    """CachedGcm whose records up to SMALL_BODY call pycryptodome's C functions themselves: the
    ECB object's raw state with the raw ECB encrypt, the GHASH C function with the key's expanded
    table, and the raw strxor, on buffers allocated once per key. Longer bodies, and a nonce of the
    wrong size (for its error), go through CachedGcm. raw_gcm() makes the usable subclass, with the
    C functions and the backend's buffer operations (cffi or ctypes, as pycryptodome loaded them)
    filled in as class attributes."""

    ECB_ENCRYPT = GHASH_RAW = STRXOR = None     # C functions: pointers and sizes in (GHASH_RAW makes one)
    NEW = AT = READ = READABLE = None           # the backend's buffer operations (_BACKENDS)

    def __init__(self, key: bytes, tag_len: int = BLOCK, ghash_c=None):
        super().__init__(key, tag_len, ghash_c)
        # The pointers stay valid while self._ecb and self._ghash (which free them) are alive.
        self._ecb_state, self._ghash_table = self._ecb._state.get(), self._ghash._exp_key.get()
        self._ghash_c = self.GHASH_RAW(self._ghash.ghash_c)
        self._y = self.NEW(BLOCK)               # S, then the tag
        self._room = 0                          # bytes in _blocks and _stream (grown on demand)

    def seal(self, nonce, aad, body) -> bytes:
        """Encrypt `body` (a writable buffer) in place; return the tag."""
        size = len(body)
        if size > SMALL_BODY or len(nonce) != NONCE_LEN:
            return super().seal(nonce, aad, body)
        self._keystream(nonce, size)
        self.STRXOR(self.READABLE(body), self._stream_data, self._blocks, size)
        body[:] = self.READ(self._blocks, size)     # TypeError for a read-only body, as before
        self._sign(aad, body)
        return self.READ(self._y, self._tag_len)

    def open(self, nonce, aad, ciphertext, tag) -> bytes:
        """The plaintext; ValueError if the tag is wrong, checked before anything is decrypted."""
        size = len(ciphertext)
        if size > SMALL_BODY or len(nonce) != NONCE_LEN:
            return super().open(nonce, aad, ciphertext, tag)
        self._keystream(nonce, size)
        self._sign(aad, ciphertext)
        if not compare_digest(self.READ(self._y, self._tag_len), tag):
            raise ValueError("MAC check failed")
        self.STRXOR(self.READABLE(ciphertext), self._stream_data, self._blocks, size)
        return self.READ(self._blocks, size)

    def _keystream(self, nonce, size) -> None:
        """E_K(J0), E_K(inc32(J0)), ... into _stream: the tag mask, then at least `size` bytes of
        keystream (at _stream_data). The counter blocks are the template xor the repeated nonce."""
        span = (size + 2 * BLOCK - 1) & -BLOCK          # J0 and ceil(size / 16) counter blocks
        if span > self._room:
            self._grow(span)
        self.STRXOR(_COUNTERS, (nonce + _NONCE_TO_BLOCK) * (span // BLOCK), self._blocks, span)
        if self.ECB_ENCRYPT(self._ecb_state, self._blocks, self._stream, span):
            raise RuntimeError("AES-ECB failed")     # ours, not the peer's: never "tampered"

    def _sign(self, aad, ciphertext) -> None:
        """S xor E_K(J0), the full tag, into _y: one GHASH call over a padded copy of the input."""
        text = b"".join((aad, _ZEROS[:-len(aad) % BLOCK], ciphertext, _ZEROS[:-len(ciphertext) % BLOCK],
                         _LENGTHS.pack(8 * len(aad), 8 * len(ciphertext))))
        if self._ghash_c(self._y, text, len(text), _ZEROS, self._ghash_table):
            raise RuntimeError("GHASH failed")
        self.STRXOR(self._y, self._stream, self._y, BLOCK)

    def _grow(self, span: int) -> None:
        """Room for `span` bytes of counter blocks and keystream: reallocated only when a record
        is longer than any before it (each direction's object serves one thread)."""
        self._room = max(span, 4096)
        self._blocks, self._stream = self.NEW(self._room), self.NEW(self._room)
        self._stream_data = self.AT(self._stream, BLOCK)


def _cffi_operations(raw_api) -> dict:
    """Buffer operations on cffi, where bytes, char[] buffers and Python ints pass to C as they are.
    The per-record ones are taken from cffi's C module itself where it is there (the FFI object's
    methods add a Python layer that resolves the type name on every call)."""
    ffi = raw_api.ffi
    backend, char_array = getattr(ffi, "_backend", ffi), ffi.typeof("char[]")
    return {"NEW": lambda size: ffi.new(char_array, size), "AT": lambda buffer, offset: buffer + offset,
            "READ": backend.unpack, "READABLE": functools.partial(backend.from_buffer, char_array),
            "typed": lambda function, argtypes, returns=True: function}


def _ctypes_operations(raw_api) -> dict:
    """Buffer operations on ctypes. pycryptodome declares no argument types there (it converts each
    size itself), so the C functions are called through prototypes of our own that convert ints
    to size_t and take bytes, buffers and byref() as pointers."""
    import ctypes
    kinds = {"p": ctypes.c_void_p, "n": ctypes.c_size_t}

    def typed(function, argtypes, returns=True):
        prototype = ctypes.CFUNCTYPE(ctypes.c_int if returns else None, *(kinds[kind] for kind in argtypes))
        return prototype(ctypes.cast(function, ctypes.c_void_p).value)

    return {"NEW": ctypes.create_string_buffer, "AT": ctypes.byref, "READ": ctypes.string_at,
            # bytes pass as they are; anything else is copied (ctypes' from_buffer wants it writable)
            "READABLE": bytes, "typed": typed}


_BACKENDS = {"cffi": _cffi_operations, "ctypes": _ctypes_operations}


# GCM spec (McGrew & Viega, as in NIST's GCM validation) test cases 13-16: AES-256, 96-bit IVs.
# Cases 13/14 and 15/16 share a key, which also checks that one key's GHASH restarts per message.
KNOWN_ANSWERS = [  # (key, nonce, aad, plaintext, ciphertext, tag), hex
    ("00" * 32, "00" * 12, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    ("00" * 32, "00" * 12, "", "00" * 16, "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
    ("feffe9928665731c6d6a8f9467308308" * 2, "cafebabefacedbaddecaf888", "",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad", "b094dac5d93471bdec1a502270e3cc6c"),
    ("feffe9928665731c6d6a8f9467308308" * 2, "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", "76fc6ece0f4e1768cddf8853bb2d551b"),
]


def passes_self_test(gcm_class, ghash_c=None) -> bool:
    """Do `gcm_class`'s records match the known answers, and pycryptodome's GCM for a body long
    enough to take the CTR-object path? Any exception counts as no: the pieces are private."""
    keys = {}
    try:
        for key, nonce, aad, plain, cipher, tag in (map(bytes.fromhex, row) for row in KNOWN_ANSWERS):
            gcm = keys.setdefault(key, gcm_class(key, ghash_c=ghash_c))
            body = bytearray(plain)
            if gcm.seal(nonce, aad, memoryview(body)) + body != tag + cipher:
                return False
            if gcm.open(nonce, aad, cipher, tag) != plain:
                return False
        key, nonce, plain = bytes(range(32)), bytes(range(12)), bytes(range(256)) * (SMALL_BODY // 256 + 1)
        cipher, tag = AES.new(key, AES.MODE_GCM, nonce=nonce).update(b"aad").encrypt_and_digest(plain)
        gcm, body = gcm_class(key, ghash_c=ghash_c), bytearray(plain)
        if gcm.seal(nonce, b"aad", memoryview(body)) != tag or body != cipher \
                or gcm.open(nonce, b"aad", cipher, tag) != plain:
            return False
        return _matches_over_reuse(gcm, key)
    except Exception:       # noqa: BLE001 (a changed private API shows as any error at all)
        return False


def _matches_over_reuse(gcm, key) -> bool:
    """After that long body, shorter and longer records on the same object (whose buffers are
    reused and grown) still match pycryptodome's GCM, with the AAD as a header-like view."""
    for seq, size in enumerate((1024, 8, 0, 17, 5000, SMALL_BODY, 1)):
        nonce, plain = bytes(4) + seq.to_bytes(8, "big"), bytes([seq]) * size
        header = memoryview(bytes(range(12)))
        cipher, tag = AES.new(key, AES.MODE_GCM, nonce=nonce).update(header).encrypt_and_digest(plain)
        body = bytearray(plain)
        if gcm.seal(nonce, header, memoryview(body)) != tag or body != cipher \
                or gcm.open(nonce, header, memoryview(cipher), memoryview(tag)) != plain:
            return False
    return True


def cached_gcm(mode_gcm):
    """The CachedGcm class on the GHASH of `mode_gcm` (pycryptodome's Crypto.Cipher._mode_gcm), or
    None if the pieces are missing or fail passes_self_test()."""
    try:     # the C module exactly as pycryptodome picks it for its own GCM (_create_gcm_cipher)
        pieces = {"GHASH": mode_gcm._GHASH, "GHASH_C": mode_gcm._ghash_clmul or mode_gcm._ghash_portable}
    except AttributeError:
        return None
    gcm_class = type("CachedGcm", (_CachedGcm,), pieces)
    return gcm_class if passes_self_test(gcm_class) else None


def raw_gcm(cached_class):
    """The RawGcm class over `cached_class` (CachedGcm) on the C functions pycryptodome loaded, or
    None: no CachedGcm, not CPython (on PyPy pycryptodome copies buffers for C code, which may
    move them), a backend or piece that is not there, or a failed passes_self_test()."""
    if cached_class is None or sys.implementation.name != "cpython":
        return None
    try:
        raw_api = importlib.import_module("Crypto.Util._raw_api")
        operations = _BACKENDS[raw_api.backend](raw_api)
        typed = operations.pop("typed")
        mode_ecb, strxor_module = map(importlib.import_module, ("Crypto.Cipher._mode_ecb", "Crypto.Util.strxor"))
        pieces = {
            "ECB_ENCRYPT": typed(mode_ecb.raw_ecb_lib.ECB_encrypt, "pppn"),
            "STRXOR": typed(strxor_module._raw_strxor.strxor, "pppn", returns=False),   # void
            "GHASH_RAW": lambda ghash_c: typed(ghash_c.ghash, "ppnpp"), **operations}
    except Exception:       # noqa: BLE001 (a changed private API shows as any error at all)
        return None
    # staticmethod: the pieces are plain callables, not methods of the object they are looked up on
    gcm_class = type("RawGcm", (_RawGcm, cached_class), {name: staticmethod(f) for name, f in pieces.items()})
    return gcm_class if passes_self_test(gcm_class) else None


CachedGcm = cached_gcm(_mode_gcm)
RawGcm = raw_gcm(CachedGcm)
KeyedGcm = RawGcm or CachedGcm      # the record layer's AES-GCM; None: a GCM object per record
