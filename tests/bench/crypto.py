"""Secure-channel benchmark: handshake time and record throughput. Prints figures.

Run: python -m tests.bench.crypto   (or python tests/bench/crypto.py)

Goals (issue 3): handshake without the password KDF <= 5 ms for both sides
together; record throughput >= 400 MB/s each way for 64 KiB records.
`--records` prints only the per-record cost of seal and open (a hot loop) for a few sizes.
"""

import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from Crypto.Util import _raw_api  # noqa: E402

from tagio.crypto import kdf, records  # noqa: E402
from tagio.crypto.channel import SecureChannel  # noqa: E402
from tagio.crypto.handshake import host_handshake, viewer_handshake, viewer_handshake_secret  # noqa: E402
from tagio.net.stream import SocketStream  # noqa: E402

VIEWER_ID, HOST_ID = "444555666", "111222333"
RECORD = 64 * 1024


def median_ms(samples):
    return statistics.median(samples) * 1000


def one_handshake(secret=None, password=None, host_secrets=None):
    a, b = socket.socketpair()
    ids = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=os.urandom(16))
    box = {}
    host = threading.Thread(target=lambda: box.update(h=host_handshake(SocketStream(b), host_secrets, **ids)))
    started = time.perf_counter()
    host.start()
    if password is None:
        viewer = viewer_handshake_secret(SocketStream(a), secret, **ids)
    else:
        viewer = viewer_handshake(SocketStream(a), password, **ids)
    host.join()
    elapsed = time.perf_counter() - started
    viewer.close()
    box["h"].close()
    return elapsed


def bench_handshakes(runs=40):
    otp, permanent = "abcd2345", "permanent pass"
    secrets = [kdf.password_secret(otp, HOST_ID), kdf.password_secret(permanent, HOST_ID)]
    no_kdf = [one_handshake(secret=secrets[0], host_secrets=secrets) for _ in range(runs)]
    with_kdf = [one_handshake(password=otp, host_secrets=secrets) for _ in range(max(5, runs // 4))]
    kdf_only = []
    for _ in range(5):
        started = time.perf_counter()
        kdf.password_secret(otp, HOST_ID)
        kdf_only.append(time.perf_counter() - started)
    print(f"handshake, both sides, socketpair, no KDF : median {median_ms(no_kdf):7.2f} ms "
          f"(min {min(no_kdf) * 1000:.2f}, n={len(no_kdf)}; goal <= 5 ms)")
    print(f"handshake incl. viewer scrypt KDF        : median {median_ms(with_kdf):7.2f} ms (n={len(with_kdf)})")
    print(f"password_secret (scrypt N=2^{kdf.SCRYPT_N.bit_length() - 1}, r={kdf.SCRYPT_R})  : "
          f"median {median_ms(kdf_only):7.2f} ms")


def bench_raw_aead(cipher, total=128 << 20):
    """pycryptodome alone, for comparison: what the record layer could at most reach."""
    key, payload = os.urandom(32), os.urandom(RECORD)
    count = total // RECORD
    started = time.perf_counter()
    for seq in range(count):
        records.CIPHERS[cipher](key, seq.to_bytes(12, "big")).encrypt_and_digest(payload)
    return count * RECORD / (time.perf_counter() - started) / 1e6


def bench_seal_open(cipher, total=128 << 20):
    key, prefix = os.urandom(32), os.urandom(4)
    sealer = records.RecordSealer(key, prefix, cipher=cipher)
    opener = records.RecordOpener(key, prefix, cipher=cipher)
    payload = os.urandom(RECORD)
    count = total // RECORD
    timing_sealer = records.RecordSealer(key, prefix, cipher=cipher)
    started = time.perf_counter()
    for _ in range(count):          # records dropped at once: time sealing, not memory growth
        timing_sealer.seal(payload)
    seal_s = time.perf_counter() - started
    sealed = [sealer.seal(payload) for _ in range(count)]
    started = time.perf_counter()
    for record in sealed:
        opener.feed(record)
    open_s = time.perf_counter() - started
    raw = bench_raw_aead(cipher)
    print(f"{cipher:18s} seal {count * RECORD / seal_s / 1e6:5.0f} MB/s  open {count * RECORD / open_s / 1e6:5.0f} MB/s"
          f"  (raw AEAD {raw:4.0f} MB/s; 64 KiB records, {total >> 20} MiB, one core)")


def per_record_us(payload, count):
    """(seal, open) microseconds per record of `payload`, best of 5 hot loops of `count`."""
    seal, opened = [], []
    for _ in range(5):
        key, prefix = os.urandom(32), os.urandom(4)
        sealer, opener = records.RecordSealer(key, prefix), records.RecordOpener(key, prefix)
        started = time.perf_counter()
        sealed = [sealer.seal(payload) for _ in range(count)]
        seal.append(time.perf_counter() - started)
        started = time.perf_counter()
        for record in sealed:
            opener.feed(record)
        opened.append(time.perf_counter() - started)
    return min(seal) / count * 1e6, min(opened) / count * 1e6


def keyed_form() -> str:
    """Which keyed AEAD the record layer uses, on which of pycryptodome's backends."""
    keyed = type(records.keyed_aead(records.DEFAULT_CIPHER, bytes(32))).__name__
    return f"{keyed} on pycryptodome's {_raw_api.backend}"


def bench_per_record():
    print(f"per record, {records.DEFAULT_CIPHER} ({keyed_form()}), hot loop (best of 5):")
    for size, count in ((8, 20000), (1024, 20000), (64 * 1024, 2000)):
        seal_us, open_us = per_record_us(os.urandom(size), count)
        print(f"  {size:6d} B payload: seal {seal_us:7.1f} us  open {open_us:7.1f} us")


def channel_pair():
    a, b = socket.socketpair()
    k1, p1, k2, p2 = os.urandom(32), os.urandom(4), os.urandom(32), os.urandom(4)
    return (SecureChannel(SocketStream(a), send_key=k1, send_prefix=p1, recv_key=k2, recv_prefix=p2),
            SecureChannel(SocketStream(b), send_key=k2, send_prefix=p2, recv_key=k1, recv_prefix=p1))


def pump(sender, receiver, count, payload, results, name):
    def receive():
        for _ in range(count):
            receiver.recv()
    thread = threading.Thread(target=receive)
    started = time.perf_counter()
    thread.start()
    for _ in range(count):
        sender.send(payload)
    thread.join()
    results[name] = count * len(payload) / (time.perf_counter() - started) / 1e6


def bench_channel(total=256 << 20):
    payload, count = os.urandom(RECORD), total // RECORD
    a, b = channel_pair()
    one_way = {}
    pump(a, b, count, payload, one_way, "a->b")
    both = {}
    threads = [threading.Thread(target=pump, args=(a, b, count, payload, both, "a->b")),
               threading.Thread(target=pump, args=(b, a, count, payload, both, "b->a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a.close()
    b.close()
    print(f"SecureChannel over socketpair ({records.DEFAULT_CIPHER}), 64 KiB messages, {total >> 20} MiB:")
    print(f"  one way          : {one_way['a->b']:7.0f} MB/s (seal+send and recv+open on 2 threads)")
    print(f"  both ways at once: {both['a->b']:7.0f} MB/s + {both['b->a']:7.0f} MB/s (4 threads on this box)")


def main():
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_per_record()
    if "--records" in sys.argv[1:]:
        return
    bench_handshakes()
    for cipher in records.CIPHERS:
        bench_seal_open(cipher)
    bench_channel()


if __name__ == "__main__":
    main()
