"""`tagio-gui --cli host`: share this screen until stopped.

Theory of operation: `run_host` checks that the chosen screen can be captured, starts a Client,
waits for the relay registration and prints a ready line with the ID and the one-time password, again
whenever the password changes. A relay that cannot be reached does not end the host (a machine that
boots before its network is up must still become reachable): it says so, prints the ready line and
the relay link keeps trying for ever with backoff, printing "relay: online" once it registers; only a
relay that answers and refuses us (wrong secret, TLS required, ID taken) ends it, as that needs a
person to fix a setting. Then it serves until SIGINT/SIGTERM. The Client's events become output lines through the
HOST_EVENTS table; the text lines say why an attempt or a session ended in the words of
tagio.client.words, and the JSON objects keep the technical reason.

With `--files-dir DIR` a viewer may list, fetch from and send files into DIR (and nowhere else); each
finished transfer and each refused file is a line. Chat from a viewer is printed; with
`--chat-stdin` each line typed on stdin goes to every viewer as chat.
"""

import os
import sys
import threading

from tagio.cli.common import make_client, password_from_stdin, running
from tagio.cli.output import EXIT_OK
from tagio.client.relay_link import REFUSED
from tagio.client.settings import MIN_PERMANENT_PASSWORD
from tagio.client.words import HOST_KEEPS_TRYING, ending, explain, inline
from tagio.crypto.identity import format_id
from tagio.errors import ConfigError, RelayError

READY_TIMEOUT = 12.0
UNREACHABLE = "unreachable"     # how the relay link's status begins while it cannot reach the relay


def _attempt_words(fields) -> str:
    """Why an incoming attempt failed, in the words of tagio.client.words (the JSON keeps the
    technical reason)."""
    error = fields.get("error")
    if error is not None:
        return explain(error, partner_id=fields["peer_id"]).line
    return inline(ending(fields["reason"]))


