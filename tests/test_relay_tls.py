"""The relay with TLS (--cert/--key), using a certificate made at test time with the openssl tool."""

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
import urllib.request
from pathlib import Path

from tagio.crypto.identity import Identity
from tagio.errors import ConfigError, RelayError, TransportError
from tagio.net.relay_client import RelayClient
from tagio.relay.cli import make_tls_context
from tests.relay_fixture import relayed_streams, start_relay
from tests.test_relay_badinput import read_until_eof


def make_certificate(directory: Path) -> tuple:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command to make a test certificate")
class TlsRelayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="tagio-tls-"))
        cls.cert, cls.key = make_certificate(cls.tmp)
        cls.relay = start_relay(ssl_context=make_tls_context(str(cls.cert), str(cls.key)), handshake_timeout=2.0)

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def client_context(self):
        return ssl.create_default_context(cafile=str(self.cert))

    def client(self, **kw):
        c = RelayClient(self.relay.address, Identity.generate(), ssl_context=self.client_context(), **kw)
        self.addCleanup(c.close)
        return c

    def test_register_rendezvous_and_relay_over_tls(self):
        viewer, host = self.client(), self.client()
        viewer.connect()
        host.connect()
        v, h = relayed_streams(self, viewer, host)
        self.assertIsInstance(v.sock, ssl.SSLSocket)
        data = os.urandom(4 * 1024 * 1024)
        sender = threading.Thread(target=v.send, args=(data,))
        sender.start()
        digest, got = hashlib.sha256(), 0
        while got < len(data):
            chunk = h.recv(1 << 20)
            self.assertTrue(chunk)
            digest.update(chunk)
            got += len(chunk)
        sender.join(30)
        self.assertEqual(digest.digest(), hashlib.sha256(data).digest())
        h.send(b"back")
        self.assertEqual(v.recv(10), b"back")

    def test_https_health(self):
        host, port = self.relay.address
        with urllib.request.urlopen(f"https://{host}:{port}/health", context=self.client_context(),
                                    timeout=5) as resp:
            self.assertTrue(json.loads(resp.read())["tls"])

    def test_plain_client_on_tls_port_told_to_use_tls(self):
        plain = RelayClient(self.relay.address, Identity.generate())
        with self.assertRaises(RelayError) as ctx:
            plain.connect()
        self.assertEqual(ctx.exception.code, "tls_required")
        self.client().connect()  # still serving

    def test_untrusted_certificate_rejected_by_client(self):
        c = RelayClient(self.relay.address, Identity.generate(), ssl_context=ssl.create_default_context())
        with self.assertRaisesRegex(TransportError, "certificate verify failed"):
            c.connect()
        self.client().connect()

    def test_garbage_instead_of_tls_hello(self):
        sock = socket.create_connection(self.relay.address, timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        answer = read_until_eof(sock)
        self.assertEqual(answer[:1], b"\x15")  # a TLS alert record, then close
        self.client().connect()

    def test_bad_certificate_files_are_one_line_errors(self):
        junk = self.tmp / "junk.pem"
        junk.write_text("not a certificate")
        with self.assertRaisesRegex(ConfigError, "cannot load TLS certificate"):
            make_tls_context(str(junk), str(self.key))
        with self.assertRaisesRegex(ConfigError, "both --cert and --key"):
            make_tls_context(str(self.cert), None)



@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command to make a test certificate")
class TlsPortSlowLorisTest(unittest.TestCase):
    def test_two_plain_bytes_then_silence_does_not_spin(self):
        import time
        tmp = Path(tempfile.mkdtemp(prefix="tagio-tls-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = make_certificate(tmp)
        with start_relay(ssl_context=make_tls_context(str(cert), str(key)), handshake_timeout=1.0) as relay:
            sock = socket.create_connection(relay.address, timeout=5)
            self.addCleanup(sock.close)
            cpu0 = time.process_time()
            sock.sendall(b"TG")
            answer = read_until_eof(sock)
            self.assertLess(time.process_time() - cpu0, 0.5)
            self.assertIn(b"tls_required", answer)


if __name__ == "__main__":
    unittest.main()
