"""The client core: one Client per process, shared by the Tk window and the command line.

Theory of operation. A Client is thin: it owns what both roles share and composes the two sides.

    owns      settings, this machine's identity (tagio.crypto.identity) and ID, the direct listener
              (TCP + UDP on one port, both roles use it), the RelayLink that keeps the registration
              at the relay alive (announcing the listener's addresses), the LAN service (opt-in)
    hosting   hosting.Hosting: incoming sessions (relay rendezvous and LAN dials), the attempt
              limiter, the accept policy, running HostSessions, the one-time password
    viewing   viewing.Viewing: connect to a partner (rendezvous, LAN find, racing), the password
              secret derived once per connect

Both sides reach the shared parts through a few members only: `id`, `settings`, `listener`, `lan`,
`current_relay()`, `wait_online()` and `emit()`. The public surface the front ends use is here and
delegates (connect, check_partner, one_time_password, new_password, host_sessions,
end_host_sessions, host_options, retry_relay).

LAN (opt-in, `lan=True` or LanService options): the client announces itself and browses the local
network (tagio.net.lan). When the relay is unreachable, or does not know the partner, a partner seen
on the LAN is dialled directly; dials that arrive on our listener from the LAN go through the same
limiter, handshake and accept policy as relay rendezvous.

The UI learns what happens through `on_event(name, **fields)`, called from worker threads (the Tk code
hops to its own thread). Events: relay_status(status), password_changed(), incoming(peer_id),
refused(peer_id, reason: "busy", "too many attempts", "declined" or admission.CANCELLED),
auth_failed(peer_id, tries_left, ...: every failed guess), attempt_failed(peer_id, reason, error), session_started(peer_id,
path, role), session_ended(peer_id, role, reason: never empty; the viewer's goodbye, "ended on this
desk" when this side ended it, or the error's text), id_changed(id). No event carries a secret.

The one-time password expires after an hour unused (hosting.OTP_LIFETIME); TAGIO_OTP_LIFETIME=SECONDS
makes that shorter for this process (never longer: `otp_lifetime`), e.g. for a kiosk, or a test.

The viewer's connect reports "the partner is being asked" through its own `on_waiting()` callback
and gives up when its `cancelled` Event is set; `check_partner(id)` asks the relay before the
password is asked; `relay_retry_in` / `retry_relay()` drive the window's countdown and Retry now.
"""

import logging
import os
import threading
from pathlib import Path

from tagio.client.hosting import OTP_LIFETIME, Hosting
from tagio.client.paths import make_listener
from tagio.client.relay_link import RelayLink
from tagio.client.settings import Settings, default_config_dir, parse_relay, resolve_relay_text
from tagio.client.viewing import ViewerConnection, Viewing  # noqa: F401 (ViewerConnection: public)
from tagio.crypto.identity import Identity
from tagio.errors import ConfigError

log = logging.getLogger("tagio.client")

REGISTERED_MARKER = "identity.registered"   # present once this key has been online at a relay
ENV_RELAY_CA = "TAGIO_RELAY_CA"    # PEM file that signs a private relay's TLS certificate
ENV_OTP_LIFETIME = "TAGIO_OTP_LIFETIME"    # seconds an unused one-time password lives (shorter only)
MIN_OTP_LIFETIME = 1.0


