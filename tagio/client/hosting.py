"""The host side of the client: incoming sessions, from a rendezvous to a running HostSession.

Theory of operation. Incoming attempts come from two places: the relay link pushes each rendezvous
(PeerInfo, role "host") to `on_peer`, and a thread serves dials that reached our direct listener from
the LAN (`listener.lan_requests`, no relay involved). Each attempt is one password guess, so it is
first checked against the AttemptLimiter (ratelimit.py: per peer and in total) and then handled in its
own short-lived thread, at most MAX_INCOMING at once (more are refused, not queued):

    establish a path (net.connect racing) with the host handshake, keyed by the current one-time
    password's secret plus the permanent secrets (settings, and --password for this process)
      -> wrong password: the guess counts double against the peer; after MAX_TRIES_PER_PASSWORD
         wrong guesses the one-time password rotates (a typo does not cost a new password)
    accept policy: `accept_callback(peer_id, cancelled=Event) -> bool`, asked when "ask before
      accepting" is on, unless a permanent password was the one used; the viewer waits meanwhile
      (admission.py) and `cancelled` is set when it gives up, so the prompt closes at once
    a HostSession runs until it ends; then a one-time password that opened it rotates
    reconnect (resume.py): a viewer whose session's path broke may come back within 60 s with the
      session's resumption secret, offered to its handshake next to the passwords; a match skips
      the accept prompt, is used up, and the session runs again with the same rights

An attempt refused before any handshake (no free slot: "busy"; the limiter: "rate_limited") is
answered on its relay path (refusal.py), so the viewer reads why within a second.

`Hosting` holds the one-time password (its scrypt secret is derived when it is made, so a handshake
never waits) and the running HostSessions. It uses only a few parts of the thin Client that owns it
(core.py): `id`, `settings`, `listener`, `current_relay()` and `emit(name, **fields)`.
"""

import functools
import logging
import queue
import threading

from tagio.client.admission import CANCELLED, DECLINED, HostAdmission
from tagio.client.paths import check_peer, establish_channel
from tagio.client.ratelimit import AttemptLimiter
from tagio.client.refusal import Refuser
from tagio.client.resume import ResumeTickets, lost_path, resume_secret
from tagio.errors import TagioError, TransportTimeout, WrongPasswordError

log = logging.getLogger("tagio.client")

MAX_INCOMING = 4            # concurrent incoming attempts/sessions; more are refused, not queued
HANDSHAKE_TIMEOUT = 15.0
JOIN_TIMEOUT = HANDSHAKE_TIMEOUT + 5.0
POLL = 0.25                 # how often the LAN thread notices close()
MAX_TRIES_PER_PASSWORD = 3  # wrong guesses before the one-time password rotates (Chrome RD: 5)
RESUMED = "resumed"         # _authenticate's second value when a resumption secret matched


