"""The viewer side of the client: connect to a partner and hand back an authenticated channel.

Theory of operation. `connect(partner_id, password)`:

0. (before the front end asks for the password) `check_partner` asks the relay whether the ID is
   known and online (relay Lookup: online / offline / unknown only, rate limited);
1. checks the input (a partner ID that is not ours, a password that is not blank);
2. finds the partner: through the relay (ConnectRequest -> PeerInfo, whose key must match the ID), or
   on the LAN when the relay is unreachable or does not know the partner and the partner announces
   itself here (lan.py);
3. derives the password secret ONCE (scrypt salted with the partner's ID, tens of ms): the race below
   runs the handshake on every path that opens (direct TCP both ways, punched UDP, the relay), and
   each of them uses this one secret through crypto.handshake.viewer_handshake_secret, keyed as the
   kind of password it is (one-time or permanent, by its shape);
4. races the paths (net.connect.establish via paths.py) with our direct listener, so UDP punching and
   connection reversal work. Exactly one guess per connect, whoever answers (a LAN spoofer, an ID
   squatter, a malicious relay): the paths share one OneGuess, so once a REPLY failed no other is
   checked, and any failure after a REPLY is a WrongPasswordError that ends the whole race;
5. proves our ID to the host and checks the host's proof of its own (proving.py), bound to this
   channel; the key the host proves must be the one pinned for its ID (pins.py), and one the relay
   named before the handshake already must be, so a squatter gets no password guess. A changed key
   is a KeyChangedError unless the person accepted it (`accept_new_key`: True, or exactly the
   key the window showed); the key proven in an admitted session is pinned;
6. waits for the host's accept step (admission.py): "waiting for your partner" is reported once
   through `on_waiting()`, a Deny raises PartnerRefused("declined"), and setting `cancelled`
   gives up at once (the host's prompt closes); a host that refuses before the handshake (busy,
   too many attempts) says so on the relay path and its PartnerRefused ends the race (refusal.py);
7. returns a ViewerConnection (channel, path, connect time, the host's desk name, and the channel's
   resumption secret) whose `open_session()` makes the ViewerSession, and remembers the partner in
   the address book (client/partners.py) and the recent list. Our own desk name goes to the host
   inside the channel (admission.py's Introduce), never to the relay.

`resume(partner_id, secret)` is the same connect with a finished session's resumption secret
(resume.py) in place of the password's, as the handshake's "resume" kind: the host skips its
accept prompt when it still holds it.

`Viewing` uses only a few parts of the thin Client that owns it (core.py): `id`, `identity`,
`config_dir` (the pins), `settings`, `listener`, `lan` and `wait_online(timeout)`.
"""

import functools
import logging
import os
import time
from dataclasses import dataclass, field

from tagio.client.admission import ConnectCancelled, await_admission
from tagio.client.paths import check_peer, establish_channel
from tagio.client.pins import KeyChangedError, PinStore
from tagio.client.proving import prove_to_host
from tagio.client.refusal import RefusalAware, tell_host
from tagio.client.resume import resume_secret
from tagio.crypto import kdf
from tagio.crypto.identity import fingerprint, format_id, normalize_id
from tagio.errors import ConfigError, RelayError, TagioError

log = logging.getLogger("tagio.client")

LAN_QUERY_WAIT = 1.5        # LAN answers to a query come back within about a second
RELAY_WAIT_MAX = 10.0       # how long a connect waits for our own registration at most
LAN_FALLBACK_CODES = ("unknown_id", "offline")   # relay answers after which the LAN may still help
LOOKUP_TIMEOUT = 5.0
LOOKUP_CODES = {"offline": "offline", "unknown": "unknown_id"}   # lookup state -> RelayError code


@dataclass
class ViewerConnection:
    """An authenticated channel to a partner, ready for a ViewerSession."""
    channel: object
    peer_id: str
    path: str
    connect_ms: float
    session_id: bytes = field(repr=False, default=b"")
    peer_name: str = ""         # the host's desk name (its Introduce), cleaned for display
    resume_secret: bytes = field(repr=False, default=b"")   # for resume(): memory only, never logged

    def open_session(self, **kwargs):
        """A (not yet started) ViewerSession on this channel; kwargs go to ViewerSession."""
        from tagio.session.viewer import ViewerSession
        return ViewerSession(self.channel, **kwargs)


