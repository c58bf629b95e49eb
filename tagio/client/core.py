"""The client core: one Client per process, shared by the Tk window and the command line.

Theory of operation. A Client owns this machine's identity (tagio.crypto.identity), its settings, a
direct TCP listener (tagio.net.connect.DirectListener, when available) and a RelayLink that keeps the
registration at the relay alive and announces the listener's addresses as local candidates.

Host side: each rendezvous the relay pushes (PeerInfo, role "host") is checked against the attempt
limiter (per peer and in total) and then handled in its own short-lived thread, at most MAX_INCOMING at
once: establish a path and run the host handshake with the current one-time password's secret plus the
permanent secret if one is set; a wrong password rotates the one-time password. Then the accept policy
(`accept_callback(peer_id) -> bool`, asked when "ask before accepting" is on, unless the permanent
password was the one used), and a HostSession runs until it ends. A one-time password that opened a
session is used up and replaced.

Viewer side: `connect(partner_id, password)` asks the relay for the partner, establishes a path
(direct racing via tagio.net.connect, else the relay) with the viewer handshake, and returns a
ViewerConnection (channel, path, connect time) whose `open_session()` makes the ViewerSession.

LAN (opt-in, `lan=True` or LanService options): the client announces itself and browses the local
network (tagio.net.lan). When the relay is unreachable, or does not know the partner, a partner seen
on the LAN is dialled directly. Dials that arrive on our listener from the LAN (listener.lan_requests)
go through the same limiter, handshake and accept policy as relay rendezvous.

The UI learns what happens through `on_event(name, **fields)`, called from worker threads (the Tk code
hops to its own thread). Events: relay_status(status), password_changed(), incoming(peer_id),
refused(peer_id, reason), auth_failed(peer_id), attempt_failed(peer_id, reason),
session_started(peer_id, path, role), session_ended(peer_id, role, reason), id_changed(id). No event
carries a secret.
"""

import functools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tagio.client.paths import establish_channel, make_listener
from tagio.client.ratelimit import AttemptLimiter
from tagio.client.relay_link import RelayLink
from tagio.client.settings import Settings, default_config_dir, parse_relay, resolve_relay_text
from tagio.crypto.identity import Identity, id_from_public_key, normalize_id
from tagio.errors import (ConfigError, IdentityError, RelayError, TagioError, TransportTimeout,
                          WrongPasswordError)

log = logging.getLogger("tagio.client")

REGISTERED_MARKER = "identity.registered"   # present once this key has been online at a relay

MAX_INCOMING = 4            # concurrent incoming attempts/sessions; more are refused, not queued
HANDSHAKE_TIMEOUT = 15.0
JOIN_TIMEOUT = HANDSHAKE_TIMEOUT + 5.0
POLL = 0.25                 # how often the LAN thread notices close()
ENV_RELAY_CA = "TAGIO_RELAY_CA"    # PEM file that signs a private relay's TLS certificate
LAN_QUERY_WAIT = 1.5        # LAN answers to a query come back within about a second


@dataclass
class ViewerConnection:
    """An authenticated channel to a partner, ready for a ViewerSession."""
    channel: object
    peer_id: str
    path: str
    connect_ms: float
    session_id: bytes = field(repr=False, default=b"")

    def open_session(self, **kwargs):
        """A (not yet started) ViewerSession on this channel; kwargs go to ViewerSession."""
        from tagio.session.viewer import ViewerSession
        return ViewerSession(self.channel, **kwargs)


