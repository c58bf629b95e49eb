"""Record header (protocol/records.py) and whole sealed records: golden vectors byte for byte.

The sealed vectors use a fixed key and nonce prefix, so they pin the AEAD layout as well (the
record layer is deterministic: counter nonces). Replay, reorder and tamper are tested in
test_channel.py."""

import unittest

from Crypto.Cipher import AES, ChaCha20_Poly1305

from tagio.crypto import records
from tagio.crypto.records import RecordOpener, RecordSealer
from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol import records as r
from tests.golden import GoldenVectors, regenerate_if_asked

LAYER = "unit"
KEY = bytes(range(32))
PREFIX = bytes.fromhex("a0a1a2a3")


def seal_all(records) -> bytes:
    sealer = RecordSealer(KEY, PREFIX)
    return b"".join(bytes(sealer.seal(payload, rec_type)) for rec_type, payload in records)


class GoldenTest(GoldenVectors, unittest.TestCase):
    """A sample is ("header", RecordHeader) or ("sealed", [(type, payload), ...] from seq 0)."""
    FORMAT = "records"
    SAMPLES = {
        "header_min": ("header", r.RecordHeader(r.MIN_BODY, 0)),
        "header_max": ("header", r.RecordHeader(r.MAX_BODY, r.MAX_SEQ)),
        "header_hello": ("header", r.RecordHeader.for_payload(5, 7)),
        "sealed_data": ("sealed", [(r.REC_DATA, b"hello")]),
        "sealed_empty_then_close": ("sealed", [(r.REC_DATA, b""), (r.REC_CLOSE, b"")]),
        "sealed_three": ("sealed", [(r.REC_DATA, b"one"), (r.REC_DATA, bytes(300)), (r.REC_DATA, b"three")]),
    }

    def encode(self, sample):
        kind, value = sample
        return value.encode() if kind == "header" else seal_all(value)

    def decode(self, data):
        if len(data) == r.HEADER_LEN:
            return ("header", r.decode_header(data))
        records = RecordOpener(KEY, PREFIX).feed(data)
        return ("sealed", [(rec_type, bytes(payload)) for rec_type, payload in records])

    def test_sealed_records_split_by_the_codec(self):
        data = seal_all([(r.REC_DATA, b"hello")])
        header, body = r.decode_record(data)
        self.assertEqual(header, r.RecordHeader.for_payload(5, 0))
        self.assertEqual(r.encode_record(header, body), data)


class HeaderTest(unittest.TestCase):
    def test_bounds(self):
        for length in (0, r.MIN_BODY - 1, r.MAX_BODY + 1, 0xFFFFFFFF):
            with self.subTest(length=length), self.assertRaisesRegex(RemoteProtocolError, "out of range"):
                r.decode_header(r.HEADER.pack(length, 0))
        with self.assertRaises(RemoteProtocolError):
            r.decode_header(bytes(11))
        with self.assertRaises(LocalProtocolError):
            r.RecordHeader(r.MAX_BODY + 1, 0).encode()
        with self.assertRaises(RemoteProtocolError):
            r.decode_record(r.RecordHeader(r.MIN_BODY, 0).encode() + bytes(r.MIN_BODY - 1))



class StandardAeadTest(unittest.TestCase):
    def test_records_are_standard_aead_of_type_and_payload(self):
        """Both ciphers, sealed in place: header || AEAD_K(prefix || seq)(aad=header, type || payload)."""
        key, prefix = bytes(range(32)), b"\xa0\xa1\xa2\xa3"
        aeads = {"aes-256-gcm": lambda nonce: AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=16),
                 "chacha20-poly1305": lambda nonce: ChaCha20_Poly1305.new(key=key, nonce=nonce)}
        for cipher, new in aeads.items():
            sealer = RecordSealer(key, prefix, cipher=cipher)
            opener = RecordOpener(key, prefix, cipher=cipher)
            for seq, size in enumerate((0, 255, 256, 70000, 30)):     # CLOSE last: the opener ends there
                payload = bytes([seq + 1]) * size
                kind = records.REC_CLOSE if size == 30 else records.REC_DATA
                with self.subTest(cipher=cipher, size=size):
                    record = bytes(sealer.seal(payload, kind))
                    header, aead = record[:12], new(prefix + seq.to_bytes(8, "big"))
                    aead.update(header)
                    self.assertEqual(aead.decrypt_and_verify(record[12:-16], record[-16:]), bytes([kind]) + payload)
                    self.assertEqual(header, records.HEADER.pack(len(record) - 12, seq))
                    if kind == records.REC_DATA:
                        self.assertEqual(opener.feed(record), [(kind, payload)])


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
