"""The relay side of a WebSocket tunnel: what each client frame costs, and how large it may be.

Theory of operation
-------------------
A WebSocket client's frames go through `RelayWsDecoder` (the codec itself is
tagio.protocol.websocket): it counts every frame and its payload bytes (the
readers charge them to the connection's frame budget, as they charge each
TagIO frame: tiny frames and control frames are not free), refuses empty data
frames (they carry nothing and cost a decode each), and holds at most one
TagIO frame's worth of payload (PRE_AUTH_WS_PAYLOAD) until the connection has
bound a relay token (`for_relaying()`), so a client cannot park ~1 MiB before
it has authenticated, 16 times what a plain connection may hold.
"""

from tagio.errors import RemoteProtocolError
from tagio.protocol import framing
from tagio.protocol.websocket import MAX_WS_PAYLOAD, OP_BINARY, OP_CONT, OP_TEXT, WsDecoder

PRE_AUTH_WS_PAYLOAD = framing.HEADER_LEN + framing.MAX_PAYLOAD  # one control frame, as on a plain connection
WS_BYTES_PER_FRAME = framing.MAX_PAYLOAD  # a WebSocket frame costs 1 + payload // this from the frame budget
_DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)


class RelayWsDecoder(WsDecoder):
    """The relay side's WebSocket decoder: counts what each frame costs, refuses empty data frames."""

    def __init__(self):
        super().__init__(expect_masked=True, max_payload=PRE_AUTH_WS_PAYLOAD)
        self.cost = 0  # frames and bytes since the readers last charged them

    def _next(self):
        frame = super()._next()
        if frame is not None:
            opcode, payload = frame
            if opcode in _DATA_OPCODES and not payload:
                raise RemoteProtocolError("WebSocket: empty data frame")
            self.cost += 1 + len(payload) // WS_BYTES_PER_FRAME
        return frame

    def take_cost(self) -> int:
        cost, self.cost = self.cost, 0
        return cost

    def for_relaying(self) -> None:
        """A relay token is bound: relayed data may come in frames up to the WebSocket maximum."""
        self.max_payload = MAX_WS_PAYLOAD