class Client:
    """Identity, relay registration, direct listener and incoming sessions for this process.

    relay: "HOST:PORT" (else TAGIO_RELAY, settings, default). direct_bind: where the direct listener
    binds, None for none. host_password: an extra permanent password for this process only (not saved).
    monitor / view_only / fps_cap / quality override the settings for host sessions; display picks
    the X display to capture (default $DISPLAY). limiter: an AttemptLimiter (tests inject one).
    lan: None/False (off), True (broadcast on the LAN) or a dict of tagio.net.lan.LanService keywords.
    relay may be a URL: tls://host:port, ws://..., wss://host[/path]; relay_ca (or TAGIO_RELAY_CA)
    names the CA file for a TLS relay with its own certificate.
    """

    def __init__(self, config_dir=None, *, relay=None, settings=None, accept_callback=None,
                 on_event=None, direct_bind=("0.0.0.0", 0), host_password=None, monitor=1,
                 view_only=None, fps_cap=None, quality=None, limiter=None, display=None, lan=None,
                 relay_ca=None):
        self.config_dir = default_config_dir() if config_dir is None else config_dir
        self.settings = settings if settings is not None else Settings.load(self.config_dir)
        self.relay_url = resolve_relay_text(relay, self.settings)
        target = parse_relay(self.relay_url)
        self.relay_address = target.address
        self._relay_options = relay_client_options(target, relay_ca or os.environ.get(ENV_RELAY_CA))
        # A key that has never been online may still be swapped for another (see _identity_refused).
        self._identity_fresh = not (Path(self.config_dir) / REGISTERED_MARKER).exists()
        self.identity = _load_identity(self.config_dir)
        self.id = self.identity.id
        self.accept_callback, self.on_event = accept_callback, on_event
        self.host_options = {
            "monitor": monitor,
            "view_only": self.settings.view_only if view_only is None else view_only,
            "fps_cap": fps_cap or self.settings.fps_cap,
            "quality": quality or self.settings.quality,
            "clipboard": getattr(self.settings, "clipboard", True),
        }
        if display is not None:          # an X display other than $DISPLAY (tests, multi-seat)
            self.host_options["display"] = display
        self._host_password = host_password
        self._extra_secret = self._derive_extra_secret()
        self._direct_bind = direct_bind
        self._limiter = limiter or AttemptLimiter()
        self._lock = threading.Lock()
        self._otp = self._otp_secret = None
        self._slots = threading.BoundedSemaphore(MAX_INCOMING)
        self._handlers, self._sessions = [], []
        self._errors = []
        self._closing = threading.Event()
        self._listener = self._link = self._lan = None
        self._lan_options = {} if lan is True else (dict(lan) if lan else None)
        self._lan_thread = None
        self.new_password()

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        """Open the direct listener and start registering at the relay (returns at once)."""
        self._listener = make_listener(self._direct_bind)
        if self._listener is not None:
            self._lan_thread = threading.Thread(target=self._lan_requests_thread, name="lan-incoming",
                                                daemon=True)
            self._lan_thread.start()
            self._lan = start_lan_service(self.id, self._listener, self._lan_options)
        self._link = RelayLink(self.relay_address, self.identity, auth_secret=self.settings.relay_secret,
                               candidates=self._candidates, on_peer=self._on_peer,
                               udp_socket=self._udp_socket, client_options=self._relay_options,
                               on_status=self._relay_status_changed,
                               on_identity_refused=self._identity_refused)
        self._link.start()
        return self

    def close(self):
        """Stop host sessions, the relay link and the listener; join every thread we started.
        Everything is closed even if one part fails; then the first unexpected exception (from
        closing, or one that ended one of our threads) is re-raised."""
        self._closing.set()
        self.end_host_sessions()
        errors = [_close_part(self._link)]
        if self._lan_thread is not None:
            self._lan_thread.join(JOIN_TIMEOUT)
        for thread in self._snapshot(self._handlers):
            thread.join(JOIN_TIMEOUT)
        errors += [_close_part(self._lan), _close_part(self._listener)]
        errors = self._snapshot(self._errors) + [e for e in errors if e is not None]
        if errors:
            raise errors[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ state shown to the user

    @property
    def relay_status(self) -> str:
        """"online", "connecting" or "unreachable: <reason>"."""
        return "connecting" if self._link is None else self._link.status

    @property
    def one_time_password(self) -> str:
        with self._lock:
            return self._otp

    def new_password(self) -> str:
        """Replace the one-time password (its secret is derived at once so a handshake never waits)."""
        from tagio.crypto.kdf import new_one_time_password, password_secret
        otp = new_one_time_password()
        secret = password_secret(otp, self.id)
        with self._lock:
            self._otp, self._otp_secret = otp, secret
        self._emit("password_changed")
        return otp

    def _derive_extra_secret(self):
        if not self._host_password:
            return None
        from tagio.crypto.kdf import password_secret
        return password_secret(self._host_password, self.id)

    def _relay_status_changed(self, status):
        if status == "online" and self._identity_fresh:
            self._identity_fresh = False            # this key is known now: never replace it silently
            try:
                (Path(self.config_dir) / REGISTERED_MARKER).touch()
            except OSError as exc:
                log.info("cannot record that this ID is registered: %s", exc)
        self._emit("relay_status", status=status)

    def _identity_refused(self, error):
        """The relay binds IDs to keys first come: a brand-new key whose 9-digit ID another key owns
        (IDs collide at ~5 % among 10,000 keys) gets a new key once, and with it a new ID. A key
        that has been in use is never replaced silently: the refusal is shown instead."""
        with self._lock:
            if not self._identity_fresh:
                return None
            self._identity_fresh = False
        log.info("relay refused this new ID (%s); making a new key", error)
        self.identity = Identity.regenerate(self.config_dir)
        self.id = self.identity.id
        self._extra_secret = self._derive_extra_secret()
        self.new_password()             # the password's secret is salted with the ID
        if self._lan is not None:       # announce the new ID on the LAN
            self._lan.close()
            self._lan = start_lan_service(self.id, self._listener, self._lan_options)
        self._emit("id_changed", id=self.id)
        return self.identity

    def wait_online(self, timeout=10.0):
        """Block until registered; raise RelayError('unreachable') when the relay cannot be reached."""
        return self._link.wait_online(timeout)

    @property
    def host_sessions(self) -> list:
        return self._snapshot(self._sessions)

    @property
    def lan_peers(self):
        """Partners announcing themselves on this network ([LanPeer]), or None when LAN is off."""
        return None if self._lan is None else self._lan.peers()

    def end_host_sessions(self):
        """The "disconnect" button: stop every session in which this machine is the host."""
        for session in self._snapshot(self._sessions):
            session.stop()

    # ------------------------------------------------------------------ viewer side

    def connect(self, partner_id, password, timeout=15.0) -> ViewerConnection:
        """Authenticate to partner_id with password. Raises ConfigError (bad ID/password format),
        RelayError (unreachable, unknown_id, offline, rate_limited), WrongPasswordError,
        TransportError/TransportTimeout (no path), IdentityError (relay gave a mismatched key)."""
        partner = normalize_id(partner_id)
        if partner == self.id:
            raise ConfigError("that is this machine's own ID")
        if not password or not str(password).strip():
            raise ConfigError("enter the partner's password")
        relay, relay_error = self._relay_or_error(timeout)
        started = time.monotonic()      # connect_ms: rendezvous + path + PAKE, not our registration
        session_id = os.urandom(16)
        peer, relay = self._rendezvous(partner, session_id, relay, relay_error, timeout)
        from tagio.crypto.handshake import viewer_handshake
        handshake = functools.partial(viewer_handshake, password=password, viewer_id=self.id,
                                      host_id=partner, session_id=session_id, timeout=timeout)
        channel = establish_channel(peer, relay, handshake, listener=self._listener, timeout=timeout)
        connect_ms = (time.monotonic() - started) * 1000.0
        self._remember(partner)
        return ViewerConnection(channel, partner, getattr(channel, "path", "relay"), connect_ms,
                                session_id)

    def _relay_or_error(self, timeout):
        try:
            return self.wait_online(min(timeout, 10.0)), None
        except RelayError as exc:
            return None, exc

    def _rendezvous(self, partner, session_id, relay, relay_error, timeout):
        """(PeerInfo, relay or None): through the relay, or on the LAN when the relay cannot help
        (it is unreachable, or does not know the partner) and the partner announces itself here."""
        lan_peer = self._find_on_lan(partner, wait=LAN_QUERY_WAIT if relay is None else 0.0)
        if relay is not None:
            try:
                peer = relay.request_peer(partner, session_id, timeout=timeout)
                _check_peer(peer, partner)
                return peer, relay
            except RelayError as exc:
                if lan_peer is None or exc.code not in ("unknown_id", "offline"):
                    raise
        elif lan_peer is None:
            raise relay_error
        from tagio.net.connect import lan_viewer_peer
        return lan_viewer_peer(partner, lan_peer.address, self.id, session_id), None

    def _find_on_lan(self, partner, wait):
        """The partner's LanPeer if it announces itself here; asks everyone to announce at once
        and waits up to `wait` seconds when it has not been seen yet."""
        if self._lan is None:
            return None
        found = self._lan.find(partner)
        deadline = time.monotonic() + wait
        if found is None and wait > 0:
            self._lan.query()
        while found is None and time.monotonic() < deadline:
            time.sleep(0.05)
            found = self._lan.find(partner)
        return found

    def _remember(self, partner):
        self.settings.add_recent(partner)
        try:
            self.settings.save()
        except ConfigError as exc:
            log.warning("%s", exc)

    # ------------------------------------------------------------------ host side

    def _candidates(self):
        return self._listener.candidates() if self._listener is not None else []

    def _udp_socket(self):
        """The listener's UDP socket as seen by RelayClient.discover_udp (for hole punching)."""
        udp = getattr(self._listener, "udp", None)
        return udp.discovery_socket() if udp is not None else None

    def _lan_requests_thread(self):
        """Dials that arrived on our listener from the LAN, with no relay involved. An exception
        that ends this thread is kept for close()."""
        from tagio.net.connect import lan_host_peer
        requests = getattr(self._listener, "lan_requests", None)
        try:
            while requests is not None and not self._closing.is_set():
                try:
                    request = requests.get(timeout=POLL)
                except queue.Empty:
                    continue
                self._on_peer(lan_host_peer(request, self.id), lan=True)
        except Exception as exc:
            log.exception("LAN request thread failed")
            with self._lock:
                self._errors.append(exc)

    def _on_peer(self, peer, lan=False):
        """Called by the relay link (or the LAN thread) for each rendezvous; never blocks."""
        peer_id = getattr(peer, "peer_id", "?")
        if self._closing.is_set():
            return
        if not self._limiter.allow(peer_id):
            return self._emit("refused", peer_id=peer_id, reason="too many attempts")
        if not self._slots.acquire(blocking=False):
            return self._emit("refused", peer_id=peer_id, reason="busy")
        thread = threading.Thread(target=self._incoming_thread, args=(peer, lan), daemon=True,
                                  name=f"incoming-{peer_id}")
        with self._lock:
            self._handlers = [t for t in self._handlers if t.is_alive()] + [thread]
        thread.start()

    def _incoming_thread(self, peer, lan):
        try:
            self._handle_incoming(peer, lan)
        except Exception as exc:     # a bug: keep it for close(), tell the UI, keep serving
            log.exception("incoming connection handler failed")
            with self._lock:
                self._errors.append(exc)
            self._emit("attempt_failed", peer_id=peer.peer_id, reason="internal error")
        finally:
            self._slots.release()

    def _handle_incoming(self, peer, lan=False):
        self._emit("incoming", peer_id=peer.peer_id)
        channel, used_permanent = self._authenticate(peer, lan)
        if channel is None:
            return
        if not self._accepted(peer.peer_id, used_permanent):
            _say_bye(channel, "the partner declined the connection")
            return self._emit("refused", peer_id=peer.peer_id, reason="declined")
        if not used_permanent:
            self.new_password()          # one-time: this password is used up
        self._run_host_session(peer, channel)

    def _authenticate(self, peer, lan=False):
        """(channel, used_permanent) or (None, False) after telling the UI why. A LAN peer has no
        relay-bound key to check; the PAKE still binds both IDs."""
        try:
            if not lan:
                _check_peer(peer, peer.peer_id)
            with self._lock:
                secrets = [self._otp_secret]
            secrets += [s for s in (self.settings.permanent_secret, self._extra_secret) if s]
            from tagio.crypto.handshake import host_handshake
            handshake = functools.partial(host_handshake, secrets=secrets, viewer_id=peer.peer_id,
                                          host_id=self.id, session_id=peer.session_id,
                                          timeout=HANDSHAKE_TIMEOUT)
            relay = None if lan else self._link.relay
            if relay is None and not lan:
                raise TransportTimeout("relay connection lost before the partner arrived")
            channel = establish_channel(peer, relay, handshake, listener=self._listener,
                                        timeout=HANDSHAKE_TIMEOUT)
        except WrongPasswordError:
            self._limiter.failed(peer.peer_id)
            self._emit("auth_failed", peer_id=peer.peer_id)
            self.new_password()          # the guess was spent on a password that no longer exists
            return None, False
        except TagioError as exc:
            self._emit("attempt_failed", peer_id=peer.peer_id, reason=str(exc))
            return None, False
        return channel, _used_permanent(channel, secrets)

    def _accepted(self, peer_id, used_permanent) -> bool:
        if used_permanent or not self.settings.ask_before_accept or self.accept_callback is None:
            return True
        try:
            return bool(self.accept_callback(peer_id))
        except Exception:
            log.exception("accept callback failed; declining")
            return False

    def _run_host_session(self, peer, channel):
        from tagio.session.host import HostSession
        session = HostSession(channel, on_event=self._session_event(peer.peer_id), **self.host_options)
        with self._lock:
            self._sessions.append(session)
        path = getattr(channel, "path", "relay")
        reason = None
        try:
            if self._closing.is_set():
                _say_bye(channel, "the partner is shutting down")
                return
            session.start()
            self._emit("session_started", peer_id=peer.peer_id, path=path, role="host")
            session.join()
        except TagioError as exc:
            reason = str(exc)
        finally:
            session.stop()
            channel.close()
            with self._lock:
                self._sessions.remove(session)
            self._emit("session_ended", peer_id=peer.peer_id, role="host", reason=reason)

    def _session_event(self, peer_id):
        def forward(name, **fields):
            self._emit("host_" + name, peer_id=peer_id, **fields)
        return forward

    # ------------------------------------------------------------------ helpers

    def _emit(self, name, **fields):
        if self.on_event is None:
            return
        try:
            self.on_event(name, **fields)
        except Exception:            # a broken UI callback must not kill a network thread
            log.exception("on_event(%s) failed", name)

    def _snapshot(self, items):
        with self._lock:
            return list(items)


def relay_client_options(target, ca_file=None) -> dict:
    """RelayClient keywords for a RelayTarget: a TLS context (system CAs, or ca_file for a private
    relay's own certificate) and the WebSocket tunnel for relays behind HTTPS-only front ends."""
    options = {}
    if target.tls:
        import ssl
        try:
            options["ssl_context"] = ssl.create_default_context(cafile=ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use relay CA file {ca_file}: {exc}") from None
    if target.websocket:
        options.update(websocket=True, ws_path=target.ws_path)
    return options


def _close_part(part):
    """Close one part (None is fine); return the exception it raised instead of raising it."""
    if part is None:
        return None
    try:
        part.close()
    except Exception as exc:     # collected by close(), which re-raises the first one
        return exc
    return None


def _load_identity(config_dir):
    try:
        return Identity.load_or_create(config_dir)
    except OSError as exc:      # e.g. the folder is read-only or a file is in its place
        raise ConfigError(f"cannot create this machine's key in {config_dir}: "
                          f"{exc.strerror or exc}") from None


def start_lan_service(client_id, listener, options):
    """Announce and browse on the LAN (options: LanService keywords such as targets, lan_port),
    or None when LAN discovery is off or its port cannot be opened."""
    if options is None:
        return None
    from tagio.net.lan import LanService
    try:
        return LanService(client_id, listener.port, **options)
    except OSError as exc:
        log.warning("LAN discovery is off: %s", exc.strerror or exc)
        return None


def _say_bye(channel, text):
    """End a channel we will not run a session on, telling the viewer why (a courtesy: the viewer
    sees the channel end either way)."""
    from tagio.protocol import session as messages
    try:
        channel.send(messages.encode(messages.Bye(text)))
    except TagioError:
        pass
    finally:
        channel.close()


def _check_peer(peer, expected_id):
    """The relay must hand us the key that the partner's ID is derived from."""
    if peer.peer_id != expected_id or id_from_public_key(peer.peer_public_key) != expected_id:
        raise IdentityError(f"the relay's answer for {expected_id} does not match that ID's key")


def _used_permanent(channel, secrets) -> bool:
    """True when the secret that matched was not the one-time password's (index 0)."""
    index = getattr(channel, "matched_secret", None)   # set by tagio.crypto.handshake.host_handshake
    return isinstance(index, int) and 0 < index < len(secrets)
