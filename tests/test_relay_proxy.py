"""Relay limits per source and per ID, behind a real nginx reverse proxy on loopback.

The relay believes X-Forwarded-For only from --trusted-proxy addresses, so clients behind one proxy
are limited each by its own address; idle sockets from one address cannot lock out a client that
reconnects from it; registrations are also limited per ID. nginx is the Debian package (`nginx`);
without it the proxy tests are skipped with that reason.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import unittest
from pathlib import Path

from tagio.crypto.identity import Identity
from tagio.errors import RelayError
from tagio.net.relay_client import RelayClient, WsSocket
from tagio.protocol.websocket import new_client_key
from tests.relay_fixture import start_relay, wait_for

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
PER_IP = 8

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{relay_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(test, relay_port) -> tuple:
    """nginx in the foreground, proxying 127.0.0.1:<port> to the relay; stopped at cleanup."""
    tmp = Path(tempfile.mkdtemp(prefix="tagio-nginx-"))
    test.addCleanup(shutil.rmtree, tmp, True)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, relay_port=relay_port))
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)

    def stop():
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
    test.addCleanup(stop)
    test.assertTrue(wait_for(lambda: _listening(port) or proc.poll() is not None), "nginx did not start")
    if proc.poll() is not None:
        test.fail(f"nginx failed: {proc.stderr.read().decode(errors='replace')[-500:]}")
    return ("127.0.0.1", port)


def _listening(port) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def upgrade_claiming(sock, claimed_ip) -> WsSocket:
    """A WebSocket upgrade on /tagio whose request carries its own X-Forwarded-For."""
    key = new_client_key()
    sock.sendall((f"GET /tagio HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"X-Forwarded-For: {claimed_ip}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"upgrade refused: {head[:80]!r}")
        head += chunk
    response, rest = head.split(b"\r\n\r\n", 1)
    assert response.startswith(b"HTTP/1.1 101"), response[:80]
    return WsSocket(sock, rest)


def via(address, source_ip, identity=None, **kw) -> RelayClient:
    return RelayClient(address, identity or Identity.generate(), source_ip=source_ip, websocket=True, **kw)


@unittest.skipUnless(NGINX, "needs nginx (Debian package nginx) for a real reverse proxy")
class BehindNginxTest(unittest.TestCase):
    def setUp(self):
        self.relay = start_relay(trusted_proxies={"127.0.0.1"}, max_conns_per_ip=PER_IP)
        self.addCleanup(self.relay.stop)
        self.proxy = start_nginx(self, self.relay.address[1])

    def registered(self, source_ip, **kw):
        client = via(self.proxy, source_ip, **kw)
        self.addCleanup(client.close)
        return client, client.connect()

    def test_the_relay_sees_each_client_behind_the_proxy(self):
        _client, registered = self.registered("127.0.0.2")
        self.assertEqual(registered.observed_addr[0], "127.0.0.2")
        _client, registered = self.registered("127.0.0.3")
        self.assertEqual(registered.observed_addr[0], "127.0.0.3")

    def test_a_client_cannot_choose_its_address_with_its_own_header(self):
        sock = socket.create_connection(self.proxy, timeout=5, source_address=("127.0.0.4", 0))
        self.addCleanup(sock.close)
        ws = upgrade_claiming(sock, "203.0.113.9")
        registered = RelayClient(self.proxy, Identity.generate())._register(ws)
        self.assertEqual(registered.observed_addr[0], "127.0.0.4")  # nginx's entry, not the client's

    def test_one_address_filling_its_slots_does_not_lock_out_another(self):
        flood = []
        self.addCleanup(lambda: [s.close() for s in flood])
        for _ in range(PER_IP):  # idle upgraded tunnels: each holds a relay connection from 127.0.0.5
            sock = socket.create_connection(self.proxy, timeout=5, source_address=("127.0.0.5", 0))
            flood.append(sock)
            WsSocket.upgrade(sock, "127.0.0.1", self.proxy[1], "/tagio")
        _client, registered = self.registered("127.0.0.6")  # all share nginx's address at the relay
        self.assertEqual(registered.observed_addr[0], "127.0.0.6")


class DirectLimitsTest(unittest.TestCase):
    def test_idle_sockets_from_an_address_do_not_lock_out_its_reconnecting_client(self):
        with start_relay(max_conns_per_ip=PER_IP) as relay:
            ident = Identity.generate()
            first = RelayClient(relay.address, ident, source_ip="127.0.0.7")
            first.connect()
            idle = [socket.create_connection(relay.address, timeout=5, source_address=("127.0.0.7", 0))
                    for _ in range(PER_IP)]  # the address's other slots, and then some
            self.addCleanup(lambda: [s.close() for s in idle])
            first.close()
            again = RelayClient(relay.address, ident, source_ip="127.0.0.7")
            self.addCleanup(again.close)
            self.assertEqual(again.connect().observed_addr[0], "127.0.0.7")

    def test_an_untrusted_peer_cannot_claim_an_address(self):
        with start_relay(trusted_proxies={"127.0.0.1"}) as relay:
            sock = socket.create_connection(relay.address, timeout=5, source_address=("127.0.0.8", 0))
            self.addCleanup(sock.close)
            ws = upgrade_claiming(sock, "203.0.113.9")
            registered = RelayClient(relay.address, Identity.generate())._register(ws)
            self.assertEqual(registered.observed_addr[0], "127.0.0.8")

    def test_registrations_are_limited_per_id_across_addresses(self):
        with start_relay(register_id_burst=3.0, register_id_rate=0.01) as relay:
            ident = Identity.generate()
            for i in range(3):
                with RelayClient(relay.address, ident, source_ip=f"127.0.1.{i + 1}") as client:
                    client.connect()
            with self.assertRaises(RelayError) as ctx:
                RelayClient(relay.address, ident, source_ip="127.0.1.9").connect()
            self.assertEqual(ctx.exception.code, "rate_limited")
            with RelayClient(relay.address, Identity.generate(), source_ip="127.0.1.9") as other:
                other.connect()  # the address itself is not limited


if __name__ == "__main__":
    unittest.main()
