"""PeerInfo: everything the connect race needs to know about the partner, in one shape.

Theory of operation. A rendezvous gives each side the partner's candidates and a shared relay
token. Through a relay it arrives as the wire message tagio.protocol.relay.PeerInfoMsg and is
normalised here (`from_message`: addresses become tuples, "no UDP address" becomes None); on the
LAN no relay speaks, so net.connect builds the same class locally (`lan_viewer_id` set, public
fields empty). net.connect.establish() reads nothing else.
"""

from dataclasses import dataclass, field


@dataclass
class PeerInfo:
    session_id: bytes
    role: str                       # our role in this session: "viewer" or "host"
    peer_id: str
    peer_public_key: bytes = b""
    peer_public_addr: tuple | None = None
    peer_udp_addr: tuple | None = None
    peer_local_candidates: list = field(default_factory=list)
    relay_token: bytes = b""
    nat_hint: str = ""
    lan_viewer_id: str | None = None  # LAN sessions only: the dialing viewer names itself

    @classmethod
    def from_message(cls, msg) -> "PeerInfo":
        """The normalised PeerInfo of a relay PeerInfoMsg."""
        return cls(msg.session_id, msg.role, msg.peer_id, msg.peer_public_key, tuple(msg.peer_public_addr),
                   tuple(msg.peer_udp_addr) if msg.peer_udp_addr else None,
                   [tuple(a) for a in msg.peer_local_candidates], msg.relay_token, msg.nat_hint)
