"""The host side of the client: incoming sessions, from a rendezvous to a running HostSession.

Theory of operation. Incoming attempts come from two places: the relay link pushes each rendezvous
(PeerInfo, role "host") to `on_peer`, and a thread serves dials that reached our direct listener from
the LAN (`listener.lan_requests`, no relay involved; the listener drops a LAN dial whose tag is wrong
before it gets here). Each attempt is first checked against the AttemptLimiter (ratelimit.py: per peer
and in total, a bound on the work an attempt costs) and then handled in its own short-lived thread, at
most MAX_INCOMING at once (more are refused, not queued):

    establish a path (net.connect racing) with the host handshake, keyed by the one-time password's
    secret and the permanent password's SPAKE2+ verifier (settings, or --password for this process)
      -> a session gives the viewer one password check (the first of its paths to get there; the
         others are closed before their REPLY), counted against the GuessLimiter (guesses.py) from
         before the host's REPLY until mutual success; a session without success reports it as
         failed (`auth_failed`, hang-ups and timeouts too), and the one-time password rotates after
         TRIES_PER_PASSWORD failed tries at it (a typo does not cost a new password); a refused
         guess is `refused` "too many wrong passwords"
    identity: the viewer proves its ID inside the channel before anything else (proving.py: it
      signs this channel with its ID's key) and then we prove ours; only a proven viewer is mutual
      success for the guess limiter, so a viewer whose proof fails (or an older TagIO that proves
      nothing) is refused with the reason and counted like a failed guess; the prompt, the events
      and the history show only proven IDs from here on
    names: both desks send their display name (admission.py Introduce), the viewer's is read here
    accept policy: `accept_callback(peer_id, cancelled=Event, name=, files=) -> bool | Rights`,
      asked when "ask before accepting" is on, unless a permanent password was the one used or the
      user always allows this desk (client/partners.py, with the rights remembered); the viewer
      waits meanwhile (admission.py) and `cancelled` is set when it gives up, so the prompt closes
    a HostSession runs with the granted rights (view only, clipboard, files folder) until it ends;
      it goes into the host's history (client/history.py); a one-time password that opened it
      rotates
    reconnect (resume.py): a viewer whose session's path broke may come back within 60 s with the
      session's resumption secret; the handshake keys its "resume" kind by it (HostKeys.resume, a
      padded slot when this viewer has no ticket) and a wrong one is a guess like any other; a
      match skips the accept prompt, is used up, and the session runs again with the same rights

An attempt refused before any handshake (no free slot: "busy"; the limiter: "rate_limited") is
answered on its relay path (refusal.py), so the viewer reads why within a second; a viewer that
stops before its handshake (the host's key is not the one it pinned) says so on the relay path the
same way, and the attempt ends at once as `attempt_failed` (its error a PartnerRefused).

`Hosting` holds the one-time password (its scrypt secret is derived when it is made, so a handshake
never waits) and the running HostSessions. A one-time password also expires with time: one that has
been shown for OTP_LIFETIME with no host session running is replaced (a thread of its own, the pure
rule `otp_expired`, an injectable `otp_clock`); the front ends show the new one as for any rotation.
It uses only a few parts of the thin Client that owns it (core.py): `id`, `settings`, `listener`, `current_relay()` and `emit(name, **fields)`.
"""

import functools
import logging
import queue
import threading
import time

from tagio.client.admission import CANCELLED, DECLINED, HostAdmission
from tagio.client.guesses import GuessLimiter, SessionGuesses
from tagio.client.partners import Rights
from tagio.client.paths import check_peer, establish_channel
from tagio.client.proving import check_viewer
from tagio.client.ratelimit import AttemptLimiter
from tagio.client.refusal import RefusalAware, Refuser
from tagio.client.resume import ResumeTickets, lost_path, resume_secret
from tagio.client.words import ID_NOT_PROVEN
from tagio.crypto.handshake import GuessLimitError, HostKeys, Kind
from tagio.crypto.identity import fingerprint, format_id
from tagio.errors import (ConnectionClosed, IdentityError, TagioError, TransportTimeout,
                          WrongPasswordError)
from tagio.protocol.version import VersionMismatch

log = logging.getLogger("tagio.client")

