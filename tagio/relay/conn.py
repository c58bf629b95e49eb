"""What the relay keeps per control connection, and the sans-I/O sniffing of first bytes.

Theory of operation
-------------------
One port serves four kinds of client, told apart by their first bytes
(`classify`): a TLS ClientHello (0x16 0x03), a TagIO frame (`TGIO`), an HTTP
request (a method name), or garbage. `Conn` is a plain record: the state
machine (tagio.relay.connection) moves its `state`, the I/O layer
(tagio.relay.conns, readers) owns its socket and buffers. It has no methods
that act: everything it does goes through actions.
"""

from tagio.errors import RemoteProtocolError
from tagio.protocol import framing
from tagio.protocol.websocket import ws_frame
from tagio.relay.connection import State
from tagio.relay.events import Event
from tagio.relay.http import HTTP_METHODS, looks_like_http


class Conn:
    """One control connection (see tagio.relay.connection for its states)."""

    def __init__(self, sock, addr, deadline, frame_budget):
        self.sock = sock
        self.peer_addr = normalize_addr(addr)
        self.frame_budget = frame_budget  # refilled every tick
        self.state = State.SNIFF
        self.nonce = None
        self.head = b""
        self.decoder = framing.FrameDecoder()
        self.http = None
        self.out = bytearray()
        self.early = bytearray()
        self.deadline = deadline
        self.mask = 0
        self.closed = False  # the socket is closed, or handed to the forwarder
        self.ws = None  # a WsDecoder once the client upgraded to WebSocket
        self.slot_ip = None  # the address whose connection slot this holds (None: a trusted proxy's, not yet known)
        self.via_proxy = False  # from a trusted proxy: the client's address comes with its HTTP request
        self.probation = False  # an extra connection of an address at its limit (tagio.relay.conns.admit)
        self.full = False  # admitted into the descriptor reserve: answered, never served (tagio.relay.fdlimit)

    def wrap(self, data: bytes) -> bytes:
        """Bytes as they go on this connection's wire: in a WebSocket frame after an upgrade."""
        return ws_frame(data, mask=False) if self.ws is not None and data else data


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
    """Event.FRAMES or Event.HTTP for a connection's first bytes, None while too short to tell.

    Raises RemoteProtocolError (with check_prefix's precise reason) for anything else.
    """
    head = head[:4]
    if len(head) < 4 and (framing.MAGIC.startswith(head) or any(p.startswith(head) for p in HTTP_METHODS)):
        return None
    if head == framing.MAGIC:
        return Event.FRAMES
    if looks_like_http(head):
        return Event.HTTP
    framing.check_prefix(head)
    raise RemoteProtocolError("not a TagIO client")