class Hosting:
    """Incoming attempts and host sessions of one Client.

    options: HostSession keywords (monitor, view_only, fps_cap, quality, display); the window
    updates the dict in place after Settings are saved. host_password: an extra permanent password
    for this process only (not saved). limiter: an AttemptLimiter (tests inject one).
    """

    def __init__(self, client, *, options, accept_callback=None, host_password=None, limiter=None):
        self.client = client
        self.options = options
        self.accept_callback = accept_callback
        self._host_password = host_password
        self._limiter = limiter or AttemptLimiter()
        self._lock = threading.Lock()
        self._otp = self._otp_secret = self._extra_secret = None
        self._otp_failures = 0
        self._refuser = Refuser()
        self._slots = threading.BoundedSemaphore(MAX_INCOMING)
        self._handlers, self._sessions, self._errors = [], [], []
        self._closing = threading.Event()
        self._lan_thread = None
        self.resume = ResumeTickets(allowed=lambda: self.client.settings.allow_reconnect)
        self.identity_changed()

    # ------------------------------------------------------------------ lifecycle

    def start(self, listener):
        """Serve LAN dials that arrive on `listener` (None: no listener, nothing to serve)."""
        if listener is None:
            return
        self._lan_thread = threading.Thread(target=self._lan_requests_thread, args=(listener,),
                                            name="lan-incoming", daemon=True)
        self._lan_thread.start()

    def stop(self):
        """Refuse new attempts and end the running sessions (returns at once)."""
        self._closing.set()
        self.end_sessions()

    def join(self) -> list:
        """Join our threads (after stop(), and after the relay link closed, which unblocks an
        attempt still waiting on the relay); returns the exceptions that ended any of them (bugs,
        kept for Client.close())."""
        if self._lan_thread is not None:
            self._lan_thread.join(JOIN_TIMEOUT)
        for thread in self._snapshot(self._handlers):
            thread.join(JOIN_TIMEOUT)
        self._refuser.join(JOIN_TIMEOUT)
        return self._snapshot(self._errors)

    # ------------------------------------------------------------------ the one-time password

    @property
    def one_time_password(self) -> str:
        with self._lock:
            return self._otp

    def new_password(self) -> str:
        """Replace the one-time password (its secret is derived at once so a handshake never waits)."""
        from tagio.crypto.kdf import new_one_time_password, password_secret
        otp = new_one_time_password()
        secret = password_secret(otp, self.client.id)
        with self._lock:
            self._otp, self._otp_secret, self._otp_failures = otp, secret, 0
        self.client.emit("password_changed")
        return otp

    def _password_failed(self) -> int:
        """A wrong guess; returns the tries left for this password (0: it was replaced)."""
        with self._lock:
            self._otp_failures += 1
            left = MAX_TRIES_PER_PASSWORD - self._otp_failures
        if left <= 0:
            self.new_password()
        return max(left, 0)

    def identity_changed(self):
        """Every password secret is salted with our ID: derive them again for a (new) ID."""
        self._extra_secret = None
        if self._host_password:
            from tagio.crypto.kdf import password_secret
            self._extra_secret = password_secret(self._host_password, self.client.id)
        self.new_password()

    # ------------------------------------------------------------------ sessions

    @property
    def sessions(self) -> list:
        return self._snapshot(self._sessions)

    def end_sessions(self):
        """The "disconnect" button: stop every session in which this machine is the host."""
        self.resume.refuse_all()         # and nobody comes back without a new Accept
        for session in self._snapshot(self._sessions):
            session.stop()

    # ------------------------------------------------------------------ incoming attempts

    def _lan_requests_thread(self, listener):
        """Dials that arrived on our listener from the LAN, with no relay involved. An exception
        that ends this thread is kept for stop()."""
        from tagio.net.connect import lan_host_peer
        requests = getattr(listener, "lan_requests", None)
        try:
            while requests is not None and not self._closing.is_set():
                try:
                    request = requests.get(timeout=POLL)
                except queue.Empty:
                    continue
                self.on_peer(lan_host_peer(request, self.client.id), lan=True)
        except Exception as exc:
            log.exception("LAN request thread failed")
            self._keep(exc)

    def on_peer(self, peer, lan=False):
        """Called by the relay link (or the LAN thread) for each rendezvous; never blocks."""
        peer_id = getattr(peer, "peer_id", "?")
        if self._closing.is_set():
            return
        if not self._limiter.allow(peer_id):
            return self._refuse(peer, lan, "rate_limited", "too many attempts")
        if not self._slots.acquire(blocking=False):
            return self._refuse(peer, lan, "busy", "busy")
        thread = threading.Thread(target=self._incoming_thread, args=(peer, lan), daemon=True,
                                  name=f"incoming-{peer_id}")
        with self._lock:
            self._handlers = [t for t in self._handlers if t.is_alive()] + [thread]
        thread.start()

    def _refuse(self, peer, lan, code, reason):
        """Tell the UI, and the viewer on its relay path (a LAN dial has none: it times out)."""
        if not lan:
            self._refuser.refuse(self.client.current_relay(), peer, code)
        self.client.emit("refused", peer_id=peer.peer_id, reason=reason)

    def _incoming_thread(self, peer, lan):
        try:
            self._handle_incoming(peer, lan)
        except Exception as exc:     # a bug: keep it for close(), tell the UI, keep serving
            log.exception("incoming connection handler failed")
            self._keep(exc)
            self.client.emit("attempt_failed", peer_id=peer.peer_id, reason="internal error")
        finally:
            self._slots.release()

    def _handle_incoming(self, peer, lan=False):
        self.client.emit("incoming", peer_id=peer.peer_id)
        resume = self.resume.secret_for(peer.peer_id)
        channel, used_permanent = self._authenticate(peer, lan, resume)
        if channel is None:
            return
        ticket = self._resumed(peer, channel, resume) if used_permanent == RESUMED else None
        if used_permanent == RESUMED and ticket is None:
            return
        admission = HostAdmission(channel)
        if not self._accepted(peer.peer_id, used_permanent, admission):
            gone = admission.left.is_set()   # the viewer gave up while we asked
            admission.refuse(None if gone else DECLINED)
            return self.client.emit("refused", peer_id=peer.peer_id,
                                    reason=CANCELLED if gone else "declined")
        try:
            channel = admission.admit()
        except TagioError as exc:
            channel.close()
            return self.client.emit("attempt_failed", peer_id=peer.peer_id, reason=str(exc), error=exc)
        try:
            self._run_session(peer, channel, ticket)
        finally:
            if not used_permanent:
                self.new_password()      # one-time: used up once its session ended

    def _secrets(self) -> list:
        """The one-time password's secret first (index 0), then the permanent ones."""
        with self._lock:
            secrets = [self._otp_secret]
        return secrets + [s for s in (self.client.settings.permanent_secret, self._extra_secret) if s]

    def _authenticate(self, peer, lan=False, resume=None):
        """(channel, used_permanent) or (None, False) after telling the UI why; used_permanent is
        RESUMED when `resume` (a resumption secret, offered last) matched. A LAN peer has no
        relay-bound key to check; the PAKE still binds both IDs."""
        secrets = self._secrets() + ([resume] if resume else [])
        try:
            if not lan:
                check_peer(peer, peer.peer_id)
            from tagio.crypto.handshake import host_handshake
            handshake = functools.partial(host_handshake, secrets=secrets, viewer_id=peer.peer_id,
                                          host_id=self.client.id, session_id=peer.session_id,
                                          timeout=HANDSHAKE_TIMEOUT)
            relay = None if lan else self.client.current_relay()
            if relay is None and not lan:
                raise TransportTimeout("relay connection lost before the partner arrived")
            channel = establish_channel(peer, relay, handshake, listener=self.client.listener,
                                        timeout=HANDSHAKE_TIMEOUT)
        except WrongPasswordError:
            self._limiter.failed(peer.peer_id)
            tries_left = self._password_failed()
            self.client.emit("auth_failed", peer_id=peer.peer_id, tries_left=tries_left)
            return None, False
        except TagioError as exc:
            self.client.emit("attempt_failed", peer_id=peer.peer_id, reason=str(exc), error=exc)
            return None, False
        if resume and getattr(channel, "matched_secret", None) == len(secrets) - 1:
            return channel, RESUMED
        return channel, used_permanent(channel, secrets)

    def _resumed(self, peer, channel, secret):
        """The ticket the viewer's resumption secret matched, used up now; None (the channel is
        closed) when another attempt took it first. A session with this viewer that still runs
        here is ended: the viewer saw its path break before we did."""
        ticket = self.resume.take(peer.peer_id, secret)
        if ticket is None:
            say_bye(channel, "the reconnect came too late")
            self.client.emit("refused", peer_id=peer.peer_id, reason="reconnect expired")
            return None
        if ticket.session is not None:      # in a thread: a stop on a dead path takes seconds
            self._track(threading.Thread(target=ticket.session.stop, args=("the viewer reconnected",),
                                         name=f"replaced-{peer.peer_id}", daemon=True))
        return ticket

    def _track(self, thread):
        """Start a short-lived thread that join() waits for."""
        with self._lock:
            self._handlers = [t for t in self._handlers if t.is_alive()] + [thread]
        thread.start()

    def _accepted(self, peer_id, used_permanent, admission) -> bool:
        ask = self.client.settings.ask_before_accept
        if used_permanent or not ask or self.accept_callback is None:
            return True
        try:
            return admission.ask(self.accept_callback, peer_id)
        except TagioError:               # the viewer left before it heard we are asking
            admission.left.set()
            return False

    def _run_session(self, peer, channel, resumed=None):
        """Run a HostSession on `channel` until it ends; `resumed`: the ticket of the session it
        continues (its rights are kept)."""
        from tagio.session.host import HostSession
        options = self.options if resumed is None else resumed.options
        session = HostSession(channel, on_event=self._session_event(peer.peer_id), **options)
        with self._lock:
            self._sessions.append(session)
        path = getattr(channel, "path", "relay")
        reason = lost = None
        ticket = self.resume.issue(peer.peer_id, resume_secret(channel, peer.peer_id, self.client.id),
                                   options, session)
        try:
            if self._closing.is_set():
                say_bye(channel, "the partner is shutting down")
                return
            session.start()
            self.client.emit("session_started", peer_id=peer.peer_id, path=path, role="host",
                             **({"resumed": True} if resumed is not None else {}))
            session.join()
        except TagioError as exc:
            reason, lost = str(exc), lost_path(exc)
        finally:
            session.stop()
            channel.close()
            self.resume.ended(ticket, bool(lost) and not self._closing.is_set())
            with self._lock:
                self._sessions.remove(session)
            self.client.emit("session_ended", peer_id=peer.peer_id, role="host", reason=reason)

    def _session_event(self, peer_id):
        def forward(name, **fields):
            self.client.emit("host_" + name, peer_id=peer_id, **fields)
        return forward

    # ------------------------------------------------------------------ helpers

    def _keep(self, exc):
        with self._lock:
            self._errors.append(exc)

    def _snapshot(self, items):
        with self._lock:
            return list(items)


def say_bye(channel, text):
    """End a channel we will not run a session on, telling the viewer why (a courtesy: the viewer
    sees the channel end either way)."""
    from tagio.protocol import session as messages
    try:
        channel.send(messages.encode(messages.Bye(text)))
    except TagioError:
        pass
    finally:
        channel.close()


def used_permanent(channel, secrets) -> bool:
    """True when the secret that matched was not the one-time password's (index 0)."""
    index = getattr(channel, "matched_secret", None)   # set by tagio.crypto.handshake.host_handshake
    return isinstance(index, int) and 0 < index < len(secrets)
