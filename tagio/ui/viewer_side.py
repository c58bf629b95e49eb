"""The controller's viewer side: the connect flow, the session window, and bringing a session back.

Theory of operation: `ViewerSide` is the part of the controller (app.py) that runs this desk as a
viewer. It drives the App's HomeMachine (model.py), which says what the home window may do next:

    IDLE -> CONNECT_CLICKED: the partner's ID is checked (known, online) in a worker ->
    ASKING_PASSWORD: PasswordDialog -> CONNECTING: `_connect_worker` [-> WAITING while the
    partner's user is asked] -> IN_SESSION: a ViewerWindow -> IDLE when the window closes or the
    partner goes. Any error shows one MessageDialog; dismissing it is IDLE again. Cancel
    (CONNECTING or WAITING) returns to IDLE at once: the connect's `cancelled` Event tells the
    core, and the worker's late result, tagged with that Event, is dropped (its session stopped).

Nothing here blocks the Tk thread: the connect, stopping a session (Bye, then joining its threads)
and saving the window's remembered view run in the App's tracked workers, which post their results
("connect_done", "connect_failed", "viewer_stopped", ...) to the App's EventBridge; the App's poll
dispatches them here through HANDLERS and calls `check()` on every tick, which notices a session
window the user closed or a session whose threads ended.

Reconnect: a session that ends by itself while its window is open goes to `_reconnect_worker`:
when its path broke, the same window says "Connection lost - reconnecting..." while the core tries
the session's resumption secret (client/resume.py), and carries on with the new session when it
comes back; closing the window sets the attempt's stop Event; if it fails, it ends as above. The
window's view (size, zoom, monitor, quality, full screen) is remembered per partner when it closes
and restored when the next session with that partner opens.
"""

import logging
import threading

from tagio.client import words
from tagio.client.resume import come_back, lost_path, session_end_cause
from tagio.errors import ConfigError, ConnectionClosed, TagioError
from tagio.ui import model
from tagio.ui.keychange import accepted_key, failure_dialog
from tagio.ui.model import HomeEvent, HomeState
from tagio.ui.prompts import PasswordDialog
from tagio.ui.tkutil import destroy, exists

log = logging.getLogger("tagio.ui")

SESSION_STOP_TIMEOUT = 5.0
VIEWER_EVENTS = ()      # viewer events the home window handles (the session window shows the rest)


