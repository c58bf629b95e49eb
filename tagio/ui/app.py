"""The TagIO client application: ties the client core (tagio.client.core.Client) to Tk.

Theory of operation: `App` is the controller.  It owns the Tk root, the HomeWindow view,
a HomeMachine (model.py) that says what the home window may do next, and one Client.

Threads: only the Tk main thread touches widgets.  The Client calls `on_event` and
`accept_callback` from its worker threads; both go through bridge.EventBridge, a bounded
queue that `_poll()` drains every POLL_MS from `after()` and dispatches through the
HANDLERS table (idlelib's poll_subprocess pattern).  A connect runs in a worker thread
(`_connect_worker`), which posts "connect_done" or "connect_failed" back; so does anything
else that may take more than a blink (scrypt for a new password or for the Settings
dialog's permanent password, stopping a viewer session, making a Client for a new relay),
posting its result as an event ("work_done" carries run_in_worker's callback).  Every worker is
a tracked thread that close() joins; an unexpected exception in one is kept and re-raised
by close() (after the user has seen a message).

Viewer flow:   IDLE -> password dialog -> CONNECTING (worker) [-> WAITING while the partner's
               user is asked] -> IN_SESSION (ViewerWindow) -> back to IDLE when the window
               closes or the partner goes; any error shows one MessageDialog and returning
               from it is IDLE again. Cancel (CONNECTING or WAITING) returns to IDLE at once:
               the connect's `cancelled` Event tells the core, whose late result is dropped.
Reconnect:     a viewer session that ends by itself goes to `_reconnect_worker`: when its path
               broke, the same session window says "Connection lost - reconnecting..." while the
               core tries the session's resumption secret (client/resume.py), and shows the new
               session when it comes back; closing the window stops it; if it fails, as above.
Host flow:     core "incoming" -> (accept prompt, if the core asks) -> "session_started"
               shows the always-on-top ControlledIndicator; its Disconnect ends the session.
Partners:      the home window's address book (rows, online dots, rename, remove, the host's
               history) is driven by ui/address_book.py, called from the same poll.
Quitting:      the window's close box quits at once when no session is active; while this
               machine is controlled or a viewer session is open it first asks (ConfirmDialog)
               and quits only on Yes.  SIGTERM and Ctrl+C close without asking.
"""

import logging
import os
import signal
import sys
import threading

from tagio import __version__
from tagio.client import words
from tagio.client.admission import CANCELLED
from tagio.client.resume import come_back, lost_path, session_end_cause
from tagio.errors import ConfigError, ConnectionClosed, TagioError
from tagio.platform import WINDOWS
from tagio.ui.firstrun import show_firewall_notice
from tagio.ui import model, theme
from tagio.ui.bridge import AcceptBridge, EventBridge
from tagio.ui.chat_panel import HostChats
from tagio.ui.home import HomeWindow
from tagio.ui.keychange import accepted_key, failure_dialog
from tagio.ui.model import HomeEvent, HomeState
from tagio.ui.address_book import AddressBook
from tagio.ui.prompts import (AboutDialog, AcceptPrompt, ConfirmDialog, ControlledIndicator, MessageDialog,
                              PasswordDialog)

log = logging.getLogger("tagio.ui")

POLL_MS = 100
JOIN_TIMEOUT = 25.0
SESSION_STOP_TIMEOUT = 5.0
COPIED_FEEDBACK_MS = 1500
VIEWER_EVENTS = ()      # viewer events the home window handles (the session window shows the rest)


