"""`tagio-gui --cli connect ID`: view and control a partner from the command line.

Theory of operation: `run_connect` starts a Client without a listener of its own choosing (the
--direct-bind option), authenticates to the partner (tagio.client.viewing through Client.connect),
says so while the partner's user is asked to accept ("waiting"; Ctrl+C then cancels and closes
the partner's prompt), prints a connected line (and a "view only" line once when the partner lets
us see but not control), then runs a ViewerSession for `--duration` seconds,
until the partner leaves or until Ctrl+C. `--chat TEXT` lines are sent once the session runs; chat
from the partner is printed. A `--script` of input (script.py) plays once the first frame is on
screen, and
`--snapshot` saves the last screen at the end. A session that ends on its own is a failure: the partner
or the path to it is gone (exit 5).

Reconnect: a session whose path broke (not a goodbye from either side, not Ctrl+C) prints a
`reconnecting` line and tries again with the session's resumption secret for up to 60 s, or
`--reconnect-for` seconds (client/resume.py); when the partner takes it a `reconnected` line follows and the run goes on
with a new session to the same partner, no password asked. A script plays on the first session only.
"""

import logging
import os
import sys
import threading
import time

from tagio.cli.common import make_client, password_from_stdin, running
from tagio.cli.output import EXIT_OK
from tagio.client import words
from tagio.client.resume import RESUME_TTL, come_back, lost_path
from tagio.crypto.identity import format_id, normalize_id
from tagio.errors import ConfigError, ConnectionClosed, ProtocolError, RelayError, TagioError
from tagio.protocol.session import HELLO_VIEW_ONLY

FIRST_FRAME_TIMEOUT = 10.0
RELAY_CHECK_WAIT = 10.0     # how long the ID check waits for our own registration


def _ask_password(args):
    """--password PW, or `--password -` (one line from stdin, kept out of the process list),
    TAGIO_PASSWORD, or a prompt on a terminal."""
    import getpass
    if args.password == "-":
        return password_from_stdin()
    if args.password:
        return args.password
    if os.environ.get("TAGIO_PASSWORD"):
        return os.environ["TAGIO_PASSWORD"]
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass("Partner's password: ")
    raise ConfigError("a password is needed: --password PW (or TAGIO_PASSWORD)")


class ViewerWatch:
    """Collects the ViewerSession's events: why the session ended, if it ended on its own; prints
    the partner's chat lines, and once that the host lets us see but not control (its Hello's
    flags, read when a "size" event says a Hello arrived; `session` is set once it exists)."""

    ENDED = ("closed", "error")

    def __init__(self, out=None):
        self.ended = threading.Event()
        self.reason = None
        self.out = out
        self.session = None
        self.view_only = False

    def __call__(self, name, **fields):
        if name == "size":
            self._check_view_only()
        if name == "clipboard_notice" and self.out is not None:
            self.out.event("clipboard_notice", fields.get("message", ""), message=fields.get("message"))
        if name == "chat" and self.out is not None:
            self.out.event("chat", f"chat: {fields['text']}", message=fields["text"])
        if name in self.ENDED:
            self.reason = self.reason or fields.get("reason") or fields.get("message")
            self.ended.set()

    def _check_view_only(self):
        flags = getattr(self.session, "host_flags", 0)
        if self.out is not None and flags & HELLO_VIEW_ONLY and not self.view_only:
            self.view_only = True
            self.out.event("view_only", f"view only: {words.inline(words.VIEW_ONLY_DETAIL)}",
                           message=words.VIEW_ONLY_DETAIL)


def _open_session(conn, watch, args):
    """The (started) ViewerSession on `conn`, its events going to `watch`."""
    session = conn.open_session(on_event=watch, clipboard=not args.no_clipboard)
    watch.session = session
    session.start()
    return session


def run_connect(args, out, stop) -> int:
    from tagio.cli.script import load_script
    script = load_script(args.script) if args.script else None
    partner = normalize_id(args.partner_id)
    out.partner_id = partner
    # A pure viewer: no TCP listener (no Windows firewall prompt); UDP for hole punching only.
    client = make_client(args, out, direct_bind=args.direct_bind, listen_tcp=False)
    with running(client):
        _check_partner(client, partner, args.timeout)
        password = _ask_password(args)
        conn = client.connect(partner, password, timeout=args.timeout, cancelled=stop,
                              on_waiting=lambda: _waiting(out, stop, partner),
                              accept_new_key=args.accept_new_key)
        out.event("connected", f"connected to {format_id(conn.peer_id)} via {conn.path} in "
                  f"{conn.connect_ms:.0f} ms",
                  peer=conn.peer_id, path=conn.path, connect_ms=round(conn.connect_ms, 1))
        return _view(args, out, stop, conn, script, client)