MAX_INCOMING = 4            # concurrent incoming attempts/sessions; more are refused, not queued
HANDSHAKE_TIMEOUT = 15.0
JOIN_TIMEOUT = HANDSHAKE_TIMEOUT + 5.0
POLL = 0.25                 # how often the LAN thread notices close()
ALL_RIGHTS = Rights(control=True, clipboard=True, files=True)   # narrowed by the host's settings
OTP_LIFETIME = 3600.0       # seconds a one-time password lives unused (a photo of the screen ages out)
OTP_EXPIRY_POLL = 1.0       # how often the expiry thread looks (and notices stop())


def otp_expired(shown_since, now, sessions_running, lifetime=OTP_LIFETIME) -> bool:
    """Replace the one-time password shown since `shown_since`? Yes once it has lived `lifetime`,
    unless a host session is running (that session's end replaces it anyway)."""
    return not sessions_running and now - shown_since >= lifetime
RESUMED = "resumed"         # _authenticate's second value when a resumption secret matched
ENDED_HERE = "ended on this desk"      # session_ended's reason when this side ended it cleanly


class Hosting:
    """Incoming attempts and host sessions of one Client.

    options: HostSession keywords (monitor, view_only, fps_cap, quality, display); the window
    updates the dict in place after Settings are saved. host_password: an extra permanent password
    for this process only (not saved; it takes the place of the saved one). limiter: an
    AttemptLimiter (tests inject one). `guesses`: the GuessLimiter (tests may replace it before start).
    """

    otp_clock = staticmethod(time.monotonic)     # tests inject a clock for the expiry
    otp_lifetime = OTP_LIFETIME

    def __init__(self, client, *, options, accept_callback=None, host_password=None, limiter=None):
        self.client = client
        self.options = options
        self.accept_callback = accept_callback
        self._host_password = host_password
        self._limiter = limiter or AttemptLimiter()
        self.guesses = GuessLimiter()
        self._lock = threading.Lock()
        self._otp = self._otp_secret = self._extra_verifier = None
        self._refuser = Refuser()
        self._slots = threading.BoundedSemaphore(MAX_INCOMING)
        self._handlers, self._sessions, self._errors = [], [], []
        self._closing = threading.Event()
        self._lan_thread = self._expiry_thread = None
        self.resume = ResumeTickets(allowed=lambda: self.client.settings.allow_reconnect)
        self.identity_changed()

    # ------------------------------------------------------------------ lifecycle

    def start(self, listener):
        """Serve LAN dials that arrive on `listener` (None: no listener, nothing to serve), and
        expire the one-time password with time."""
        self._expiry_thread = start_otp_expiry(self)
        if listener is None:
            return
        from tagio.net.connect import lan_tag_ok
        listener.lan_check = lambda preamble: lan_tag_ok(preamble, self.client.id)
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
        for thread in (self._lan_thread, self._expiry_thread):
            if thread is not None:
                thread.join(JOIN_TIMEOUT)
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
            self._otp, self._otp_secret = otp, secret
        self.guesses.password_rotated()
        self.client.emit("password_changed")
        return otp

    def identity_changed(self):
        """Every password secret is salted with our ID: derive them again for a (new) ID. Raises
        ConfigError when --password looks like a one-time password."""
        self._extra_verifier = None
        if self._host_password:
            from tagio.crypto.kdf import permanent_verifier
            self._extra_verifier = permanent_verifier(self._host_password, self.client.id)
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
        requests = listener.lan_requests
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
        peer_id = peer.peer_id
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
        name = self._introduce(peer.peer_id, admission)
        if name is None:
            return
        rights = self._accepted(peer.peer_id, used_permanent, admission, name)
        if rights is None:
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
            self._run_session(peer, channel, rights, name, ticket)
        finally:
            if not used_permanent:
                self.new_password()      # one-time: used up once its session ended

    def _keys(self, resume=None) -> HostKeys:
        """The one-time password's secret, the permanent password's verifier (--password's for
        this process, else the saved one) and this viewer's resumption secret (or None)."""
        with self._lock:
            one_time = self._otp_secret
        return HostKeys(one_time, self._extra_verifier or self.client.settings.permanent_verifier,
                        resume=resume)

    def _authenticate(self, peer, lan=False, resume=None):
        """(channel, used_permanent) or (None, False) after telling the UI why; used_permanent is
        RESUMED when `resume` (this viewer's resumption secret, the handshake's "resume" kind)
        matched. A LAN peer has no relay-bound key to check; its proof (proving.py) checks its ID."""
        tally = SessionGuesses(self.guesses, peer.peer_id, GuessLimitError, ConnectionClosed)
        refusal = None
        try:
            if not lan:
                check_peer(peer, peer.peer_id)
            from tagio.crypto.handshake import host_handshake
            shake = functools.partial(host_handshake, secrets=self._keys(resume),
                                      viewer_id=peer.peer_id, host_id=self.client.id,
                                      session_id=peer.session_id, timeout=HANDSHAKE_TIMEOUT,
                                      guesses=SuccessAfterProof(tally))
            relay = None if lan else self.client.current_relay()
            if relay is None and not lan:
                raise TransportTimeout("relay connection lost before the partner arrived")
            channel = establish_channel(peer, relay, lambda stream: shake(viewer_refusals(stream)),
                                        listener=self.client.listener, timeout=HANDSHAKE_TIMEOUT)
            refusal = self._prove(peer, channel)
            if refusal is not None:
                return None, False
            tally.succeeded()           # password and ID: now it is mutual success
        except GuessLimitError as exc:
            self.client.emit("refused", peer_id=peer.peer_id, reason="too many wrong passwords",
                             detail=str(exc))
            return None, False
        except WrongPasswordError:     # reported with every other failed guess in `finally`
            return None, False
        except TagioError as exc:
            self.client.emit("attempt_failed", peer_id=peer.peer_id, reason=str(exc), error=exc)
            return None, False
        finally:
            self._report_guesses(peer.peer_id, tally.close(), refusal)
        if channel.password_kind is Kind.RESUME:
            return channel, RESUMED
        return channel, used_permanent(channel)

    def _prove(self, peer, channel):
        """The viewer proves its ID, then we prove ours (proving.py). None when it did; else the
        IdentityError or VersionMismatch that refused it (the viewer was told why, the channel is
        closed). Other failures (it left, it fell silent) raise TagioError."""
        try:
            key = check_viewer(channel, self.client.identity, peer.peer_id)
        except (IdentityError, VersionMismatch) as exc:
            log.warning("refused desk %s: %s", format_id(peer.peer_id), exc)
            return exc
        log.info("desk %s proved its ID (key %s)", format_id(peer.peer_id), fingerprint(key))
        self.client.emit("verified", peer_id=peer.peer_id, key=fingerprint(key))
        return None

    def _report_guesses(self, peer_id, failures, refusal=None):
        """Tell the host's user of every failed guess (hang-ups and timeouts included), or of the
        refused identity proof that failed it, and replace the one-time password once it has had
        its tries."""
        if refusal is not None:
            reason = str(refusal) if isinstance(refusal, VersionMismatch) else ID_NOT_PROVEN
            self.client.emit("refused", peer_id=peer_id, reason=reason, detail=str(refusal))
        for failure in failures:
            if refusal is None:
                self.client.emit("auth_failed", peer_id=peer_id, tries_left=failure.tries_left,
                                 failures=failure.failures_in_window,
                                 next_guess_in=round(failure.next_guess_in),
                                 password_replaced=failure.rotate_password)
            if failure.rotate_password:
                self.new_password()

    def _introduce(self, peer_id, admission):
        """Exchange desk names with the viewer (before asking, so the prompt can show its name);
        the viewer's name, or None after telling the UI why the attempt failed."""
        try:
            return admission.introduce(self.client.settings.desk_name)
        except ConnectionClosed:         # the viewer cancelled (or closed) right after the handshake
            admission.channel.close()
            self.client.emit("refused", peer_id=peer_id, reason=CANCELLED)
        except TagioError as exc:
            admission.channel.close()
            self.client.emit("attempt_failed", peer_id=peer_id, reason=str(exc), error=exc)
        return None

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

    def _accepted(self, peer_id, used_permanent, admission, name=""):
        """The Rights this viewer gets, or None (declined, or it left). No prompt for a permanent
        password, with "ask before accepting" off, or for a desk the user always allows."""
        ask = self.client.settings.ask_before_accept
        if used_permanent or not ask or self.accept_callback is None:
            return ALL_RIGHTS
        trusted = self.client.settings.partners.trusted_rights(peer_id)
        if trusted is not None:
            return trusted
        try:
            answer = admission.ask(self.accept_callback, peer_id, name=name,
                                   files=bool(self.options.get("files_dir")))
        except TagioError:               # the viewer left before it heard we are asking
            admission.left.set()
            return None
        return granted_rights(answer)

    def _run_session(self, peer, channel, rights=None, name="", resumed=None):
        """Run a HostSession on `channel` until it ends; `resumed`: the ticket of the session it
        continues (its rights are kept)."""
        from tagio.session.host import HostSession
        options = (rights or ALL_RIGHTS).session_options(self.options) if resumed is None \
            else resumed.options
        said = {}                           # the viewer's goodbye, if it said one
        session = HostSession(channel, on_event=self._session_event(peer.peer_id, said), **options)
        session.peer_id = peer.peer_id      # whom it serves (the GUI's chat window finds it by this)
        with self._lock:
            self._sessions.append(session)
        path = channel.path
        reason = lost = started = None
        ticket = self.resume.issue(peer.peer_id, resume_secret(channel, peer.peer_id, self.client.id),
                                   options, session)
        try:
            if self._closing.is_set():
                say_bye(channel, "the partner is shutting down")
                return
            session.start()
            started = time.time()
            self.client.emit("session_started", peer_id=peer.peer_id, path=path, role="host",
                             desk_name=name, view_only=options["view_only"],
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
            # session.view_only: also when input injection could not load
            self._record(peer.peer_id, name, started, path, session.view_only)
            self.client.emit("session_ended", peer_id=peer.peer_id, role="host",
                             reason=reason or said.get("closed") or ENDED_HERE)

    def _record(self, peer_id, name, started, path, view_only):
        """A session that started goes into the host's history (client/history.py)."""
        if started is None:
            return
        self.client.settings.history.record(peer_id, started, time.time() - started, path,
                                            view_only, name)

    def _session_event(self, peer_id, said=None):
        """The HostSession's events, as host_* events of the Client; the reason of its "closed"
        (the viewer's goodbye) is kept in `said` for session_ended."""
        def forward(name, **fields):
            if name == "closed" and said is not None:
                said.setdefault("closed", fields.get("reason"))
            self.client.emit("host_" + name, peer_id=peer_id, **fields)
        return forward

    # ------------------------------------------------------------------ helpers

    def _keep(self, exc):
        with self._lock:
            self._errors.append(exc)

    def _snapshot(self, items):
        with self._lock:
            return list(items)


class SuccessAfterProof:
    """The host handshake's `guesses` hook for one session, with its success held back: the PAKE
    alone is no longer mutual success, the viewer's proof of its ID completes it (the caller then
    calls the tally's succeeded() itself)."""

    def __init__(self, tally):
        self.start = tally.start

    def succeeded(self):
        pass


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


def viewer_refusals(stream):
    """The host's side of a path: on the relay path a viewer that stopped before its handshake
    (a changed key) says so where its HELLO would be (refusal.tell_host), and its PartnerRefused
    ends our race at once. Other paths are read as they are: only the relay token's holder can
    speak on the relay path."""
    return RefusalAware(stream) if getattr(stream, "path", None) == "relay" else stream


def granted_rights(answer):
    """The accept callback's answer -> Rights, or None when declined. A front end answers True
    (everything the settings allow) or the Rights the user ticked."""
    if isinstance(answer, Rights):
        return answer
    return ALL_RIGHTS if answer is True else None


def used_permanent(channel) -> bool:
    """True when the permanent password (not the one-time one) opened the channel."""
    return channel.matched_secret == 1   # set by crypto.handshake.host_handshake


def start_otp_expiry(hosting) -> threading.Thread:
    """A thread that replaces the one-time password once `otp_expired` says so; it ends with
    hosting.stop(). It notes when each password was first seen, so no other code has to."""
    def run():
        shown, since = None, hosting.otp_clock()
        try:
            while not hosting._closing.wait(OTP_EXPIRY_POLL):
                now, otp = hosting.otp_clock(), hosting.one_time_password
                if otp != shown:
                    shown, since = otp, now
                elif otp_expired(since, now, bool(hosting.sessions), hosting.otp_lifetime):
                    hosting.new_password()
        except Exception as exc:        # a bug: kept for Client.close(), never silent
            log.exception("one-time password expiry failed")
            hosting._keep(exc)
    thread = threading.Thread(target=run, name="otp-expiry", daemon=True)
    thread.start()
    return thread