class Client:
    """Identity, relay registration, direct listener and LAN service for this process, with its
    host side (`hosting`) and viewer side (`viewing`).

    relay: "HOST:PORT" (else TAGIO_RELAY, settings, default). direct_bind: where the direct listener
    binds, None for none; listen_tcp=False for a pure viewer (UDP only). host_password: an extra permanent password for this process only (not saved).
    monitor / view_only / fps_cap / quality override the settings for host sessions; display picks
    the X display to capture (default $DISPLAY). limiter: an AttemptLimiter (tests inject one).
    lan: None/False (off), True (broadcast on the LAN) or a dict of tagio.net.lan.LanService keywords.
    relay may be a URL: tls://host:port, ws://..., wss://host[/path]; relay_ca (or TAGIO_RELAY_CA)
    names the CA file for a TLS relay with its own certificate.
    """

    def __init__(self, config_dir=None, *, relay=None, settings=None, accept_callback=None,
                 on_event=None, direct_bind=("0.0.0.0", 0), host_password=None, monitor=1,
                 view_only=None, fps_cap=None, quality=None, limiter=None, display=None, lan=None,
                 relay_ca=None, listen_tcp=True):
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
        self.on_event = on_event
        self._lock = threading.Lock()
        self._direct_bind = direct_bind
        self._listen_tcp = listen_tcp     # False: a pure viewer, no TCP listener (tagio.client.paths)
        self.listener = self.lan = self._link = None
        self._lan_options = {} if lan is True else (dict(lan) if lan else None)
        options = _host_options(self.settings, monitor, view_only, fps_cap, quality, display)
        self.hosting = Hosting(self, options=options, accept_callback=accept_callback,
                               host_password=host_password, limiter=limiter)
        self.hosting.otp_lifetime = otp_lifetime(os.environ)
        self.viewing = Viewing(self)

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        """Open the direct listener and start registering at the relay (returns at once)."""
        self.listener = make_listener(self._direct_bind, tcp=self._listen_tcp,
                                      settings=self.settings if self._listen_tcp else None)
        self.hosting.start(self.listener)       # None: no LAN dials to serve, the password still expires
        if self.listener is not None:
            self.lan = start_lan_service(self.id, self.listener, self._lan_options)
        self._link = RelayLink(self.relay_address, self.identity, auth_secret=self.settings.relay_secret,
                               candidates=self._candidates, on_peer=self.hosting.on_peer,
                               udp_socket=self._udp_socket, client_options=self._relay_options,
                               on_status=self._relay_status_changed,
                               on_identity_refused=self._identity_refused)
        self._link.start()
        return self

    def close(self):
        """Stop host sessions, the relay link and the listener; join every thread we started.
        Everything is closed even if one part fails; then the first unexpected exception (from
        closing, or one that ended one of our threads) is re-raised."""
        self.hosting.stop()
        errors = [_close_part(self._link)]
        kept = self.hosting.join()
        errors += [_close_part(self.lan), _close_part(self.listener)]
        errors = kept + [e for e in errors if e is not None]
        if errors:
            raise errors[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ what the two sides share

    def current_relay(self):
        """The RelayClient while registered, else None."""
        return None if self._link is None else self._link.relay

    def wait_online(self, timeout=10.0):
        """Block until registered; raise RelayError('unreachable') when the relay cannot be reached."""
        return self._link.wait_online(timeout)

    def emit(self, name, **fields):
        """Tell the front end (any thread); a broken callback must not kill a network thread."""
        if self.on_event is None:
            return
        try:
            self.on_event(name, **fields)
        except Exception:
            log.exception("on_event(%s) failed", name)

    # ------------------------------------------------------------------ state shown to the user

    @property
    def relay_status(self) -> str:
        """"online", "connecting" or "unreachable: <reason>"."""
        return "connecting" if self._link is None else self._link.status

    @property
    def relay_retry_in(self):
        """Seconds until the next attempt to reach an unreachable relay, else None."""
        return None if self._link is None else self._link.next_retry_in()

    @property
    def relay_waits_for_user(self) -> bool:
        """True when the relay refused our secret and only retry_relay() tries it again."""
        return self._link is not None and self._link.waiting_for_user

    def retry_relay(self):
        """Try the relay again now (the window's "Retry now")."""
        if self._link is not None:
            self._link.retry_now()

    @property
    def lan_peers(self):
        """Partners announcing themselves on this network ([LanPeer]), or None when LAN is off."""
        return None if self.lan is None else self.lan.peers()

    # ------------------------------------------------------------------ the two sides

    def connect(self, partner_id, password, timeout=15.0, **options) -> ViewerConnection:
        """See Viewing.connect (options: on_waiting, cancelled)."""
        return self.viewing.connect(partner_id, password, timeout, **options)

    def resume(self, partner_id, secret, timeout=15.0, **options) -> ViewerConnection:
        """See Viewing.resume (options: cancelled): connect again with a resumption secret."""
        return self.viewing.resume(partner_id, secret, timeout, **options)

    def check_partner(self, partner_id, timeout=5.0) -> str:
        """See Viewing.check_partner (before the password is asked)."""
        return self.viewing.check_partner(partner_id, timeout)

    @property
    def one_time_password(self) -> str:
        return self.hosting.one_time_password

    def new_password(self) -> str:
        return self.hosting.new_password()

    @property
    def host_options(self) -> dict:
        """HostSession keywords for the next incoming session (the window updates them in place)."""
        return self.hosting.options

    @property
    def accept_callback(self):
        return self.hosting.accept_callback

    @property
    def host_sessions(self) -> list:
        return self.hosting.sessions

    def end_host_sessions(self):
        """The "disconnect" button: stop every session in which this machine is the host."""
        self.hosting.end_sessions()

    # ------------------------------------------------------------------ relay link callbacks

    def _candidates(self):
        return self.listener.candidates() if self.listener is not None else []

    def _udp_socket(self):
        """The listener's UDP socket as seen by RelayClient.discover_udp (for hole punching)."""
        udp = self.listener.udp if self.listener is not None else None
        return udp.discovery_socket() if udp is not None else None

    def _relay_status_changed(self, status):
        if status == "online" and self._identity_fresh:
            self._identity_fresh = False            # this key is known now: never replace it silently
            try:
                (Path(self.config_dir) / REGISTERED_MARKER).touch()
            except OSError as exc:
                log.info("cannot record that this ID is registered: %s", exc)
        self.emit("relay_status", status=status)

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
        self.hosting.identity_changed()     # every password secret is salted with the ID
        if self.lan is not None:            # announce the new ID on the LAN
            self.lan.close()
            self.lan = start_lan_service(self.id, self.listener, self._lan_options)
        self.emit("id_changed", id=self.id)
        return self.identity


def _host_options(settings, monitor, view_only, fps_cap, quality, display) -> dict:
    """HostSession keywords: the flags given for this process win over the settings."""
    options = {
        "monitor": monitor,
        "view_only": settings.view_only if view_only is None else view_only,
        "fps_cap": fps_cap or settings.fps_cap,
        "quality": quality or settings.quality,
        "clipboard": settings.clipboard,
        "files_dir": host_files_dir(settings),
    }
    if display is not None:          # an X display other than $DISPLAY (tests, multi-seat)
        options["display"] = display
    return options


def host_files_dir(settings):
    """The settings' files folder for host sessions, or None (files off, or unusable: logged)."""
    try:
        return settings.host_files_dir()
    except ConfigError as exc:
        log.warning("files are off: %s", exc)
        return None


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


def otp_lifetime(environ) -> float:
    """Seconds an unused one-time password lives: TAGIO_OTP_LIFETIME when set, else the hour.
    The setting can only shorten it (a longer life is never safer); ConfigError for anything but
    a number of seconds from MIN_OTP_LIFETIME to OTP_LIFETIME."""
    text = environ.get(ENV_OTP_LIFETIME, "").strip()
    if not text:
        return OTP_LIFETIME
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not MIN_OTP_LIFETIME <= seconds <= OTP_LIFETIME:       # NaN fails this too
        raise ConfigError(f"{ENV_OTP_LIFETIME} must be a number of seconds from {MIN_OTP_LIFETIME:g} "
                          f"to {OTP_LIFETIME:g} (it can only make the one-time password expire sooner)")
    return seconds
