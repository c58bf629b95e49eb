"""The command line of tagio-gui: `tagio-gui --cli host ...` and `tagio-gui --cli connect ID ...`.

Theory of operation: `main(argv)` parses the arguments; without `--cli` (and without a command) it
starts the Tk application from tagio.ui.app. `host` starts a Client, waits for the relay registration
and prints a ready line with the ID and the one-time password (again whenever the password changes),
then serves until SIGINT/SIGTERM. `connect` starts a Client without a listener, authenticates to the
partner, runs a ViewerSession for `--duration` seconds (or until the partner leaves or Ctrl+C), can play
a `--script` of input and writes `--snapshot` at the end.

Output (tagio/client/output.py) is one line per event, for people or (with `--json`) one JSON object
per line on stdout. Every failure becomes one line on stderr (plus an {"event": "error"} object with
`--json`) and an exit status from output.ERRORS: no tracebacks unless `--verbose`, and no secret except
the host's own one-time password in its ready line.
"""

import argparse
import contextlib
import inspect
import logging
import os
import signal
import sys
import threading
import time

import tagio
from tagio.client.settings import format_address, parse_address, parse_relay
from tagio.crypto.identity import format_id, normalize_id
from tagio.client.output import (EXIT_AUTH, EXIT_ERROR, EXIT_GONE, EXIT_INTERRUPTED,  # noqa: F401
                                 EXIT_OK, EXIT_RELAY, EXIT_USAGE, Output, describe_error)
from tagio.errors import ConfigError, ConnectionClosed, ProtocolError, RelayError, TagioError

ENV_RELAY_SECRET = "TAGIO_RELAY_SECRET"
READY_TIMEOUT = 12.0
FIRST_FRAME_TIMEOUT = 10.0

# ---------------------------------------------------------------------------- argument parsing

def _address(text):
    """HOST:PORT, or a URL tls:// ws:// wss:// (kept as typed once it parses)."""
    try:
        if "://" in text:
            parse_relay(text)
            return text.strip()
        return format_address(parse_address(text))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind, low, high):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value
    return parse


def _bind(text):
    """HOST[:PORT] for the direct listener, or "none" for no direct paths (relay only)."""
    if text.strip().lower() == "none":
        return None
    try:
        return parse_address(text, default_port=0, min_port=0)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common_options(with_defaults):
    """Options accepted before and after the command. Only the top level sets defaults, because a
    subparser's defaults would overwrite a value given before the command."""
    common = argparse.ArgumentParser(add_help=False)
    if not with_defaults:
        common.argument_default = argparse.SUPPRESS
    common.add_argument("--config-dir", metavar="DIR", help="settings folder (also TAGIO_CONFIG_DIR)")
    common.add_argument("--relay", metavar="HOST:PORT", type=_address,
                        help="relay (also TAGIO_RELAY); tls://, ws:// or wss:// URLs for TLS or "
                             "HTTPS-only hosts")
    common.add_argument("--json", action="store_true", help="print one JSON object per line")
    common.add_argument("--verbose", action="store_true", help="log details (never secrets)")
    common.add_argument("--direct-bind", type=_bind, help=argparse.SUPPRESS,
                        **({"default": ("0.0.0.0", 0)} if with_defaults else {}))
    common.add_argument("--lan", action="store_true",
                        help="also announce and find partners on this network (works without a relay)")
    common.add_argument("--lan-target", action="append", help=argparse.SUPPRESS)
    common.add_argument("--lan-port", type=_positive(int, 1, 65535), help=argparse.SUPPRESS)
    common.add_argument("--lan-interval", type=_positive(float, 0.05, 60), help=argparse.SUPPRESS)
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tagio-gui", description="TagIO remote desktop. Without --cli the window opens.",
        parents=[_common_options(with_defaults=True)],
        epilog="Environment: TAGIO_CONFIG_DIR, TAGIO_RELAY (HOST:PORT or URL), TAGIO_RELAY_CA, "
               "TAGIO_RELAY_SECRET (private "
               "relay), TAGIO_PASSWORD (connect). Exit status: 0 ok, 1 error, 2 usage or setup, "
               "3 wrong password, 4 relay problem or unknown ID, 5 partner gone, 130 interrupted.")
    common = _common_options(with_defaults=False)
    parser.add_argument("--version", action="version", version=f"TagIO {tagio.__version__}")
    parser.add_argument("--cli", action="store_true", help="run without a window: host or connect")
    commands = parser.add_subparsers(dest="command", metavar="{host,connect}", prog="tagio-gui --cli")

    host = commands.add_parser("host", parents=[common], help="share this screen")
    host.add_argument("--password", metavar="PW",
                      help="also accept this password (unattended access); '-' reads it from stdin")
    host.add_argument("--view-only", action="store_true", help="ignore the viewer's mouse and keys")
    host.add_argument("--monitor", type=_positive(int, 1, 16), default=1, metavar="N",
                      help="which screen to share (1 = the first)")
    host.add_argument("--no-clipboard", action="store_true",
                      help="do not share the clipboard with viewers (it is never shared in --view-only)")
    host.add_argument("--fps", type=_positive(int, 1, 60), metavar="N", help="frame-rate cap")
    host.add_argument("--quality", type=_positive(int, 10, 95), metavar="Q", help="JPEG quality")

    view = commands.add_parser("connect", parents=[common], help="view and control a partner")
    view.add_argument("partner_id", metavar="ID", help="the partner's 9-digit ID")
    view.add_argument("--password", metavar="PW",
                      help="the partner's password; '-' reads it from standard input (else asked)")
    view.add_argument("--snapshot", metavar="FILE.png", help="save the last screen received")
    view.add_argument("--duration", type=_positive(float, 0, 86400), metavar="SECONDS",
                      help="end the session after this long")
    view.add_argument("--no-clipboard", action="store_true", help="do not share the clipboard")
    view.add_argument("--timeout", type=_positive(float, 1, 120), default=15.0, help=argparse.SUPPRESS)
    view.add_argument("--script", metavar="FILE", help=argparse.SUPPRESS)
    return parser