class App:
    """The controller.  `client_factory(settings=, accept_callback=, on_event=)` makes a Client."""

    def __init__(self, root, client_factory, settings):
        self.root, self.settings, self._client_factory = root, settings, client_factory
        self.fonts = theme.apply(root)
        self.icon = theme.app_icon(root)
        self.events = EventBridge()
        self.accepts = AcceptBridge(self.events, settings)
        self.machine = model.HomeMachine()
        self._closing = threading.Event()
        self._workers, self._errors = [], []
        self._poll_id = None
        self._feedback_ids = {}     # button -> its pending "Copied" reset, cancelled by close()
        self.partner_id = None
        self._cancel = None         # the running connect's cancel Event
        self.accept_key = None      # (partner, key) the person chose to trust (ui/keychange.py)
        self.viewer = self.viewer_window = self.viewer_path = None
        self.viewer_partner, self.clipboard_sync = None, True
        self.viewer_connection = self._reconnecting = None   # reconnect: its connection; the running one's stop Event
        self.indicators, self.prompts = {}, {}
        self.dialog = self.quit_prompt = None
        self.address_book = AddressBook(self)
        root.title("TagIO")
        root.minsize(720, 420)
        root.protocol("WM_DELETE_WINDOW", self.close_clicked)
        root.report_callback_exception = self._report_callback_exception
        self.home = HomeWindow(root, self.fonts, self._callbacks())
        self.home.pack(fill="both", expand=True)
        self.chats = HostChats(root, self._host_session, self.home.set_notice, model.display_id)
        self.client = self._make_client()

    def _callbacks(self):
        return {"connect": self.connect_clicked, "copy_id": self.copy_id, "copy_password": self.copy_password,
                "new_password": self.new_password, "settings": self.open_settings, "about": self.open_about,
                "pick": self.connect_clicked, "cancel": self.cancel_clicked,
                "retry": self.retry_relay, **self.address_book.callbacks()}

    def _make_client(self):
        return self._client_factory(settings=self.settings, accept_callback=self.accepts.ask,
                                    on_event=self.events.post)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self):
        """Start the core (it registers at the relay in its own thread) and the poll loop."""
        show_firewall_notice(self.home, self.settings, WINDOWS)   # before the listener: Windows asks then
        self.client.start()
        self.refresh()
        self.home.partner_entry.focus_set()     # ready to type a partner ID, as AnyDesk is
        warning = self.settings.warning or self.settings.partners.warning
        if warning:
            self.home.set_notice(warning)
        self._poll_id = self.root.after(POLL_MS, self._poll)
        return self

    def run(self):
        """Start, run the Tk main loop until the window closes, then re-raise a kept error."""
        self.start()
        self.root.mainloop()
        self.close()

    def close(self, raise_errors=True):
        """Stop polling, deny pending prompts, close the core and join our workers.
        Re-raises the first unexpected exception that ended one of our threads (when asked;
        the window's close button cannot raise into Tk, so run() re-raises after the loop)."""
        if self._closing.is_set():
            if raise_errors and self._errors:
                raise self._errors[0]
            return
        self._closing.set()
        try:
            self.root.withdraw()      # look closed at once; the core may take seconds to stop
        except Exception:             # the window is already gone
            pass
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)
            self._poll_id = None
        for after_id in self._feedback_ids.values():
            self.root.after_cancel(after_id)
        self.accepts.close()
        self.events.close()
        self._stop_viewer(user_closed=True)
        try:
            self.client.close()
        except Exception as exc:      # kept and re-raised below, after everything is shut
            self._errors.append(exc)
        for thread in list(self._workers):
            thread.join(JOIN_TIMEOUT)
        try:
            self.root.destroy()
        except Exception:   # already gone (window manager closed it); nothing to clean
            pass
        if raise_errors and self._errors:
            raise self._errors[0]

    def session_active(self) -> bool:
        """True while this machine is being controlled or a viewer session is open."""
        return bool(self.indicators) or self.viewer is not None or self._reconnecting is not None

    def close_clicked(self):
        """The window's close box: quit, after asking if that would end a session."""
        if self._closing.is_set():
            return
        if not self.session_active():
            self.close(raise_errors=False)
            return
        if self.quit_prompt is not None and _exists(self.quit_prompt):
            self.quit_prompt.lift()
            return
        self.quit_prompt = ConfirmDialog(self.root, "Quit TagIO", "End the session(s) and quit?",
                                         self._quit_answered)

    def _quit_answered(self, yes):
        self.quit_prompt = None
        if yes:
            self.close(raise_errors=False)

    # --- the poll loop (Tk thread) ------------------------------------------------------------

    def _poll(self):
        self._poll_id = None
        if self._closing.is_set():
            return
        try:
            for name, fields in self.events.drain():
                handler = HANDLERS.get(name)
                if handler is not None:
                    self._guarded(handler, self, **fields)
            self._check_viewer()
            self._close_withdrawn_prompts()
            self.address_book.poll()
            self.refresh()
        finally:
            if not self._closing.is_set():
                self._poll_id = self.root.after(POLL_MS, self._poll)

    def _guarded(self, function, *args, **kwargs):
        """Run one event handler; a bug in it is kept for close() and shown, not fatal to the poll."""
        try:
            function(*args, **kwargs)
        except Exception as exc:
            self._report_callback_exception(type(exc), exc, exc.__traceback__)

    def _report_callback_exception(self, exc_type, exc, tb):
        """Tk's hook for an exception in a callback: keep it, log it, tell the user in one line."""
        log.debug("callback failed", exc_info=(exc_type, exc, tb))
        self._errors.append(exc)
        if not self._closing.is_set():
            title, message = model.error_message(exc)
            MessageDialog(self.root, title, message)

    def refresh(self):
        """Copy what the core shows (ID, password, relay status, lists) into the home window."""
        client = self.client
        self.home.set_identity(model.display_id(client.id), client.one_time_password)
        address = client.relay_address
        address_text = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address or "")
        lan = client.lan_peers
        retry_in = client.relay_retry_in
        self.home.set_relay_status(*model.relay_status_text(client.relay_status, address_text,
                                                            lan is not None, retry_in))
        self.home.set_retry(retry_in is not None or client.relay_waits_for_user)
        self.address_book.refresh()
        self.home.set_lan(model.lan_rows(lan) if lan is not None else None)

    def _spawn(self, target, *args, name):
        """Run `target` in a tracked worker; a non-TagIO exception is kept for close()."""
        def run():
            try:
                target(*args)
            except Exception as exc:
                log.exception("worker %s failed", name)
                self._errors.append(exc)
                self.events.post("worker_failed", error=exc)
        thread = threading.Thread(target=run, name=name, daemon=True)
        self._workers = [t for t in self._workers if t.is_alive()] + [thread]
        thread.start()
        return thread

    def run_in_worker(self, work, done):
        """Run `work()` in a tracked worker; `done(result, error)` is then called on the Tk
        thread (error: the exception work raised, else None).  A non-TagIO exception is also
        kept for close().  Nothing is called back once the app is closing."""
        def job():
            try:
                result, error = work(), None
            except Exception as exc:
                if not isinstance(exc, TagioError):
                    log.debug("worker job failed", exc_info=True)
                    self._errors.append(exc)
                result, error = None, exc
            self.events.post("work_done", done=done, result=result, error=error)
        return self._spawn(job, name="work")

    def _on_work_done(self, done, result, error):
        done(result, error)

    # --- home actions -------------------------------------------------------------------------

    def connect_clicked(self, text):
        digits, problem = model.validate_partner_id(text, self.client.id)
        self.home.set_id_error(problem)
        if problem or not self.machine.can(HomeEvent.CONNECT_CLICKED):
            return
        self.machine.handle(HomeEvent.CONNECT_CLICKED)
        self.partner_id = digits
        # The ID is checked (known, online) before the password is asked, in a worker.
        self.home.set_busy(True, f"Checking {model.display_id(digits)}\u2026")
        self.run_in_worker(lambda: self.client.check_partner(digits), self._partner_checked)

    def _partner_checked(self, _partner, error):
        if self.machine.state is not HomeState.ASKING_PASSWORD:
            return                  # closing meanwhile
        if error is not None:
            return self._on_failed(error)
        self.home.set_busy(False)
        self.dialog = PasswordDialog(self.root, self.partner_id, self._password_given)

    def _password_given(self, password):
        self.dialog = None
        if password is None:
            self.machine.handle(HomeEvent.PASSWORD_CANCELLED)
            self.home.set_busy(False)
            return
        self.machine.handle(HomeEvent.PASSWORD_GIVEN)
        self.home.set_busy(True, f"Connecting to {model.display_id(self.partner_id)}\u2026",
                           cancellable=True)
        self._cancel = threading.Event()
        accept, self.accept_key = accepted_key(self.accept_key, self.partner_id), None
        self._spawn(self._connect_worker, self.partner_id, password, self._cancel, accept, name="connect")

    def cancel_clicked(self):
        """Cancel while connecting or waiting for the partner: home at once; the worker's late
        result is dropped (its session stopped), and the partner's prompt closes."""
        if not self.machine.can(HomeEvent.CANCEL_CLICKED):
            return
        self._cancel.set()
        self.machine.handle(HomeEvent.CANCEL_CLICKED)
        self.home.set_busy(False)
        self.home.set_notice(words.CANCELLED_BY_YOU)
        self.home.partner_entry.focus_set()     # not on the Cancel button that just went away

    def _connect_worker(self, partner_id, password, cancel, accept_key=None):
        """Worker thread: authenticate, open and start the viewer session, report back."""
        try:
            connection = self.client.connect(
                partner_id, password, cancelled=cancel,
                on_waiting=lambda: self.events.post("connect_waiting", cancel=cancel),
                **({"accept_new_key": accept_key} if accept_key else {}))
            session = _start_viewer(connection, self._viewer_event)
        except (TagioError, OSError) as exc:
            self.events.post("connect_failed", error=exc, cancel=cancel)
            return
        if cancel.is_set() or not self.events.post("connect_done", connection=connection,
                                                   session=session, cancel=cancel):
            session.stop()          # cancelled, or the app closed: nobody will show it

    def _current(self, cancel) -> bool:
        """The event comes from the connect still shown (not one that was cancelled)."""
        return cancel is None or (cancel is self._cancel and not cancel.is_set())

    def _on_connect_waiting(self, cancel=None):
        if self._current(cancel) and self.machine.can(HomeEvent.WAITING):
            self.machine.handle(HomeEvent.WAITING)
            self.home.set_busy(True, words.WAITING.replace("...", "\u2026"), cancellable=True)

    def _viewer_event(self, name, **fields):
        if name in VIEWER_EVENTS:   # the rest (size, closed...) the session window shows itself
            self.events.post("viewer_" + name, **fields)

    def retry_relay(self):
        """ "Retry now": the relay link stops waiting (it never blocks: it only sets an Event)."""
        self.client.retry_relay()

    def copy_id(self):
        self._copy(self.client.id, self.home.copy_id_button)

    def copy_password(self):
        self._copy(self.client.one_time_password or "", self.home.copy_password_button)

    def _copy(self, text, button):
        self.root.clipboard_clear()
        self.root.clipboard_append(text)
        button.configure(text="Copied \u2713")
        self._feedback_ids[button] = self.root.after(
            COPIED_FEEDBACK_MS, lambda: button.winfo_exists() and button.configure(text="Copy"))

    def new_password(self):
        # The password's secret is scrypt (tens of ms, more on slow machines): a worker makes
        # it, and the poll's refresh() shows the new password once it exists.
        self._spawn(self.client.new_password, name="new-password")

    def _dialog_open(self) -> bool:
        """One dialog at a time: a second click brings the open one to the front instead."""
        if self.dialog is not None and _exists(self.dialog):
            self.dialog.lift()
            return True
        return False

    def open_settings(self):
        from tagio.ui.settings_dialog import SettingsDialog
        if self._dialog_open():
            return
        before = (self.settings.relay, self.settings.relay_secret)
        self.dialog = SettingsDialog(self.root, self.settings, self.client.id,
                                     on_saved=lambda settings: self._settings_saved(settings, before),
                                     derive_secret=self.derive_permanent_secret)

    def derive_permanent_secret(self, password, done):
        """The Settings dialog's new permanent password -> its stored SPAKE2+ verifier (scrypt, tens
        of ms) in a worker; done(verifier, error) is called on the Tk thread."""
        from tagio.crypto import kdf
        host_id = self.client.id
        self.run_in_worker(lambda: kdf.permanent_verifier(password, host_id), done)

    def _settings_saved(self, settings, relay_before):
        self.dialog = None
        self.home.set_notice("Settings saved.")
        if (settings.relay, settings.relay_secret) != relay_before:
            self._restart_client()      # --relay / TAGIO_RELAY still win over the file, as at start
            return
        # the next incoming session uses the new values
        from tagio.client.core import host_files_dir
        self.client.host_options.update(view_only=settings.view_only, fps_cap=settings.fps_cap,
                                        quality=settings.quality, clipboard=settings.clipboard,
                                        files_dir=host_files_dir(settings))

    def _restart_client(self):
        """A new relay (or secret) needs a new registration: a fresh Client.  Making one derives
        its one-time password's secret (scrypt) and opens sockets, so a worker makes and starts
        it; "client_ready" swaps it in on the Tk thread."""
        self._spawn(self._new_client_worker, name="restart-client")

    def _new_client_worker(self):
        client = self._make_client()
        client.start()
        if not self.events.post("client_ready", client=client):
            client.close()          # the app closed meanwhile: nobody will use it

    def _on_client_ready(self, client):
        old, self.client = self.client, client
        self._spawn(old.close, name="close-old-client")

    def open_about(self):
        if not self._dialog_open():
            self.dialog = AboutDialog(self.root, __version__)

    # --- viewer session -------------------------------------------------------------------------

    def _on_connect_done(self, connection, session, cancel=None):
        if not self._current(cancel):
            self._spawn(session.stop, name="stop-cancelled")
            return
        self.viewer, self.viewer_path, self.viewer_connection = session, connection.path, connection
        self.machine.handle(HomeEvent.CONNECTED)
        pid = model.display_id(connection.peer_id)
        self.home.set_busy(True, f"In session with {pid} ({connection.path})")
        try:
            self.viewer_window = self._open_viewer_window(connection, session, pid)
        except Exception as exc:
            log.exception("cannot open the session window")
            self._stop_viewer(user_closed=True)
            self._errors.append(exc)
            self._on_failed(exc)

    def _open_viewer_window(self, connection, session, shown_id):
        """The session window, with the view remembered for this partner (size and position,
        zoom, monitor, quality, full screen); _take_viewer remembers it again when it closes."""
        from tagio.ui.viewer_window import ViewerWindow
        self.viewer_partner = connection.peer_id
        known = self.settings.partners.get(connection.peer_id)
        name = known.shown_name if known else getattr(connection, "peer_name", "")
        title = f"{name} ({shown_id})" if name else shown_id
        window = ViewerWindow(self.root, session, f"{title} \u2014 TagIO",
                              prefs=self.settings.partner_views.get(connection.peer_id),
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
        prefs, partner = window.final_prefs, self.viewer_partner
        if not prefs or not partner:
            return
        self.settings.remember_view(partner, prefs)
        if self._closing.is_set():
            _save_quietly(self.settings)
        else:
            self.run_in_worker(self.settings.save, lambda _result, _error: None)

    def _on_connect_failed(self, error, cancel=None):
        if self._current(cancel):
            self._on_failed(error)

    def _on_failed(self, error):
        title, message = model.error_message(error, self.partner_id or "")
        if self.machine.can(HomeEvent.FAILED):
            self.machine.handle(HomeEvent.FAILED)
        self.home.set_busy(False)
        self.dialog = failure_dialog(self.root, error, title, message, self._error_dismissed, self._trust_key)

    def _trust_key(self, error):
        """ "Trust the new key": connect again (ID check, password), accepting exactly that key."""
        self.accept_key = (error.partner_id, error.offered)
        self.connect_clicked(error.partner_id)

    def _error_dismissed(self):
        self.dialog = None
        if self.machine.can(HomeEvent.ERROR_DISMISSED):
            self.machine.handle(HomeEvent.ERROR_DISMISSED)
        self.home.set_busy(False)
        self.home.partner_entry.focus_set()

    def _check_viewer(self):
        """The session window was closed, or the session's threads ended: close the window
        and stop the session in a worker (saying Bye and joining its threads can take
        seconds on a slow path: not on the Tk thread); "viewer_stopped" brings us home."""
        if self._reconnecting is not None:
            if self.viewer_window is None or not _exists(self.viewer_window):
                self._reconnecting.set()        # closed while reconnecting: stop trying
            return
        if self.machine.state is not HomeState.IN_SESSION or self.viewer is None:
            return      # no session, or one already being stopped
        window_gone = self.viewer_window is not None and not _exists(self.viewer_window)
        if not window_gone and not _session_done(self.viewer):
            return
        if not window_gone and self.viewer_connection is not None:
            session, self.viewer, self._reconnecting = self.viewer, None, threading.Event()
            self._spawn(self._reconnect_worker, session, self.viewer_connection, self._reconnecting,
                        name="reconnect")
            return
        session = self._take_viewer()
        self._spawn(self._stop_viewer_worker, session, window_gone, name="stop-viewer")

    def _stop_viewer_worker(self, session, user_closed):
        self.events.post("viewer_stopped", error=_stop_session(session, user_closed))

    def _reconnect_worker(self, session, connection, stop):
        """Worker: the session ended by itself. A broken path is brought back (the window says so
        meanwhile); any other ending, or a reconnect that fails, ends as before."""
        cause = session_end_cause(session, SESSION_STOP_TIMEOUT)
        ended = cause or ConnectionClosed(session.closed_reason or "the partner ended the session")
        if not lost_path(cause) or not connection.resume_secret:
            return self.events.post("reconnect_failed", error=ended, stop=stop)
        self.events.post("viewer_reconnecting", stop=stop)
        try:
            again = come_back(self.client, connection, stop=stop)
            new = _start_viewer(again, self._viewer_event)
        except (TagioError, OSError) as exc:
            log.info("reconnect failed: %s", exc)
            return self.events.post("reconnect_failed", error=ended, stop=stop)
        if stop.is_set() or not self.events.post("viewer_resumed", connection=again, session=new, stop=stop):
            new.stop()          # the window closed meanwhile: nobody will show it

    def _on_viewer_reconnecting(self, stop):
        if stop is self._reconnecting and self.viewer_window is not None:
            self.viewer_window.show_reconnecting()
            self.home.set_busy(True, words.RECONNECTING.replace("...", "\u2026"))

    def _on_viewer_resumed(self, connection, session, stop):
        window = self.viewer_window
        if stop is not self._reconnecting or stop.is_set() or window is None or not _exists(window):
            self._spawn(session.stop, name="stop-late-resume")
            return
        self._reconnecting = None
        self.viewer, self.viewer_path, self.viewer_connection = session, connection.path, connection
        window.resume_with(session, peer_ip=_peer_ip(connection))
        self.home.set_busy(True, f"In session with {model.display_id(connection.peer_id)} ({connection.path})")

    def _on_reconnect_failed(self, error, stop):
        if stop is not self._reconnecting:
            return
        self._reconnecting, user_closed = None, stop.is_set()   # set: the user closed the window
        self._take_viewer()
        self._on_viewer_stopped(None if user_closed else error)

    def _on_viewer_stopped(self, error):
        if error is not None:
            self._on_failed(error)
        elif self.machine.can(HomeEvent.SESSION_ENDED):
            self.machine.handle(HomeEvent.SESSION_ENDED)
            self.home.set_busy(False)

    def _take_viewer(self):
        """Forget the viewer session and close its window (Tk thread); returns the session."""
        session, window = self.viewer, self.viewer_window
        self.viewer = self.viewer_window = self.viewer_connection = None
        if self._reconnecting is not None:
            self._reconnecting.set()
        if window is not None and _exists(window):
            _destroy(window)
        if window is not None:
            self._remember_view(window)
        return session

    def _stop_viewer(self, user_closed):
        """Stop the viewer session and close its window, waiting for it (closing, or a window
        that could not open).  Returns what to tell the user, as _stop_session."""
        return _stop_session(self._take_viewer(), user_closed)

    # --- host side ------------------------------------------------------------------------------

    def _on_accept_request(self, request):
        if request.done:
            return

        def answered(granted, always):
            self.prompts.pop(request, None)
            if always and granted:
                self.settings.partners.trust(request.peer_id, _rights(granted), request.name)
            request.resolve(granted)
        self.prompts[request] = AcceptPrompt(
            self.root, request.peer_id, answered, timeout=request.timeout, name=request.name,
            files=request.files, view_only=bool(self.client.host_options.get("view_only")))

    def _close_withdrawn_prompts(self):
        """A viewer that gave up (or fell silent) resolved its request: its prompt goes at once."""
        for request, prompt in list(self.prompts.items()):
            if request.done:
                self.prompts.pop(request, None)
                if _exists(prompt):
                    _destroy(prompt)

    def _on_session_started(self, peer_id, role="host", path="", view_only=None, desk_name="", **_fields):
        if role != "host" or peer_id in self.indicators:
            return
        if view_only is None:       # the rights of this session, else the settings
            view_only = bool(self.client.host_options.get("view_only"))
        self.indicators[peer_id] = ControlledIndicator(self.root, peer_id, self._disconnect_clicked,
                                                       view_only=view_only, name=desk_name)

    def _on_host_view_only(self, peer_id, **_fields):
        """The host session could not load input injection: the partner only sees."""
        indicator = self.indicators.get(peer_id)
        if indicator is not None:
            indicator.set_view_only(True)

    def _on_session_ended(self, peer_id, role="host", reason=None, **_fields):
        if role != "host":
            return
        indicator = self.indicators.pop(peer_id, None)
        if indicator is not None:
            _destroy(indicator)
        self.chats.ended(peer_id)
        self.home.set_notice(f"Session with {model.display_id(peer_id)} ended."
                             + (f" {words.ending(reason)}" if reason else ""))

    def _disconnect_clicked(self, _peer_id):
        self._spawn(self.client.end_host_sessions, name="end-host-sessions")

    def _on_auth_failed(self, peer_id, tries_left=0, **_fields):
        self.home.set_notice(words.wrong_guess(model.display_id(peer_id), tries_left))

    def _on_refused(self, peer_id, reason="", **_fields):
        if reason == CANCELLED:
            return self.home.set_notice(words.PARTNER_GAVE_UP.format(desk=model.display_id(peer_id)))
        self.home.set_notice(f"Refused desk {model.display_id(peer_id)}" + (f" ({reason})." if reason else "."))

    def _on_incoming(self, peer_id, **_fields):
        self.home.set_notice(f"Desk {model.display_id(peer_id)} is connecting\u2026")

    def _on_attempt_failed(self, peer_id, reason="", error=None, **_fields):
        why = words.explain(error, partner_id=peer_id).sentence if error is not None else (
            words.ending(reason) if reason else "")
        self.home.set_notice(f"Connection from {model.display_id(peer_id)} failed." + (f" {why}" if why else ""))

    def _on_host_clipboard_notice(self, peer_id, message="", **_fields):
        self.home.set_notice(message)       # e.g. a copied text too big to share

    def _on_host_chat(self, peer_id, **_fields):
        self.chats.message(peer_id)     # opens that partner's chat window (it polls the session)

    def _host_session(self, peer_id):
        return next((s for s in self.client.host_sessions if getattr(s, "peer_id", None) == peer_id), None)

    def _on_worker_failed(self, error):
        if self.machine.state in (HomeState.CONNECTING, HomeState.WAITING):
            self._on_failed(error)


# event name -> handler(app, **fields); events not listed are ignored (the core may add more)
HANDLERS = {
    "connect_done": App._on_connect_done,
    "connect_failed": App._on_connect_failed,
    "connect_waiting": App._on_connect_waiting,
    "worker_failed": App._on_worker_failed,
    "accept_request": App._on_accept_request,
    "session_started": App._on_session_started,
    "session_ended": App._on_session_ended,
    "auth_failed": App._on_auth_failed,
    "refused": App._on_refused,
    "incoming": App._on_incoming,
    "viewer_stopped": App._on_viewer_stopped,
    "viewer_reconnecting": App._on_viewer_reconnecting,
    "viewer_resumed": App._on_viewer_resumed,
    "reconnect_failed": App._on_reconnect_failed,
    "client_ready": App._on_client_ready,
    "attempt_failed": App._on_attempt_failed,
    "host_clipboard_notice": App._on_host_clipboard_notice,
    "work_done": App._on_work_done,
    "host_view_only": App._on_host_view_only,
    "host_chat": App._on_host_chat,
}


def _rights(granted):
    """The accept prompt's answer as Rights to remember (True: everything the settings allow)."""
    from tagio.client.hosting import ALL_RIGHTS
    return granted if granted is not True else ALL_RIGHTS


def _exists(widget) -> bool:
    try:
        return bool(widget.winfo_exists())
    except Exception:   # Tcl errors out once the widget's interpreter is gone
        return False


def _destroy(widget):
    try:
        widget.destroy()    # a ViewerWindow's destroy() also lets go of its session's display
    except Exception:   # already destroyed
        pass


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


# --- entry point --------------------------------------------------------------------------------

def _dpi_aware():
    """On Windows, real pixels on every monitor (per-monitor v2), before Tk and capture (no-op
    elsewhere; a no-op too when tagio-gui.py already set it)."""
    from tagio.platform import set_dpi_awareness
    set_dpi_awareness()


def _close_on_sigterm(root, app):
    """SIGTERM (logout, `kill`) closes the window cleanly instead of killing mid-session.

    The handler only schedules the close: Python runs it between bytecodes on the main
    thread, and the after() poll keeps Python code running inside Tk's main loop."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return
    try:
        signal.signal(signal.SIGTERM, lambda *_: root.after(0, lambda: app.close(raise_errors=False)))
    except (ValueError, OSError):   # some platforms refuse; the default action is acceptable there
        pass


def lan_enabled(environ) -> bool:
    """The window finds partners on the LAN (so a fresh install works with no relay) unless
    TAGIO_LAN is 0/off/no/false; the test suite sets it so that no test broadcasts."""
    return environ.get("TAGIO_LAN", "1").strip().lower() not in ("0", "off", "no", "false")


def main(options) -> int:
    """Start the Tk client; returns the process exit status.  `options` were parsed by
    tagio.entry (the one parser): this front end reads `config_dir` and `relay` from them."""
    import tkinter as tk
    from tagio.client.core import Client
    from tagio.client.settings import Settings, default_config_dir
    try:
        config_dir = options.config_dir or default_config_dir()
        settings = Settings.load(config_dir)
        _dpi_aware()
        root = tk.Tk(className="TagIO")
    except tk.TclError as exc:
        _startup_error(f"cannot open a window ({exc}); use --cli on a machine without a display")
        return 2
    except ConfigError as exc:
        _startup_error(str(exc))
        return 2

    lan = lan_enabled(os.environ)

    def factory(**kwargs):
        return Client(config_dir, relay=options.relay, lan=lan, **kwargs)
    app = None
    try:
        app = App(root, factory, settings)
        _close_on_sigterm(root, app)
        app.run()
    except KeyboardInterrupt:           # Ctrl+C in the terminal that started the window
        if app is not None:
            app.close(raise_errors=False)
        return 130
    except TagioError as exc:           # ConfigError: a bad --relay or settings value (exit 2)
        _destroy(root)
        _startup_error(str(exc))
        return 2 if isinstance(exc, ConfigError) else 1
    except Exception as exc:            # a bug kept by App.close(): one line, not a traceback
        log.debug("internal error", exc_info=True)
        _startup_error(f"internal error: {type(exc).__name__}: {exc}")
        return 1
    return 0


def _startup_error(text):
    """One line on stderr; the windowed Windows exe (stderr went to tagio.log) also shows a box."""
    from tagio.platform import tell_user
    print(f"tagio-gui: {text}", file=sys.stderr)
    tell_user(text)
