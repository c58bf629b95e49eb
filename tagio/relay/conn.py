"""Per-connection state of the relay server, and the sans-I/O sniffing of first bytes.

Theory of operation
-------------------
One port serves four kinds of client, told apart by their first bytes
(`classify`): a TLS ClientHello (0x16 0x03), a TagIO frame (`TGIO`), an HTTP
request (a method name), or garbage. `Conn` is what RelayLogic sees of a
connection (see tagio.relay.logic); `Phase` is where its bytes go next.
"""

import enum

from tagio.errors import RemoteProtocolError
from tagio.protocol import framing
from tagio.protocol.websocket import ws_frame
from tagio.relay.http import HTTP_METHODS, looks_like_http
from tagio.relay.logic import ConnState

TLS_ALERT_HANDSHAKE_FAILURE = bytes([21, 3, 1, 0, 2, 2, 40])


class Phase(enum.Enum):
    SNIFF = "sniff"
    TLS = "tls"
    APP_SNIFF = "app-sniff"
    FRAMES = "frames"
    HTTP = "http"
    BINDING = "binding"
    LINGER = "linger"


class Conn:
    """One control connection, as RelayLogic sees it (see tagio.relay.logic)."""

    def __init__(self, server, sock, addr, deadline):
        self.server = server
        self.sock = sock
        self.peer_addr = normalize_addr(addr)
        self.frame_budget = server.limits.max_frames_per_sec * 2  # refilled every tick
        self.phase = Phase.SNIFF
        self.state = ConnState.NEW
        self.nonce = None
        self.head = b""
        self.decoder = framing.FrameDecoder()
        self.http = None
        self.out = bytearray()
        self.early = bytearray()
        self.deadline = deadline
        self.mask = 0
        self.closed = False
        self.ws = None  # a WsDecoder once the client upgraded to WebSocket

    def wrap(self, data: bytes) -> bytes:
        """Bytes as they go on this connection's wire: in a WebSocket frame after an upgrade."""
        return ws_frame(data, mask=False) if self.ws is not None and data else data

    def send(self, message):
        self.server._queue(self, message.encode())

    def close(self, reason=""):
        self.server._linger(self, reason)

    def fail(self, exc):
        self.server._fail(self, exc)

    def start_relay(self, partner):
        self.server._start_relay(self, partner)


def normalize_addr(addr) -> tuple:
    """(ip, port) with an IPv4-mapped IPv6 address (a dual-stack listener) shown as plain IPv4."""
    ip = addr[0]
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip[7:]
    return (ip, addr[1])


def is_tls_client_hello(data: bytes) -> bool:
    """A TLS handshake record: content type 22, major version 3."""
    return data[:1] == b"\x16" and (len(data) < 2 or data[1] == 3)


def classify(head: bytes):
    """Phase.FRAMES or Phase.HTTP for a connection's first bytes, None while too short to tell.

    Raises RemoteProtocolError (with check_prefix's precise reason) for anything else.
    """
    head = head[:4]
    if len(head) < 4 and (framing.MAGIC.startswith(head) or any(p.startswith(head) for p in HTTP_METHODS)):
        return None
    if head == framing.MAGIC:
        return Phase.FRAMES
    if looks_like_http(head):
        return Phase.HTTP
    framing.check_prefix(head)
    raise RemoteProtocolError("not a TagIO client")