# ---------------------------------------------------------------------------- entry points

def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if args.cli:
            parser.error("--cli needs a command: host or connect")
        return start_gui(_gui_argv(args))
    _setup_logging(args.verbose)
    out = Output(args.json)
    stop = StopSignal()
    _install_signals(stop)
    try:
        return COMMANDS[args.command](args, out, stop)
    except KeyboardInterrupt:
        print("tagio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TagioError as exc:
        return out.error(exc)
    except Exception as exc:          # a bug: one line for the user, the traceback only with --verbose
        logging.getLogger("tagio").debug("unexpected error", exc_info=True)
        return out.error(exc)


def _gui_argv(args) -> list:
    """The options the window understands (it has its own, smaller parser)."""
    argv = []
    if args.config_dir:
        argv += ["--config-dir", args.config_dir]
    if args.relay:
        argv += ["--relay", args.relay]
    return argv


def start_gui(argv) -> int:
    try:
        from tagio.ui.app import main as gui_main
    except ImportError as exc:
        print(f"tagio: the window is not available ({exc}); use --cli host or --cli connect ID",
              file=sys.stderr)
        return EXIT_ERROR
    takes_args = bool(inspect.signature(gui_main).parameters)
    result = gui_main(argv) if takes_args else gui_main()
    return result if isinstance(result, int) else EXIT_OK


def _setup_logging(verbose):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tagio: %(message)s") if verbose else _QuietFormatter())
    root = logging.getLogger("tagio")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.ERROR)
    root.propagate = False
    threading.excepthook = _thread_excepthook


class _QuietFormatter(logging.Formatter):
    """One line per record: users see what went wrong, not a traceback."""

    def __init__(self):
        super().__init__("tagio: %(message)s")

    def formatException(self, ei):
        return ""

    def formatStack(self, stack_info):
        return ""


def _thread_excepthook(hook_args):
    logging.getLogger("tagio").error("thread %s stopped: %s",
                                     getattr(hook_args.thread, "name", "?"),
                                     hook_args.exc_type.__name__, exc_info=hook_args.exc_value)


class StopSignal(threading.Event):
    """Set by SIGINT/SIGTERM. While `polling` is False the main thread is blocked in a call that
    cannot watch the event (registering, connecting), so the handler interrupts it instead."""

    polling = False


def _install_signals(stop):
    def handler(signum, frame):
        stop.set()
        if not stop.polling:
            raise KeyboardInterrupt
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


@contextlib.contextmanager
def _closing(client):
    """Start the client and always close it; an error while closing never hides the error that
    ended the command (it is logged instead), and is raised only when all else went well."""
    client.start()
    try:
        yield client
    except BaseException:
        try:
            client.close()
        except Exception:
            logging.getLogger("tagio").debug("error while closing the client", exc_info=True)
        raise
    client.close()


def _make_client(args, out, **kwargs):
    from tagio.client.core import Client
    from tagio.client.settings import Settings, default_config_dir
    config_dir = args.config_dir or default_config_dir()
    settings = Settings.load(config_dir)
    if os.environ.get(ENV_RELAY_SECRET):          # for this run only; never written to the file
        settings.relay_secret = os.environ[ENV_RELAY_SECRET]
    if settings.warning:
        out.event("warning", f"warning: {settings.warning}", message=settings.warning)
    return Client(config_dir, relay=args.relay, settings=settings, lan=_lan_options(args), **kwargs)