class ViewerSide:
    """`app` gives: root, settings, client, home, machine (HomeMachine), events (EventBridge), the
    dialog slot (`dialog`), _spawn and run_in_worker (tracked workers), _closing and _errors."""

    def __init__(self, app):
        self.app = app
        self.partner_id = None
        self._cancel = None         # the running connect's cancel Event
        self.accept_key = None      # (partner, key) the person chose to trust (ui/keychange.py)
        self.session = self.window = self.path = None
        self.partner, self.clipboard_sync = None, True
        self.connection = self.reconnecting = None   # reconnect: its connection; the running one's stop Event

    def active(self) -> bool:
        """True while a session window is open (or its session is being brought back)."""
        return self.session is not None or self.reconnecting is not None

    # --- the connect flow -----------------------------------------------------------------------

    def connect_clicked(self, text):
        app = self.app
        digits, problem = model.validate_partner_id(text, app.client.id)
        app.home.set_id_error(problem)
        if problem or not app.machine.can(HomeEvent.CONNECT_CLICKED):
            return
        app.machine.handle(HomeEvent.CONNECT_CLICKED)
        self.partner_id = digits
        # The ID is checked (known, online) before the password is asked, in a worker.
        app.home.set_busy(True, f"Checking {model.display_id(digits)}\u2026")
        app.run_in_worker(lambda: app.client.check_partner(digits), self._partner_checked)

    def _partner_checked(self, _partner, error):
        if self.app.machine.state is not HomeState.ASKING_PASSWORD:
            return                  # closing meanwhile
        if error is not None:
            return self.failed(error)
        self.app.home.set_busy(False)
        self.app.dialog = PasswordDialog(self.app.root, self.partner_id, self._password_given)

    def _password_given(self, password):
        app = self.app
        app.dialog = None
        if password is None:
            app.machine.handle(HomeEvent.PASSWORD_CANCELLED)
            app.home.set_busy(False)
            return
        app.machine.handle(HomeEvent.PASSWORD_GIVEN)
        app.home.set_busy(True, f"Connecting to {model.display_id(self.partner_id)}\u2026", cancellable=True)
        self._cancel = threading.Event()
        accept, self.accept_key = accepted_key(self.accept_key, self.partner_id), None
        app._spawn(self._connect_worker, self.partner_id, password, self._cancel, accept, name="connect")

    def cancel_clicked(self):
        """Cancel while connecting or waiting for the partner: home at once; the worker's late
        result is dropped (its session stopped), and the partner's prompt closes."""
        app = self.app
        if not app.machine.can(HomeEvent.CANCEL_CLICKED):
            return
        self._cancel.set()
        app.machine.handle(HomeEvent.CANCEL_CLICKED)
        app.home.set_busy(False)
        app.home.set_notice(words.CANCELLED_BY_YOU)
        app.home.partner_entry.focus_set()     # not on the Cancel button that just went away

    def _connect_worker(self, partner_id, password, cancel, accept_key=None):
        """Worker thread: authenticate, open and start the viewer session, report back."""
        events = self.app.events
        try:
            connection = self.app.client.connect(
                partner_id, password, cancelled=cancel,
                on_waiting=lambda: events.post("connect_waiting", cancel=cancel),
                **({"accept_new_key": accept_key} if accept_key else {}))
            session = _start_viewer(connection, self._viewer_event)
        except (TagioError, OSError) as exc:
            events.post("connect_failed", error=exc, cancel=cancel)
            return
        if cancel.is_set() or not events.post("connect_done", connection=connection,
                                              session=session, cancel=cancel):
            session.stop()          # cancelled, or the app closed: nobody will show it

    def _current(self, cancel) -> bool:
        """The event comes from the connect still shown (not one that was cancelled)."""
        return cancel is None or (cancel is self._cancel and not cancel.is_set())

    def on_connect_waiting(self, cancel=None):
        machine = self.app.machine
        if self._current(cancel) and machine.can(HomeEvent.WAITING):
            machine.handle(HomeEvent.WAITING)
            self.app.home.set_busy(True, words.WAITING.replace("...", "\u2026"), cancellable=True)

    def _viewer_event(self, name, **fields):
        if name in VIEWER_EVENTS:   # the rest (size, closed...) the session window shows itself
            self.app.events.post("viewer_" + name, **fields)

    def on_connect_failed(self, error, cancel=None):
        if self._current(cancel):
            self.failed(error)

    def on_worker_failed(self, error):
        if self.app.machine.state in (HomeState.CONNECTING, HomeState.WAITING):
            self.failed(error)

    def failed(self, error):
        """One MessageDialog saying what went wrong; dismissing it is home again."""
        app = self.app
        title, message = model.error_message(error, self.partner_id or "")
        if app.machine.can(HomeEvent.FAILED):
            app.machine.handle(HomeEvent.FAILED)
        app.home.set_busy(False)
        app.dialog = failure_dialog(app.root, error, title, message, self._error_dismissed, self._trust_key)

    def _trust_key(self, error):
        """ "Trust the new key": connect again (ID check, password), accepting exactly that key."""
        self.accept_key = (error.partner_id, error.offered)
        self.connect_clicked(error.partner_id)

    def _error_dismissed(self):
        app = self.app
        app.dialog = None
        if app.machine.can(HomeEvent.ERROR_DISMISSED):
            app.machine.handle(HomeEvent.ERROR_DISMISSED)
        app.home.set_busy(False)
        app.home.partner_entry.focus_set()

    # --- the session window ---------------------------------------------------------------------

    def on_connect_done(self, connection, session, cancel=None):
        app = self.app
        if not self._current(cancel):
            app._spawn(session.stop, name="stop-cancelled")
            return
        self.session, self.path, self.connection = session, connection.path, connection
        app.machine.handle(HomeEvent.CONNECTED)
        pid = model.display_id(connection.peer_id)
        app.home.set_busy(True, f"In session with {pid} ({connection.path})")
        try:
            self.window = self._open_window(connection, session, pid)
        except Exception as exc:
            log.exception("cannot open the session window")
            self.stop(user_closed=True)
            app._errors.append(exc)
            self.failed(exc)

    def _open_window(self, connection, session, shown_id):
        """The session window, with the view remembered for this partner (size and position,
        zoom, monitor, quality, full screen); _take remembers it again when it closes."""
        from tagio.ui.viewer_window import ViewerWindow
        settings = self.app.settings
        self.partner = connection.peer_id
        known = settings.partners.get(connection.peer_id)
        name = known.shown_name if known else getattr(connection, "peer_name", "")
        title = f"{name} ({shown_id})" if name else shown_id
        window = ViewerWindow(self.app.root, session, f"{title} \u2014 TagIO",
                              prefs=settings.partner_views.get(connection.peer_id),
                              set_clipboard_sync=self.set_clipboard_sync, peer_ip=_peer_ip(connection),
                              partner=shown_id)
        if not self.clipboard_sync:         # switched off in an earlier session of this run
            window.set_clipboard_sync(False)
        return window

    def set_clipboard_sync(self, on):
        """The session window's "Clipboard" switch (the window has switched the session's
        ClipboardLink already): the next session window of this run starts the same way."""
        self.clipboard_sync = bool(on)

    def _remember_view(self, window):
        """Keep the closed session window's view for its partner and save it: in a worker, or
        here when the app is quitting (no worker runs any more; the file is a few hundred bytes)."""
        prefs, partner, settings = window.final_prefs, self.partner, self.app.settings
        if not prefs or not partner:
            return
        settings.remember_view(partner, prefs)
        if self.app._closing.is_set():
            _save_quietly(settings)
        else:
            self.app.run_in_worker(settings.save, lambda _result, _error: None)

    def check(self):
        """The session window was closed, or the session's threads ended: close the window
        and stop the session in a worker (saying Bye and joining its threads can take
        seconds on a slow path: not on the Tk thread); "viewer_stopped" brings us home."""
        if self.reconnecting is not None:
            if self.window is None or not exists(self.window):
                self.reconnecting.set()        # closed while reconnecting: stop trying
            return
        if self.app.machine.state is not HomeState.IN_SESSION or self.session is None:
            return      # no session, or one already being stopped
        window_gone = self.window is not None and not exists(self.window)
        if not window_gone and not _session_done(self.session):
            return
        if not window_gone and self.connection is not None:
            session, self.session, self.reconnecting = self.session, None, threading.Event()
            self.app._spawn(self._reconnect_worker, session, self.connection, self.reconnecting,
                            name="reconnect")
            return
        session = self._take()
        self.app._spawn(self._stop_worker, session, window_gone, name="stop-viewer")

    def _stop_worker(self, session, user_closed):
        self.app.events.post("viewer_stopped", error=_stop_session(session, user_closed))

    def on_stopped(self, error):
        if error is not None:
            self.failed(error)
        elif self.app.machine.can(HomeEvent.SESSION_ENDED):
            self.app.machine.handle(HomeEvent.SESSION_ENDED)
            self.app.home.set_busy(False)

    def _take(self):
        """Forget the viewer session and close its window (Tk thread); returns the session."""
        session, window = self.session, self.window
        self.session = self.window = self.connection = None
        if self.reconnecting is not None:
            self.reconnecting.set()
        if window is not None and exists(window):
            destroy(window)
        if window is not None:
            self._remember_view(window)
        return session

    def stop(self, user_closed):
        """Stop the viewer session and close its window, waiting for it (closing, or a window
        that could not open).  Returns what to tell the user, as _stop_session."""
        return _stop_session(self._take(), user_closed)

    # --- reconnect ------------------------------------------------------------------------------

    def _reconnect_worker(self, session, connection, stop):
        """Worker: the session ended by itself. A broken path is brought back (the window says so
        meanwhile); any other ending, or a reconnect that fails, ends as before."""
        events = self.app.events
        cause = session_end_cause(session, SESSION_STOP_TIMEOUT)
        ended = cause or ConnectionClosed(session.closed_reason or "the partner ended the session")
        if not lost_path(cause) or not connection.resume_secret:
            return events.post("reconnect_failed", error=ended, stop=stop)
        events.post("viewer_reconnecting", stop=stop)
        try:
            again = come_back(self.app.client, connection, stop=stop)
            new = _start_viewer(again, self._viewer_event)
        except (TagioError, OSError) as exc:
            log.info("reconnect failed: %s", exc)
            return events.post("reconnect_failed", error=ended, stop=stop)
        if stop.is_set() or not events.post("viewer_resumed", connection=again, session=new, stop=stop):
            new.stop()          # the window closed meanwhile: nobody will show it

    def on_reconnecting(self, stop):
        if stop is self.reconnecting and self.window is not None:
            self.window.show_reconnecting()
            self.app.home.set_busy(True, words.RECONNECTING.replace("...", "\u2026"))

    def on_resumed(self, connection, session, stop):
        window = self.window
        if stop is not self.reconnecting or stop.is_set() or window is None or not exists(window):
            self.app._spawn(session.stop, name="stop-late-resume")
            return
        self.reconnecting = None
        self.session, self.path, self.connection = session, connection.path, connection
        window.resume_with(session, peer_ip=_peer_ip(connection))
        self.app.home.set_busy(True, f"In session with {model.display_id(connection.peer_id)} ({connection.path})")

    def on_reconnect_failed(self, error, stop):
        if stop is not self.reconnecting:
            return
        self.reconnecting, user_closed = None, stop.is_set()   # set: the user closed the window
        self._take()
        self.on_stopped(None if user_closed else error)