class Viewing:
    """Outgoing connects of one Client."""

    def __init__(self, client):
        self.client = client
        self.pins = PinStore(client.config_dir)

    def connect(self, partner_id, password, timeout=15.0, *, on_waiting=None,
                cancelled=None, accept_new_key=False) -> ViewerConnection:
        """Authenticate to partner_id with password and wait until the host admits us. Raises
        ConfigError (bad ID/password format; PinFileError: the pins cannot be read), RelayError
        (unreachable, unknown_id, offline, rate_limited), WrongPasswordError, PartnerRefused (busy,
        rate_limited, declined), ConnectCancelled (`cancelled` was set), TransportError/
        TransportTimeout (no path), IdentityError (relay gave a mismatched key; KeyChangedError: the
        partner's key is not the pinned one; IdentityProofError: its proof failed), VersionMismatch
        (an older host that proves nothing). `accept_new_key`: True takes any new key for this
        partner, bytes exactly that key; the key proven then replaces the pin."""
        partner = self._check_input(partner_id, password)
        from tagio.crypto.handshake import password_kind
        # derived once per connect, not once per path; after the rendezvous, as before
        return self._connect(partner, lambda: kdf.password_secret(password, partner),
                             password_kind(password), timeout, on_waiting, cancelled, accept_new_key)

    def resume(self, partner_id, secret, timeout=15.0, *, cancelled=None) -> ViewerConnection:
        """Connect again with a finished session's resumption secret instead of a password.
        Raises as connect() does; WrongPasswordError means the host no longer takes the secret."""
        partner = normalize_id(partner_id)
        from tagio.crypto.handshake import Kind
        return self._connect(partner, lambda: secret, Kind.RESUME, timeout, None, cancelled)

    def _connect(self, partner, derive_secret, kind, timeout, on_waiting,
                 cancelled, accept_new_key=False) -> ViewerConnection:
        relay, relay_error = self._relay_or_error(timeout)
        started = time.monotonic()      # connect_ms: rendezvous + path + PAKE, not our registration
        session_id = os.urandom(16)
        peer, relay = self._rendezvous(partner, session_id, relay, relay_error, timeout)
        if peer.peer_public_key:        # the relay named the key: a changed one gets no guess
            try:
                self._check_pin(partner, peer.peer_public_key, accept_new_key, proven=False)
            except KeyChangedError:
                tell_host(relay, peer, "key_changed")   # so the host's attempt ends now
                raise
        secret = derive_secret()        # once per connect, not once per path
        from tagio.crypto.handshake import OneGuess, viewer_handshake_secret
        shake = functools.partial(viewer_handshake_secret, secret=secret, kind=kind,
                                  once=OneGuess(), viewer_id=self.client.id, host_id=partner,
                                  session_id=session_id, timeout=timeout)
        channel = establish_channel(peer, relay, lambda stream: shake(RefusalAware(stream)),
                                    listener=self.client.listener, timeout=timeout)
        host_key = self._prove(channel, partner, accept_new_key)
        connect_ms = (time.monotonic() - started) * 1000.0
        if cancelled is not None and cancelled.is_set():
            channel.close()
            raise ConnectCancelled("the connection was cancelled")
        host_name = await_admission(channel, on_waiting=on_waiting, cancelled=cancelled,
                                    name=self.client.settings.desk_name)
        path = channel.path
        self._remember(partner, path, host_name, host_key)
        return ViewerConnection(channel, partner, path, connect_ms, session_id, host_name,
                                resume_secret(channel, self.client.id, partner))

    def _prove(self, channel, partner, accept_new_key) -> bytes:
        """Prove our ID to the host and check its proof and its pin; the host's key. Raises
        IdentityError (KeyChangedError, IdentityProofError), VersionMismatch, TagioError; the
        channel is closed on failure."""
        try:
            key = prove_to_host(channel, self.client.identity, partner)
            self._check_pin(partner, key, accept_new_key, proven=True)
        except TagioError:
            channel.close()
            raise
        return key

    def _check_pin(self, partner, key, accept_new_key, *, proven):
        """KeyChangedError (logged with both keys) unless `key` is the pinned one or accepted."""
        try:
            replaced = self.pins.check(partner, key, accept=accept_new_key, proven=proven)
        except TagioError as exc:
            log.warning("refusing desk %s: %s", format_id(partner), exc)
            raise
        if replaced is not None and proven:
            log.warning("desk %s: accepting its new key %s as asked (it was %s)", format_id(partner),
                        fingerprint(key), fingerprint(replaced.key))

    def check_partner(self, partner_id, timeout=LOOKUP_TIMEOUT) -> str:
        """Before the password is asked: is the partner's ID known and online? Returns the
        normalised ID, or raises ConfigError (own ID, bad format) or RelayError ("unknown_id",
        "offline", "rate_limited"). When the relay cannot tell (we are not registered, or the
        lookup fails) it returns quietly: the connect itself will say what is wrong, and the LAN
        may still find the partner; so does a partner the relay does not know but the LAN sees."""
        partner = normalize_id(partner_id)
        if partner == self.client.id:
            raise ConfigError("that is this machine's own ID")
        relay = self.client.current_relay()
        if relay is None:
            return partner
        try:
            state = relay.lookup(partner, timeout=timeout)
        except RelayError as exc:
            if exc.code == "rate_limited":
                raise
            return partner
        except TagioError as exc:
            log.info("could not look %s up at the relay: %s", partner, exc)
            return partner
        if state != "online" and self._find_on_lan(partner, wait=0.0) is None:
            raise RelayError(LOOKUP_CODES[state], f"ID {partner} is {state}")
        return partner

    def _check_input(self, partner_id, password) -> str:
        partner = normalize_id(partner_id)
        if partner == self.client.id:
            raise ConfigError("that is this machine's own ID")
        if not password or not str(password).strip():
            raise ConfigError("enter the partner's password")
        return partner

    def _relay_or_error(self, timeout):
        try:
            return self.client.wait_online(min(timeout, RELAY_WAIT_MAX)), None
        except RelayError as exc:
            return None, exc

    def _rendezvous(self, partner, session_id, relay, relay_error, timeout):
        """(PeerInfo, relay or None): through the relay, or on the LAN when the relay cannot help
        (it is unreachable, or does not know the partner) and the partner announces itself here."""
        lan_peer = self._find_on_lan(partner, wait=LAN_QUERY_WAIT if relay is None else 0.0)
        if relay is not None:
            try:
                peer = relay.request_peer(partner, session_id, timeout=timeout)
                check_peer(peer, partner)
                return peer, relay
            except RelayError as exc:
                if lan_peer is None or exc.code not in LAN_FALLBACK_CODES:
                    raise
        elif lan_peer is None:
            raise relay_error
        from tagio.net.connect import lan_viewer_peer
        return lan_viewer_peer(partner, lan_peer.address, self.client.id, session_id), None

    def _find_on_lan(self, partner, wait):
        """The partner's LanPeer if it announces itself here; asks everyone to announce at once
        and waits up to `wait` seconds when it has not been seen yet."""
        lan = self.client.lan
        if lan is None:
            return None
        found = lan.find(partner)
        deadline = time.monotonic() + wait
        if found is None and wait > 0:
            lan.query()
        while found is None and time.monotonic() < deadline:
            time.sleep(0.05)
            found = lan.find(partner)
        return found

    def _remember(self, partner, path, host_name, host_key):
        """The partner goes to the top of the address book (with the path and its own name) and of
        the recent list, and the key it proved is pinned (a pin that cannot be written is logged:
        the session was admitted, and the next connect pins the key again)."""
        try:
            if self.pins.remember(partner, host_key):
                log.info("desk %s: pinned its key %s", format_id(partner), fingerprint(host_key))
        except ConfigError as exc:
            log.warning("%s", exc)
        settings = self.client.settings
        settings.partners.record_session(partner, path, host_name)
        settings.add_recent(partner)
        try:
            settings.save()
        except ConfigError as exc:
            log.warning("%s", exc)
