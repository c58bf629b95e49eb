"""Golden vectors: one JSON file per wire format in tests/data/, {name: hex}, checked byte for byte.

A format's test module defines SAMPLES {name: message}, and how to encode a message and decode
bytes; GoldenVectors then checks that every sample encodes to its vector and every vector decodes
to its sample. Regenerate a file only on a deliberate wire change:

    python3 -m tests.test_protocol_<format> --regenerate
"""

import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def path_of(fmt: str) -> Path:
    return DATA / f"{fmt}_golden_vectors.json"


def load(fmt: str) -> dict:
    """{name: bytes} of a format's vectors."""
    return {name: bytes.fromhex(hexdata) for name, hexdata in json.loads(path_of(fmt).read_text()).items()}


class GoldenVectors:
    """Mixin for a unittest.TestCase: FORMAT, SAMPLES, encode(msg) -> bytes, decode(bytes) -> msg."""

    FORMAT = ""
    SAMPLES = {}

    def encode(self, msg) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes):
        raise NotImplementedError

    def test_golden_vectors_cover_every_sample(self):
        self.assertEqual(set(load(self.FORMAT)), set(self.SAMPLES))

    def test_golden_encode_byte_for_byte(self):
        vectors = load(self.FORMAT)
        for name, msg in self.SAMPLES.items():
            with self.subTest(name):
                self.assertEqual(bytes(self.encode(msg)).hex(), vectors[name].hex())

    def test_golden_decode(self):
        for name, data in load(self.FORMAT).items():
            with self.subTest(name):
                self.assertEqual(self.decode(data), self.SAMPLES[name])


def regenerate_if_asked(case_class) -> None:
    """`--regenerate` on the command line: rewrite the format's vector file from its samples."""
    if "--regenerate" not in sys.argv:
        return
    case = case_class()
    vectors = {name: bytes(case.encode(msg)).hex() for name, msg in case_class.SAMPLES.items()}
    path_of(case_class.FORMAT).write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {len(vectors)} vectors to {path_of(case_class.FORMAT)}")
    sys.exit(0)
