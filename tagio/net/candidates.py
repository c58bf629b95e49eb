"""Candidate addresses and the per-session keys that authenticate direct paths.

Theory of operation: the relay hands both peers the same `PeerInfo.relay_token`
(16 random bytes) and `session_id`. Both sides derive from them, without
another round trip, one key per direction plus a 4-byte connection id that
the UDP demultiplexer uses to route datagrams of this session. These keys only
gate *which packets we bother with* (a stranger cannot forge a punch, inject a
datagram or steer our stream); the secure channel on top still provides the
end-to-end security, so a relay that knows the token gains nothing it could
not already get by relaying.

Local candidates are the addresses of this machine's interfaces (loopback
excluded unless the listener is bound to it), with the listener's port.

A partner's candidates are a request to send packets somewhere, so before a
race uses them `screened()` keeps only the addresses the partner could own
(tagio.protocol.candidates: an address the relay observed for it, a private
one when both sides sit behind one public IP; nothing unusable; at most
MAX_CANDIDATES): a viewer cannot steer a host into dialling or punching a
third party, and a host cannot steer a viewer either.
"""

import dataclasses
import hashlib
import hmac
import socket
import struct
import sys
from dataclasses import dataclass

from tagio.protocol import candidates as rule
from tagio.protocol.candidates import MAX_CANDIDATES  # noqa: F401  (re-exported)

ROLES = ("viewer", "host")
_LABEL = b"TagIO-direct-path-v1"


@dataclass(frozen=True)
class PathKeys:
    """Keys of one side of a direct path: what we sign with, what we check."""

    send_key: bytes
    recv_key: bytes
    conn_id: bytes  # 4 bytes, the same on both sides


def _derive(token: bytes, session_id: bytes, label: bytes) -> bytes:
    return hmac.new(token, _LABEL + session_id + label, hashlib.sha256).digest()


def other_role(role: str) -> str:
    return "host" if role == "viewer" else "viewer"


def path_keys(relay_token: bytes, session_id: bytes, role: str) -> PathKeys:
    """Keys for `role` ("viewer" or "host"); the peer derives the mirror image."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    mine = _derive(relay_token, session_id, b"send:" + role.encode())
    theirs = _derive(relay_token, session_id, b"send:" + other_role(role).encode())
    conn_id = _derive(relay_token, session_id, b"conn-id")[:4]
    return PathKeys(mine, theirs, conn_id)


def tcp_preamble_tag(relay_token: bytes, session_id: bytes, dialer_role: str) -> bytes:
    """16-byte tag a direct TCP dialer sends; binds the connection to the session and role."""
    return _derive(relay_token, session_id, b"tcp:" + dialer_role.encode())[:16]


def _linux_interface_addresses():
    import fcntl  # POSIX only; imported here so Windows never touches it

    siocgifaddr = 0x8915
    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _index, name in socket.if_nameindex():
            try:
                packed = struct.pack("256s", name.encode()[:15])
                answer = fcntl.ioctl(probe.fileno(), siocgifaddr, packed)
            except OSError:
                continue  # interface without an IPv4 address
            found.append(socket.inet_ntoa(answer[20:24]))
    finally:
        probe.close()
    return found


def _hostname_addresses():
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return [info[4][0] for info in infos]


def local_addresses(include_loopback: bool = False) -> list:
    """IPv4 addresses of this machine, most useful first, without duplicates."""
    found = _linux_interface_addresses() if sys.platform.startswith("linux") else []
    if not found:
        found = _hostname_addresses()
    result = []
    for ip in found:
        if ip in result or ip == "0.0.0.0":
            continue
        if ip.startswith("127.") and not include_loopback:
            continue
        result.append(ip)
    return result


def candidates_for(bound_ip: str, port: int) -> list:
    """(ip, port) candidates for a socket bound to `bound_ip`:`port`."""
    if bound_ip not in ("0.0.0.0", ""):
        return [(bound_ip, port)]
    return [(ip, port) for ip in local_addresses()]


def own_public_ip(relay):
    """The IP the relay observed for us (None without a relay, or before registering)."""
    registered = None if relay is None else relay.registered
    return registered.observed_addr[0] if registered is not None else None


def screened(peer, own_ip=None):
    """`peer` (a PeerInfo) with only the addresses we may send to (tagio.protocol.candidates).

    `own_ip`: the IP the relay observed for us; when the peer was observed at the same one, its
    private candidates are on our side of the NAT and are kept. Observed addresses are kept
    unless unusable, IPv4-mapped ones as plain IPv4; the public address keeps port 0 (a relay
    behind a proxy does not know the port) since only its IP is used.
    """
    public = peer.peer_public_addr
    public_ip = rule.normal_ip(public[0]) if public else None
    udp = rule.normal(peer.peer_udp_addr) if peer.peer_udp_addr else None
    observed = [ip for ip in (public_ip, udp[0] if udp else None) if ip]
    local = rule.plausible(peer.peer_local_candidates, observed, same_site=rule.same_site(own_ip, public_ip))
    return dataclasses.replace(peer, peer_public_addr=(public_ip, public[1]) if public_ip else None,
                               peer_udp_addr=udp, peer_local_candidates=local)
