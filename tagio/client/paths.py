"""Where the client core meets path racing (tagio.net.connect): opening a listener, establishing a path.

`make_listener(bind)` opens the DirectListener (TCP + UDP on one port) of a client that hosts: partners
dial it, and it punches UDP. Given the settings, a host keeps its port: the first run binds any free
port and saves it (`direct_port`), later runs bind that one again (any free port again if it is taken
now), so a firewall or forwarding rule made for it stays right. A pure viewer (`tcp=False`, the
command line's `connect`) listens for no TCP at all: on Windows a listener makes the firewall ask
"allow access?" (as an unknown publisher), for nothing, since a viewer is the one who dials. It binds
only the UDP socket that hole punching needs (`UdpOnlyListener`), so connection reversal (the host
dialling the viewer) is what it gives up. `establish_channel` runs tagio.net.connect.establish, which
races direct TCP, punched UDP and (after a short delay) the relay, running `handshake` on each path,
and returns the winner's SecureChannel. Both sides of a session must go through establish() because
the viewer nominates the winning path in-band. `check_peer` checks a relay's PeerInfo against the ID
that was asked for. Plain imports (no importlib) so PyInstaller sees them.
"""

import logging
import socket
import threading

from tagio.crypto.identity import id_from_public_key
from tagio.errors import ConfigError, IdentityError
from tagio.net import connect
from tagio.net.candidates import candidates_for
from tagio.net.udpmux import UdpMux

log = logging.getLogger("tagio.client")


def make_listener(bind, *, tcp=True, settings=None):
    """A DirectListener bound to `bind` ((host, port); port 0 = any), or None when bind is None;
    with tcp=False a UdpOnlyListener. `settings` (a host's): port 0 means the kept `direct_port`.
    Raises ConfigError when it cannot bind."""
    if bind is None:
        return None
    host, port = bind
    try:
        if not tcp:
            return UdpOnlyListener(bind)
        if port == 0 and settings is not None and settings.direct_port:
            listener = _bind_kept_port(host, settings.direct_port)
            if listener is not None:
                return listener
        listener = connect.DirectListener(bind)
    except OSError as exc:        # the port is taken, or the address is not ours
        raise ConfigError(f"cannot listen for direct connections on {host}:{port}: "
                          f"{exc.strerror or exc}") from None
    if port == 0 and settings is not None:
        _keep_port(settings, listener.port)
    return listener


def _bind_kept_port(host, port):
    """The listener on the port we kept, or None when it is taken now (another TagIO, another program)."""
    try:
        return connect.DirectListener((host, port))
    except OSError as exc:
        log.info("direct port %d is taken (%s); using another one this time", port, exc.strerror or exc)
        return None


def _keep_port(settings, port):
    """Remember the first port. Only that field is written, into the file as it is on disk: the
    Settings in memory may hold values for this run only (TAGIO_RELAY_SECRET)."""
    from tagio.client.settings import Settings
    if settings.direct_port:
        return                    # the kept port was taken: keep it for next time, do not move
    settings.direct_port = port
    try:
        on_disk = Settings.load(settings.config_dir)
        on_disk.direct_port = port
        on_disk.save()
    except ConfigError as exc:    # a read-only folder: a new port next time, nothing worse
        log.info("cannot keep the direct port: %s", exc)


class UdpOnlyListener:
    """A pure viewer's stand-in for DirectListener: the shared UDP socket (`udp`) that punching needs,
    candidates for it, and no TCP listener, so nothing asks the firewall for inbound TCP."""

    lan_requests = None       # nobody dials a viewer on the LAN

    def __init__(self, bind=("0.0.0.0", 0)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(bind)
        except OSError:
            sock.close()
            raise
        self.udp = UdpMux(sock)
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return self.udp.address()[1]

    def candidates(self) -> list:
        host, port = self.udp.address()[:2]
        return candidates_for(host, port)

    def take(self, session_id, timeout, cancelled=lambda: False):
        """Nothing ever arrives: wait `timeout` (or until close) like an empty DirectListener."""
        self._stop.wait(timeout)
        return None

    def wake(self):
        pass                  # take() waits at most its short timeout

    def close(self):
        self._stop.set()
        self.udp.close()


def establish_channel(peer, relay, handshake, *, listener=None, timeout=15.0):
    """A SecureChannel to `peer` over the first path whose handshake finishes. `relay` may be None
    (LAN). Raises AuthError (e.g. WrongPasswordError), TransportTimeout or TransportError."""
    return connect.establish(peer, relay, handshake, listener=listener, timeout=timeout)


def check_peer(peer, expected_id):
    """The relay must hand us the key that the partner's ID is derived from (both roles check)."""
    if peer.peer_id != expected_id or id_from_public_key(peer.peer_public_key) != expected_id:
        raise IdentityError(f"the relay's answer for {expected_id} does not match that ID's key")