def _check_partner(client, partner, timeout):
    """Known and online? Asked before the password, so nobody types one for a desk that is not
    there. An unreachable relay is not decided here: the connect says so (or finds the LAN)."""
    try:
        client.wait_online(min(timeout, RELAY_CHECK_WAIT))
    except RelayError:
        return
    client.check_partner(partner)


def _waiting(out, stop, partner):
    """The host's user is being asked. From here Ctrl+C cancels through `stop` (the connect
    watches it), so the partner's prompt closes at once."""
    stop.polling = True
    out.event("waiting", f"{words.WAITING} (Ctrl+C cancels)", peer=partner)


def _view(args, out, stop, conn, script, client=None) -> int:
    stop.polling = True
    watch = ViewerWatch(out)
    session = _open_session(conn, watch, args)
    for line in getattr(args, "chat", None) or []:
        try:
            session.send_chat(line)
        except ValueError as exc:
            raise ConfigError(f"--chat: {exc}") from None
    started = time.monotonic()
    player = start_script(session, script, stop) if script else None
    deadline = None if args.duration is None else time.monotonic() + args.duration
    totals = {"frames": 0, "bytes": 0}
    session, failure = _follow(args, out, stop, client, (conn, session, watch), deadline, totals)
    stop.set()
    if player is not None:
        player.join(5)
    failure = _as_session_loss(_stop_session(session) or failure)
    if player is not None and player.errors:
        raise player.errors[0]
    if args.snapshot and (failure is None or session.framebuffer is not None):
        _save_snapshot(session, args.snapshot)      # a lost session's error is the news, not this
    stats = _add_stats(totals, session)
    frames = stats.get("frames", 0)
    # The summary's rate is over the whole session (the session's own "fps" is the last second's).
    fields = {"frames": frames, "fps": round(frames / max(time.monotonic() - started, 1e-3), 2),
              "bytes": stats.get("bytes", 0), "latency_ms": stats.get("latency_ms", 0)}
    out.event("closed", f"session closed: {fields['frames']} frames, {fields['fps']:.1f} fps, "
              f"{fields['bytes']} bytes", **fields)
    if failure is not None:
        return out.error(failure)
    return EXIT_OK


def _follow(args, out, stop, client, current, deadline, totals):
    """Watch the session; when its path breaks, bring it back (a new session on a new connection)
    for as long as the partner takes it. Returns (the last session, why it ended or None)."""
    conn, session, watch = current
    while True:
        failure = _wait_session(session, watch, stop, deadline)
        cause = _stop_session(session) if failure is not None else None
        again = _reconnect(client, conn, out, stop, cause, deadline, args.reconnect_for) \
            if lost_path(cause) else None
        if again is None:
            return session, cause or failure
        _add_stats(totals, session)
        conn, watch = again, ViewerWatch(out)
        session = _open_session(conn, watch, args)


def _add_stats(totals, session) -> dict:
    """Add one session's counters to the run's; the last session's latency is kept."""
    stats = dict(session.stats)
    for key in ("frames", "bytes"):
        totals[key] += stats.get(key, 0)
    return {**stats, **totals}


def _reconnect(client, conn, out, stop, cause, deadline=None, trying_for=RESUME_TTL):
    """The path broke: try the session's resumption secret until the partner takes it (the new
    ViewerConnection) or `trying_for` seconds (--reconnect-for, at most RESUME_TTL) or the run's
    --duration pass, the partner refuses it, or Ctrl+C (None)."""
    if client is None or stop.is_set() or not conn.resume_secret or trying_for <= 0:
        return None
    out.event("reconnecting", words.RECONNECTING, peer=conn.peer_id, reason=str(cause))
    lost = time.monotonic()
    until = lost + trying_for if deadline is None else min(deadline, lost + trying_for)
    try:
        again = come_back(client, conn, stop=stop, deadline=until)
    except TagioError as exc:
        logging.getLogger("tagio").info("reconnect failed: %s", exc)
        return None
    took = time.monotonic() - lost
    out.event("reconnected", f"{words.RECONNECTED} ({again.path}, after {took:.1f} s)",
              peer=again.peer_id, path=again.path, after_s=round(took, 2))
    return again


def _wait_session(session, watch, stop, deadline):
    """Wait for the duration, Ctrl+C, or the session ending on its own (which is a failure)."""
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if watch.ended.is_set() or not _alive(session):
            return ConnectionClosed(watch.reason or session.closed_reason
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
    return session.running


def _stop_session(session):
    """Stop the session; return the error that ended it early, if any."""
    session.stop()
    try:
        session.join(5)
    except TagioError as exc:
        return exc
    return None


def start_script(session, steps, stop):
    """Play the script once the first frame is on screen (so the host is ready for input)."""
    from tagio.cli.script import run_script

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
    image = session.framebuffer
    if image is None:
        raise ConfigError("no screen was received, so there is no snapshot to save")
    try:
        image.save(path, format="PNG")
    except OSError as exc:
        raise ConfigError(f"cannot write snapshot {path}: {exc.strerror or exc}") from None
