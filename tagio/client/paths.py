"""Where the client core meets path racing (tagio.net.connect): opening a listener, establishing a path.

`make_listener(bind)` opens the DirectListener (TCP + UDP on one port) that both roles use: hosts are
dialled on it, viewers punch UDP from it. `establish_channel` runs tagio.net.connect.establish, which
races direct TCP, punched UDP and (after a short delay) the relay, running `handshake` on each path,
and returns the winner's SecureChannel. Both sides of a session must go through establish() because
the viewer nominates the winning path in-band. `check_peer` checks a relay's PeerInfo against the ID
that was asked for. Plain imports (no importlib) so PyInstaller sees them.
"""

from tagio.crypto.identity import id_from_public_key
from tagio.errors import ConfigError, IdentityError
from tagio.net import connect


def make_listener(bind):
    """A DirectListener bound to `bind` ((host, port); port 0 = any), or None when bind is None.
    Raises ConfigError when it cannot bind."""
    if bind is None:
        return None
    try:
        return connect.DirectListener(bind)
    except OSError as exc:        # the port is taken, or the address is not ours
        host, port = bind
        raise ConfigError(f"cannot listen for direct connections on {host}:{port}: "
                          f"{exc.strerror or exc}") from None


def establish_channel(peer, relay, handshake, *, listener=None, timeout=15.0):
    """A SecureChannel to `peer` over the first path whose handshake finishes. `relay` may be None
    (LAN). Raises AuthError (e.g. WrongPasswordError), TransportTimeout or TransportError."""
    return connect.establish(peer, relay, handshake, listener=listener, timeout=timeout)


def check_peer(peer, expected_id):
    """The relay must hand us the key that the partner's ID is derived from (both roles check)."""
    if peer.peer_id != expected_id or id_from_public_key(peer.peer_public_key) != expected_id:
        raise IdentityError(f"the relay's answer for {expected_id} does not match that ID's key")