def _lan_options(args):
    """LanService options for --lan; --lan-target ADDR (tests: 127.255.255.255) replaces broadcast."""
    if not getattr(args, "lan", False):
        return None
    options = {}
    if getattr(args, "lan_target", None):
        options["targets"] = tuple(args.lan_target)
    if getattr(args, "lan_port", None):
        options["lan_port"] = args.lan_port
    if getattr(args, "lan_interval", None):
        options["interval"] = args.lan_interval
    return options or True


# ---------------------------------------------------------------------------- host

HOST_EVENTS = {
    "relay_status": lambda f: ("relay", f"relay: {f['status']}", {"status": f["status"]}),
    "incoming": lambda f: ("incoming", f"incoming connection from {f['peer_id']}",
                           {"peer": f["peer_id"]}),
    "auth_failed": lambda f: ("auth_failed", f"{f['peer_id']} gave a wrong password",
                              {"peer": f["peer_id"]}),
    "refused": lambda f: ("refused", f"refused {f['peer_id']}: {f['reason']}",
                          {"peer": f["peer_id"], "reason": f["reason"]}),
    "attempt_failed": lambda f: ("attempt_failed", f"connection from {f['peer_id']} failed: "
                                 f"{f['reason']}", {"peer": f["peer_id"], "reason": f["reason"]}),
    "session_started": lambda f: ("session_started", f"{f['peer_id']} connected via {f['path']}",
                                  {"peer": f["peer_id"], "path": f["path"]}),
    "session_ended": lambda f: ("session_ended", f"session with {f['peer_id']} ended"
                                + (f": {f['reason']}" if f.get("reason") else ""),
                                {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_view_only": lambda f: ("view_only", f"view only: {f.get('reason', '')}",
                                 {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_clipboard_notice": lambda f: ("clipboard_notice", f.get("message", ""),
                                        {"peer": f["peer_id"], "message": f.get("message")}),
    "host_warning": lambda f: ("warning", f"warning: {f.get('message', '')}",
                               {"peer": f["peer_id"], "message": f.get("message")}),
}


class HostPrinter:
    """Turns Client events into output lines; re-announces the password when it changes."""

    def __init__(self, out):
        self.out = out
        self.client = None          # set once the Client exists and is ready

    def __call__(self, name, **fields):
        if name == "password_changed":
            if self.client is not None:
                self.ready()
            return
        render = HOST_EVENTS.get(name)
        if render is not None:
            event, text, data = render(fields)
            self.out.event(event, text, **data)

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


def _wait_relay_or_lan(client, out):
    """Registered at the relay; or, with --lan, serving this network alone while the relay is away
    (the client keeps retrying it in the background)."""
    try:
        client.wait_online(READY_TIMEOUT)
    except RelayError:
        if client.lan_peers is None:
            raise
        out.event("relay", f"relay: {client.relay_status}; reachable on this network only",
                  status=client.relay_status)


def run_host(args, out, stop) -> int:
    check_capture(args.monitor)
    password = _password_from_stdin() if args.password == "-" else args.password
    printer = HostPrinter(out)
    client = _make_client(args, out, on_event=printer, host_password=password,
                          direct_bind=args.direct_bind, monitor=args.monitor,
                          view_only=True if args.view_only else None, fps_cap=args.fps,
                          quality=args.quality)
    if args.no_clipboard:
        client.host_options["clipboard"] = False
    with _closing(client):
        _wait_relay_or_lan(client, out)
        printer.client = client
        printer.ready()
        stop.polling = True
        while not stop.wait(0.5):
            pass
    out.event("stopped", "host stopped")
    return EXIT_OK


# ---------------------------------------------------------------------------- viewer

MAX_PASSWORD_LINE = 1024


def _password_from_stdin():
    line = sys.stdin.readline(MAX_PASSWORD_LINE) if sys.stdin is not None else ""
    if not line.strip():
        raise ConfigError("--password -: no password on standard input")
    return line.rstrip("\r\n")


def _ask_password(args):
    """--password PW, or `--password -` (one line from stdin, kept out of the process list),
    TAGIO_PASSWORD, or a prompt on a terminal."""
    import getpass
    if args.password == "-":
        return _password_from_stdin()
    if args.password:
        return args.password
    if os.environ.get("TAGIO_PASSWORD"):
        return os.environ["TAGIO_PASSWORD"]
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass("Partner's password: ")
    raise ConfigError("a password is needed: --password PW (or TAGIO_PASSWORD)")


class ViewerWatch:
    """Collects the ViewerSession's events: why the session ended, if it ended on its own."""

    ENDED = ("closed", "error")

    def __init__(self, out=None):
        self.ended = threading.Event()
        self.reason = None
        self.out = out

    def __call__(self, name, **fields):
        if name == "clipboard_notice" and self.out is not None:
            self.out.event("clipboard_notice", fields.get("message", ""), message=fields.get("message"))
        if name in self.ENDED:
            self.reason = self.reason or fields.get("reason") or fields.get("message")
            self.ended.set()


def run_connect(args, out, stop) -> int:
    from tagio.client.script import load_script
    script = load_script(args.script) if args.script else None
    partner = normalize_id(args.partner_id)
    password = _ask_password(args)
    client = _make_client(args, out, direct_bind=args.direct_bind)
    with _closing(client):
        conn = client.connect(partner, password, timeout=args.timeout)
        out.event("connected", f"connected to {format_id(conn.peer_id)} via {conn.path} in "
                  f"{conn.connect_ms:.0f} ms",
                  peer=conn.peer_id, path=conn.path, connect_ms=round(conn.connect_ms, 1))
        return _view(args, out, stop, conn, script)


def _view(args, out, stop, conn, script) -> int:
    stop.polling = True
    watch = ViewerWatch(out)
    session = conn.open_session(on_event=watch, clipboard=not getattr(args, "no_clipboard", False))
    session.start()
    started = time.monotonic()
    player = _start_script(session, script, stop) if script else None
    deadline = None if args.duration is None else time.monotonic() + args.duration
    failure = _wait_session(session, watch, stop, deadline)
    stop.set()
    if player is not None:
        player.join(5)
    failure = _as_session_loss(_stop_session(session) or failure)
    if player is not None and player.errors:
        raise player.errors[0]
    if args.snapshot:
        _save_snapshot(session, args.snapshot)
    stats = dict(getattr(session, "stats", {}) or {})
    frames = stats.get("frames", 0)
    # The summary's rate is over the whole session (the session's own "fps" is the last second's).
    fields = {"frames": frames, "fps": round(frames / max(time.monotonic() - started, 1e-3), 2),
              "bytes": stats.get("bytes", 0), "latency_ms": stats.get("latency_ms", 0)}
    out.event("closed", f"session closed: {fields['frames']} frames, {fields['fps']:.1f} fps, "
              f"{fields['bytes']} bytes", **fields)
    if failure is not None:
        return out.error(failure)
    return EXIT_OK


def _wait_session(session, watch, stop, deadline):
    """Wait for the duration, Ctrl+C, or the session ending on its own (which is a failure)."""
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if watch.ended.is_set() or not _alive(session):
            return ConnectionClosed(watch.reason or getattr(session, "closed_reason", None)
                                    or "the partner ended the session")
        stop.wait(0.1)
    return None


def _as_session_loss(exc):
    """A running session that ends by itself means the partner, or the path to it, is gone (a
    killed relay shows up as a truncated channel); the detail in brackets says how."""
    if exc is None or isinstance(exc, (ProtocolError, ConnectionClosed)):
        return exc
    return ConnectionClosed(f"connection lost ({exc})")


def _alive(session):
    return bool(getattr(session, "running", True))


def _stop_session(session):
    """Stop the session; return the error that ended it early, if any."""
    session.stop()
    try:
        session.join(5)
    except TagioError as exc:
        return exc
    return None


def _start_script(session, steps, stop):
    """Play the script once the first frame is on screen (so the host is ready for input)."""
    from tagio.client.script import run_script

    def play():
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT
        while not session.stats.get("frames") and time.monotonic() < deadline:
            if stop.wait(0.05):
                return
        try:
            run_script(session, steps, stop)
        except TagioError as exc:     # the session ended under the script; the main loop reports it
            logging.getLogger("tagio").debug("script stopped: %s", exc)
        except Exception as exc:      # a bug: kept, and re-raised by _view once the session is stopped
            thread.errors.append(exc)
    thread = threading.Thread(target=play, name="script", daemon=True)
    thread.errors = []
    thread.start()
    return thread


def _save_snapshot(session, path):
    image = getattr(session, "framebuffer", None)
    if image is None:
        raise ConfigError("no screen was received, so there is no snapshot to save")
    try:
        image.save(path, format="PNG")
    except OSError as exc:
        raise ConfigError(f"cannot write snapshot {path}: {exc.strerror or exc}") from None


COMMANDS = {"host": run_host, "connect": run_connect}
