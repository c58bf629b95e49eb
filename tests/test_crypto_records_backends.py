"""The record layer on each of pycryptodome's backends, in a fresh interpreter each: cffi (when it
can be imported, as here) and ctypes (a machine or frozen build without cffi). Each run reports
which backend pycryptodome took and which keyed AES-GCM the record layer picked (RawGcm when the
raw path passed its self-test there), and checks its records byte for byte against pycryptodome's
own GCM, across sizes that take the raw and the long path and a rekey, and that they open again.
A run on a backend the raw path does not know shows the fallback to CachedGcm, same bytes."""

import json
import subprocess
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child; argv[1] is "ctypes" to hide cffi, "unknown-backend" to name a backend that
# the raw path does not know.
CHILD = r'''
import json, os, sys
if sys.argv[1] == "ctypes":
    sys.modules["cffi"] = None                  # import cffi raises ImportError: pycryptodome takes ctypes
from Crypto.Cipher import AES
from Crypto.Util import _raw_api
if sys.argv[1] == "unknown-backend":
    _raw_api.backend = "unknown"                # pycryptodome still works; the raw path stays off
from tagio.crypto import aead, records
from tagio.crypto.kdf import next_key

key, prefix, interval = os.urandom(32), os.urandom(4), 7
sizes = [0, 1, 8, 15, 16, 17, 1000, 1024, 4095, 65535, aead.SMALL_BODY, aead.SMALL_BODY + 5, 200000, 3, 1024]
messages = [os.urandom(size) for size in sizes]
sealer = records.RecordSealer(key, prefix, rekey_interval=interval)
wire = [bytes(sealer.seal(message)) for message in messages]
keys, same = [key], True
for seq, (message, record) in enumerate(zip(messages, wire)):
    while len(keys) <= seq // interval:
        keys.append(next_key(keys[-1]))
    gcm = AES.new(keys[seq // interval], AES.MODE_GCM, nonce=prefix + seq.to_bytes(8, "big"))
    same = same and record[12:] == b"".join(gcm.update(record[:12]).encrypt_and_digest(b"\0" + message))
opened = records.RecordOpener(key, prefix, rekey_interval=interval).feed(b"".join(wire))
print(json.dumps({"backend": _raw_api.backend, "keyed": aead.KeyedGcm.__name__, "same": same,
                  "opened": [bytes(payload) for _, payload in opened] == messages, "records": len(wire)}))
'''


def run_child(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    if done.returncode:
        raise AssertionError(f"child ({mode}) failed:\n{done.stderr}")
    return json.loads(done.stdout)


class BackendsTest(unittest.TestCase):
    def check(self, mode, backend, keyed):
        report = run_child(mode)
        self.assertEqual((report["backend"], report["keyed"]), (backend, keyed))
        self.assertTrue(report["same"], "records differ from pycryptodome's GCM")
        self.assertTrue(report["opened"], "records did not open to the messages")
        self.assertEqual(report["records"], 15)

    def test_cffi_takes_the_raw_path(self):
        self.check("cffi", "cffi", "RawGcm")

    def test_ctypes_takes_the_raw_path(self):
        self.check("ctypes", "ctypes", "RawGcm")

    def test_without_the_raw_pieces_the_cached_path_makes_the_same_records(self):
        report = run_child("unknown-backend")
        self.assertEqual((report["backend"], report["keyed"]), ("unknown", "CachedGcm"))
        self.assertTrue(report["same"] and report["opened"])


if __name__ == "__main__":
    unittest.main()