# event name -> handler(viewer_side, **fields), dispatched by the App's poll
HANDLERS = {
    "connect_done": ViewerSide.on_connect_done,
    "connect_failed": ViewerSide.on_connect_failed,
    "connect_waiting": ViewerSide.on_connect_waiting,
    "worker_failed": ViewerSide.on_worker_failed,
    "viewer_stopped": ViewerSide.on_stopped,
    "viewer_reconnecting": ViewerSide.on_reconnecting,
    "viewer_resumed": ViewerSide.on_resumed,
    "reconnect_failed": ViewerSide.on_reconnect_failed,
}


def _start_viewer(connection, on_event):
    """Open and start the ViewerSession on a fresh connection.  If that fails the channel is
    closed here (else the partner's host session would wait on a path nobody reads)."""
    try:
        session = connection.open_session(on_event=on_event, clipboard=True)   # shared by the session
        session.start()
    except BaseException:
        try:
            connection.channel.close()
        except Exception:   # the start failure below is what the user must hear about
            log.debug("closing the channel failed", exc_info=True)
        raise
    return session


def _stop_session(session, user_closed):
    """Stop a viewer session (any thread; blocks up to seconds).  Returns what to tell the
    user: None when they closed it themselves, else the error that ended it (partner gone)."""
    if session is None:
        return None
    try:
        session.stop()
        session.join(SESSION_STOP_TIMEOUT)
    except TagioError as exc:
        return None if user_closed else exc
    if user_closed:
        return None
    return ConnectionClosed(session.closed_reason or "the partner ended the session")


def _peer_ip(connection):
    """The partner's IP address when the session runs over a TCP socket (to tell LAN from
    direct in the status line), else None."""
    from tagio.net.stream import SocketStream
    stream = connection.channel.stream
    if not isinstance(stream, SocketStream):
        return None
    try:
        return stream.sock.getpeername()[0]
    except OSError:
        return None


def _save_quietly(settings):
    try:
        settings.save()
    except ConfigError:
        log.debug("cannot save the session window's view", exc_info=True)


def _session_done(session) -> bool:
    """True once the session's threads have stopped (ViewerSession.running went False)."""
    return session is not None and not session.running