HOST_EVENTS = {
    "incoming": lambda f: ("incoming", f"incoming connection from {f['peer_id']}",
                           {"peer": f["peer_id"]}),
    "verified": lambda f: ("verified", f"{f['peer_id']} proved its ID (key {f['key']})",
                           {"peer": f["peer_id"], "key": f["key"]}),
    "auth_failed": lambda f: ("auth_failed", f"{f['peer_id']} gave a wrong password",
                              {"peer": f["peer_id"]}),
    "refused": lambda f: ("refused", f"refused {f['peer_id']}: {f['reason']}",
                          {"peer": f["peer_id"], "reason": f["reason"]}),
    "attempt_failed": lambda f: ("attempt_failed", f"connection from {f['peer_id']} failed: "
                                 f"{_attempt_words(f)}", {"peer": f["peer_id"], "reason": f["reason"]}),
    "session_started": lambda f: ("session_started", f"{f['peer_id']} "
                                  f"{'reconnected' if f.get('resumed') else 'connected'} via {f['path']}",
                                  {"peer": f["peer_id"], "path": f["path"], "resumed": bool(f.get("resumed"))}),
    "session_ended": lambda f: ("session_ended", f"session with {f['peer_id']} ended"
                                + (f": {inline(ending(f['reason']))}" if f.get("reason") else ""),
                                {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_view_only": lambda f: ("view_only", f"view only: {f.get('reason', '')}",
                                 {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_clipboard_notice": lambda f: ("clipboard_notice", f.get("message", ""),
                                        {"peer": f["peer_id"], "message": f.get("message")}),
    "host_warning": lambda f: ("warning", f"warning: {f.get('message', '')}",
                               {"peer": f["peer_id"], "message": f.get("message")}),
    "host_chat": lambda f: ("chat", f"chat from {f['peer_id']}: {f['text']}",
                            {"peer": f["peer_id"], "message": f["text"]}),
    "host_transfer_done": lambda f: ("transfer", _transfer_words(f),
                                     {"peer": f["peer_id"], **{k: v for k, v in f.items()
                                                               if k != "peer_id"}}),
    "host_file_refused": lambda f: ("file_refused", f"refused {f['path']}: {f['reason']}",
                                    {"peer": f["peer_id"], "path": f["path"], "reason": f["reason"]}),
    "host_file_error": lambda f: ("file_error", f"file failed: {f['message']}",
                                  {"peer": f["peer_id"], "path": f["path"], "message": f["message"]}),
    "host_capture_paused": lambda f: ("capture_paused", f"picture paused: {f.get('reason', '')}",
                                      {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_capture_resumed": lambda f: ("capture_resumed", "picture resumed", {"peer": f["peer_id"]}),
}


def _transfer_words(f) -> str:
    verb = "received from" if f["direction"] == "receive" else "sent to"
    text = f"{f['verified']} files {verb} {f['peer_id']} ({f['bytes']} bytes)"
    return text if f["ok"] else f"{text}; not all: {f['message']}"


class HostPrinter:
    """Turns Client events into output lines; re-announces the password when it changes."""

    def __init__(self, out):
        self.out = out
        self.client = None          # set once the Client exists and is ready
        self.lan = False            # reachable on this network while the relay is away (--lan)
        self._relay_said = None     # the relay status last printed
        self._lock = threading.Lock()

    def __call__(self, name, **fields):
        if name == "password_changed":
            if self.client is not None:
                self.ready()
            return
        if name == "relay_status":
            return self.relay(fields["status"])
        render = HOST_EVENTS.get(name)
        if render is not None:
            event, text, data = render(fields)
            self.out.event(event, text, **data)

    def relay(self, status):
        """One line per change of the relay link's status (the link and the start-up wait both
        report it; the same status is said once). While the relay cannot be reached the line says
        that this desk keeps trying."""
        with self._lock:
            if status == self._relay_said:
                return
            self._relay_said = status
        if not status.startswith(UNREACHABLE):
            return self.out.event("relay", f"relay: {status}", status=status)
        lan = "; reachable on this network meanwhile" if self.lan else ""
        self.out.event("relay", f"relay: {status}; {HOST_KEEPS_TRYING}{lan}", status=status,
                       retrying=True)

    def ready(self):
        c = self.client
        self.out.event("ready", f"TagIO host ready. ID: {format_id(c.id)}  "
                       f"Password: {c.one_time_password}",
                       id=c.id, password=c.one_time_password,
                       relay=c.relay_url)


def check_capture(monitor):
    """Fail at start, not at the first viewer, when this machine cannot share the chosen screen."""
    try:
        import mss
        with mss.mss() as sct:
            count = len(sct.monitors) - 1          # monitors[0] is the union of all of them
    except Exception as exc:                       # no display, no X server, no permission
        raise ConfigError(f"cannot capture the screen here: {exc}") from None
    if not 1 <= monitor <= count:
        raise ConfigError(f"there is no monitor {monitor}: this screen has {count}")


def _wait_relay_or_lan(client, printer):
    """Registered at the relay; or, while the relay cannot be reached, serving (the LAN with --lan)
    and retrying it in the background (said once: the printer has usually said it already)."""
    try:
        client.wait_online(READY_TIMEOUT)
    except RelayError:
        status = client.relay_status
        if REFUSED in status:
            raise
        printer.relay(status)


def _files_dir(path):
    """The folder for --files-dir, made if it is missing (as the window makes its own): received
    files go there, and it is the only folder a partner may list or fetch from."""
    if path is None:
        return None
    if os.path.exists(path) and not os.path.isdir(path):     # (makedirs would say "File exists")
        raise ConfigError(f"--files-dir {path}: not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--files-dir {path}: cannot use that folder ({exc.strerror or exc})") from None
    if not os.path.isdir(path):
        raise ConfigError(f"--files-dir {path}: not a folder")
    return os.path.abspath(path)


def _chat_from_stdin(client, stop):
    """Each line typed on stdin goes to every viewer of this host as chat (a daemon thread: a
    blocked readline cannot be interrupted, and the process ends with the host)."""
    def read():
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            for session in client.host_sessions if text.strip() else []:
                session.send_chat(text)
            if stop.is_set():
                return
    threading.Thread(target=read, name="chat-stdin", daemon=True).start()


def check_permanent_password(password):
    """--password lets partners in with no prompt and never rotates: refuse a short one (ConfigError:
    one line, exit status 2). The text never repeats the password."""
    if password is not None and len(password.strip()) < MIN_PERMANENT_PASSWORD:
        raise ConfigError(f"--password is too short: an unattended password needs at least "
                          f"{MIN_PERMANENT_PASSWORD} characters")
    return password


def run_host(args, out, stop) -> int:
    password = check_permanent_password(password_from_stdin() if args.password == "-" else args.password)
    check_capture(args.monitor)
    files_dir = _files_dir(getattr(args, "files_dir", None))
    printer = HostPrinter(out)
    client = make_client(args, out, on_event=printer, host_password=password,
                         direct_bind=args.direct_bind, monitor=args.monitor,
                         view_only=True if args.view_only else None, fps_cap=args.fps,
                         quality=args.quality)
    printer.lan = client.lan_peers is not None
    if args.no_clipboard:
        client.host_options["clipboard"] = False
    client.host_options["files_dir"] = files_dir
    with running(client):
        if getattr(args, "chat_stdin", False):
            _chat_from_stdin(client, stop)
        _wait_relay_or_lan(client, printer)
        printer.client = client
        printer.ready()
        stop.polling = True
        while not stop.wait(0.5):
            pass
    out.event("stopped", "host stopped")
    return EXIT_OK
