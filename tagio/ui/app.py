"""The TagIO client application: ties the client core (tagio.client.core.Client) to Tk.

Theory of operation: `App` is the controller.  It owns the Tk root, the HomeWindow view,
a HomeMachine (model.py) that says what the home window may do next, and one Client.  It is
made of parts, each a small object that gets the App and drives one seam:

    viewer_side.ViewerSide    the connect flow, the session window, reconnect
    host_side.HostSide        accept prompts, the "being controlled" bar, the host's chat windows
    address_book.AddressBook  the partners list, online dots, rename, remove, the host's history

and keeps for itself the lifecycle, the poll, the tracked workers, the relay status line and the
home window's own buttons (copy, new password, Settings, About, Retry now).

Threads: only the Tk main thread touches widgets.  The Client calls `on_event` and
`accept_callback` from its worker threads; both go through bridge.EventBridge, a bounded
queue that `_poll()` drains every POLL_MS from `after()` and dispatches through one table
(event name -> a part's handler: the HANDLERS of this module and of the parts; idlelib's
poll_subprocess pattern).  Anything that may take more than a blink (a connect, scrypt for a
new password or for the Settings dialog's permanent password, stopping a viewer session, making
a Client for a new relay) runs in a worker, posting its result as an event ("work_done" carries
run_in_worker's callback).  Every worker is a tracked thread that close() joins; an unexpected
exception in one is kept and re-raised by close() (after the user has seen a message).

Quitting:      the window's close box quits at once when no session is active; while this
               machine is controlled or a viewer session is open it first asks (ConfirmDialog)
               and quits only on Yes.  SIGTERM and Ctrl+C close without asking.
"""

import functools
import logging
import os
import signal
import sys
import threading

from tagio import __version__
from tagio.errors import ConfigError, TagioError
from tagio.platform import WINDOWS
from tagio.ui.firstrun import show_firewall_notice
from tagio.ui import host_side, model, theme, viewer_side
from tagio.ui.bridge import AcceptBridge, EventBridge
from tagio.ui.home import HomeWindow, home_geometry
from tagio.ui.address_book import AddressBook
from tagio.ui.prompts import AboutDialog, ConfirmDialog, MessageDialog, primary_area
from tagio.ui.tkutil import destroy as _destroy, exists as _exists

log = logging.getLogger("tagio.ui")

POLL_MS = 100
JOIN_TIMEOUT = 25.0
COPIED_FEEDBACK_MS = 1500



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
        self.dialog = self.quit_prompt = None
        self.viewing = viewer_side.ViewerSide(self)
        self.address_book = AddressBook(self)
        root.title("TagIO")
        root.minsize(720, 420)
        root.protocol("WM_DELETE_WINDOW", self.close_clicked)
        root.report_callback_exception = self._report_callback_exception
        self.home = HomeWindow(root, self.fonts, self._callbacks())
        self.home.pack(fill="both", expand=True)
        self._place()
        self.hosting = host_side.HostSide(self)
        self.handlers = {**_bound(HANDLERS, self), **_bound(viewer_side.HANDLERS, self.viewing),
                         **_bound(host_side.HANDLERS, self.hosting)}
        self.client = self._make_client()

    def _place(self):
        """The window's first size and place: centred on the primary monitor (home_geometry).
        Measured while withdrawn (laying out maps the root, and it would show at 0,0 first);
        start() shows it once the partner ID field has the keyboard (the firewall notice
        shows it sooner)."""
        self.root.withdraw()
        self.root.update_idletasks()
        required = (self.root.winfo_reqwidth(), self.root.winfo_reqheight())
        self.root.geometry(home_geometry(required, primary_area(self.root)))

    def _callbacks(self):
        return {"connect": self.connect_clicked, "copy_id": self.copy_id, "copy_password": self.copy_password,
                "new_password": self.new_password, "settings": self.open_settings, "about": self.open_about,
                "pick": self.connect_clicked, "cancel": self.viewing.cancel_clicked,
                "retry": self.retry_relay, **self.address_book.callbacks()}

    def _make_client(self):
        return self._client_factory(settings=self.settings, accept_callback=self.accepts.ask,
                                    on_event=self.events.post)

    @property
    def viewer(self):
        """The viewer session shown in the session window (None: none, or being stopped)."""
        return self.viewing.session

    @property
    def viewer_path(self):
        return self.viewing.path

    def connect_clicked(self, text):
        """The home window's Connect (or a double-click on a partner): see ViewerSide."""
        self.viewing.connect_clicked(text)

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
        self.root.deiconify()       # placed by _place(); on screen once it takes typing
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
        self.viewing.stop(user_closed=True)
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
        return self.hosting.active() or self.viewing.active()

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
                handler = self.handlers.get(name)
                if handler is not None:
                    self._guarded(handler, **fields)
            self.viewing.check()
            self.hosting.close_withdrawn_prompts()
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
                                     derive_secret=self.derive_permanent_secret,
                                     relay_override=self._relay_override())

    def _relay_override(self):
        """The relay in use when --relay or TAGIO_RELAY chose it over the settings file, else None."""
        from tagio.client.settings import resolve_relay_text
        in_use = self.client.relay_url
        return in_use if in_use != resolve_relay_text(None, self.settings, environ={}) else None

    def derive_permanent_secret(self, password, done):
        """The Settings dialog's new permanent password -> its stored SPAKE2+ verifier (scrypt, tens
        of ms) in a worker; done(verifier, error) is called on the Tk thread."""
        from tagio.crypto import kdf
        host_id = self.client.id
        self.run_in_worker(lambda: kdf.permanent_verifier(password, host_id), done)

    def _settings_saved(self, settings, relay_before):
        self.dialog = None
        override = self._relay_override()
        self.home.set_notice("Settings saved." + (f" This run keeps the relay {override} given at start."
                                                  if override else ""))
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


# event name -> handler(app, **fields) for the App's own events; the parts have their HANDLERS.
# Events in no table are ignored (the core may add more).
HANDLERS = {
    "client_ready": App._on_client_ready,
    "work_done": App._on_work_done,
}


def _bound(table, part) -> dict:
    """One part's table (event name -> handler(part, **fields)) bound to that part."""
    return {name: functools.partial(handler, part) for name, handler in table.items()}


# --- entry point --------------------------------------------------------------------------------

def _dpi_aware():
    """On Windows, real pixels on every monitor (per-monitor v2), before Tk and capture (no-op
    elsewhere; a no-op too when tagio-gui.py already set it)."""
    from tagio.platform import set_dpi_awareness
    set_dpi_awareness()


def _close_on_sigterm(root, current_app):
    """SIGTERM (logout, `kill`) closes the window cleanly instead of killing mid-session.
    `current_app()` is the App by the time the close runs: the handler is in place from the
    moment the window exists (a SIGTERM while the App is being built is answered once it runs).

    The handler only schedules the close: Python runs it between bytecodes on the main
    thread, and the after() poll keeps Python code running inside Tk's main loop."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return

    def close():
        app = current_app()
        if app is not None:
            app.close(raise_errors=False)
    try:
        signal.signal(signal.SIGTERM, lambda *_: root.after(0, close))
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
    _close_on_sigterm(root, lambda: app)
    try:
        app = App(root, factory, settings)
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
