"""`tagio-gui --cli host`: share this screen until stopped.

Theory of operation: `run_host` checks that the chosen screen can be captured, starts a Client,
waits for the relay registration (or, with --lan, serves the local network alone while the relay is
away) and prints a ready line with the ID and the one-time password, again whenever the password
changes. Then it serves until SIGINT/SIGTERM. The Client's events become output lines through the
HOST_EVENTS table; the text lines say why an attempt or a session ended in the words of
tagio.client.words, and the JSON objects keep the technical reason.
"""

from tagio.cli.common import make_client, password_from_stdin, running
from tagio.cli.output import EXIT_OK
from tagio.client.words import ending, explain, inline
from tagio.crypto.identity import format_id
from tagio.errors import ConfigError, RelayError

READY_TIMEOUT = 12.0


def _attempt_words(fields) -> str:
    """Why an incoming attempt failed, in the words of tagio.client.words (the JSON keeps the
    technical reason)."""
    error = fields.get("error")
    if error is not None:
        return explain(error, partner_id=fields["peer_id"]).line
    return inline(ending(fields["reason"]))


HOST_EVENTS = {
    "relay_status": lambda f: ("relay", f"relay: {f['status']}", {"status": f["status"]}),
    "incoming": lambda f: ("incoming", f"incoming connection from {f['peer_id']}",
                           {"peer": f["peer_id"]}),
    "auth_failed": lambda f: ("auth_failed", f"{f['peer_id']} gave a wrong password",
                              {"peer": f["peer_id"]}),
    "refused": lambda f: ("refused", f"refused {f['peer_id']}: {f['reason']}",
                          {"peer": f["peer_id"], "reason": f["reason"]}),
    "attempt_failed": lambda f: ("attempt_failed", f"connection from {f['peer_id']} failed: "
                                 f"{_attempt_words(f)}", {"peer": f["peer_id"], "reason": f["reason"]}),
    "session_started": lambda f: ("session_started", f"{f['peer_id']} connected via {f['path']}",
                                  {"peer": f["peer_id"], "path": f["path"]}),
    "session_ended": lambda f: ("session_ended", f"session with {f['peer_id']} ended"
                                + (f": {inline(ending(f['reason']))}" if f.get("reason") else ""),
                                {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_view_only": lambda f: ("view_only", f"view only: {f.get('reason', '')}",
                                 {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_warning": lambda f: ("warning", f"warning: {f.get('message', '')}",
                               {"peer": f["peer_id"], "message": f.get("message")}),
    "host_capture_paused": lambda f: ("capture_paused", f"picture paused: {f.get('reason', '')}",
                                      {"peer": f["peer_id"], "reason": f.get("reason")}),
    "host_capture_resumed": lambda f: ("capture_resumed", "picture resumed", {"peer": f["peer_id"]}),
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
    password = password_from_stdin() if args.password == "-" else args.password
    printer = HostPrinter(out)
    client = make_client(args, out, on_event=printer, host_password=password,
                         direct_bind=args.direct_bind, monitor=args.monitor,
                         view_only=True if args.view_only else None, fps_cap=args.fps,
                         quality=args.quality)
    with running(client):
        _wait_relay_or_lan(client, out)
        printer.client = client
        printer.ready()
        stop.polling = True
        while not stop.wait(0.5):
            pass
    out.event("stopped", "host stopped")
    return EXIT_OK
