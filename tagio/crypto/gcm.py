"""AES-256-GCM for small records, with the key's work done once instead of once per record.

Theory of operation. pycryptodome's `AES.new(key, MODE_GCM, nonce=...)` is the right tool for a
large record, but each call expands the key three times, builds GHASH tables for H = AES_K(0^128)
and runs ~200 Python calls: ~70-100 us before a byte is encrypted, even for a 5-byte FrameAck. A
session sends and receives one such small record per frame in each direction, so on a host that
streams a small animation that setup was the largest single cost (tagio.session.host).

Everything in that setup depends on the key alone, so `SmallGcm` does it once per key with
pycryptodome's public API (an AES-ECB object, the key schedule) and keeps the GHASH
multiplication by H as sixteen 256-entry tables of Python ints (the classic 8-bit table method of
McGrew and Viega's GCM paper). Per record it then does what SP 800-38D says, nothing more:

    counter blocks J0 = nonce || 1, nonce || 2, ...   one AES-ECB call for all of them
    ciphertext = plaintext XOR AES_K(J0 + 1 ...)
    tag = GHASH_H(aad, ciphertext) XOR AES_K(J0)       16 table look-ups per 16-byte block

The output is standard AES-256-GCM, byte for byte the same as pycryptodome's (the tests compare
the two on every length up to MAX_SMALL and check a NIST vector), so the wire does not change.
`open()` compares tags in constant time (hmac.compare_digest) and returns no plaintext before the
tag matched. Per block this costs ~1 us of Python against ~0 for pycryptodome's C, so it pays only
for short records: records.py uses it up to MAX_SMALL bytes and pycryptodome above.

Like any table-driven GHASH (and unlike a CLMUL one) the look-ups depend on H and on the data; a
process that shares this machine's caches could in principle time them. The tables are per
session direction and change at every rekey.
"""

import hmac

from Crypto.Cipher import AES

MAX_SMALL = 256     # plaintext bytes (record type + payload) up to which SmallGcm is cheaper
BLOCK = 16
_R = 0xE1 << 120    # x^128 + x^7 + x^2 + x + 1, in GCM's reflected bit order
_COUNTERS = [n.to_bytes(4, "big") for n in range(1, MAX_SMALL // BLOCK + 3)]


def _tables(h):
    """Sixteen tables: tables[k][b] = (byte b at position k of a block) * H in GF(2^128)."""
    powers, v = [], h       # powers[i] = H * x^i: the product with the block whose bit i is set
    for _ in range(128):
        powers.append(v)
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    tables = []
    for k in range(BLOCK):
        table = [0] * 256
        for b in range(1, 256):
            low = b & -b                    # the product is linear: add one bit to a smaller b
            table[b] = table[b ^ low] ^ powers[8 * k + 8 - low.bit_length()]
        tables.append(table)
    return tables


class SmallGcm:
    """AES-GCM with a 12-byte nonce and a 16-byte tag for one key (a session direction's epoch)."""

    def __init__(self, key: bytes):
        self._ecb = AES.new(bytes(key), AES.MODE_ECB)
        self._tables = _tables(int.from_bytes(self._ecb.encrypt(bytes(BLOCK)), "big"))

    def seal(self, nonce: bytes, aad: bytes, plain: bytes) -> bytes:
        """ciphertext || tag of `plain` (at most MAX_SMALL bytes) under `nonce`, `aad` authenticated."""
        stream = self._keystream(nonce, len(plain))
        cipher = _xor(plain, stream)
        return cipher + self._tag(stream, aad, cipher)

    def open(self, nonce: bytes, aad: bytes, sealed: bytes) -> bytes:
        """The plaintext of ciphertext || tag; ValueError when the tag does not match."""
        cipher, tag = sealed[:-BLOCK], sealed[-BLOCK:]
        stream = self._keystream(nonce, len(cipher))
        if not hmac.compare_digest(self._tag(stream, aad, cipher), tag):
            raise ValueError("MAC check failed")
        return _xor(cipher, stream)

    def _keystream(self, nonce, size):
        """AES_K(J0), then the key stream for `size` bytes: one ECB call on the counter blocks."""
        if size > MAX_SMALL or len(nonce) != 12:
            raise ValueError("SmallGcm takes a 12-byte nonce and at most MAX_SMALL bytes")
        return self._ecb.encrypt(b"".join([nonce + n for n in _COUNTERS[:(size + BLOCK - 1) // BLOCK + 1]]))

    def _tag(self, stream, aad, cipher):
        """GHASH_H(aad, cipher) XOR AES_K(J0): y = (y XOR block) * H for each block of the
        zero-padded aad, then of the cipher text, then of their bit lengths, by table look-ups."""
        t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15 = self._tables
        y = 0
        blocks = _blocks(aad) + _blocks(cipher) + [len(aad) * 8 << 64 | len(cipher) * 8]
        for block in blocks:
            x = (y ^ block).to_bytes(BLOCK, "big")
            y = (t0[x[0]] ^ t1[x[1]] ^ t2[x[2]] ^ t3[x[3]] ^ t4[x[4]] ^ t5[x[5]] ^ t6[x[6]] ^ t7[x[7]]
                 ^ t8[x[8]] ^ t9[x[9]] ^ t10[x[10]] ^ t11[x[11]] ^ t12[x[12]] ^ t13[x[13]] ^ t14[x[14]]
                 ^ t15[x[15]])
        return (y ^ int.from_bytes(stream[:BLOCK], "big")).to_bytes(BLOCK, "big")


def _xor(data, stream):
    """`data` XOR the key stream after AES_K(J0) (the counter blocks from J0 + 1 on)."""
    size = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[BLOCK:BLOCK + size], "big")).to_bytes(size, "big")


def _blocks(data):
    """The 16-byte blocks of `data` as ints, the last one padded with zero bytes."""
    size = len(data)
    return [int.from_bytes(data[off:off + BLOCK], "big") << 8 * max(0, off + BLOCK - size)
            for off in range(0, size, BLOCK)]
