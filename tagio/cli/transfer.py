"""`tagio-gui --cli send ID PATH...` and `tagio-gui --cli get ID REMOTE_PATH...`: files to and from a host.

Theory of operation: both connect like `connect` (same --password, --relay, --config-dir, --json),
open a ViewerSession and start the transfer through it (tagio.session.files does the work): `send`
offers local files and folders, each landing under its own name in the host's files folder (or in
its folder --to REMOTE_DIR); `get` asks for paths relative to the host's files folder and writes them
into --to LOCAL_DIR (default: the current folder). Then it waits until every transfer reported its
end, printing progress: one line rewritten in place on a terminal, `progress` JSON events with
--json (at most a few a second), and one line per refused or failed file. The exit status is 0 only
when every file arrived and its SHA-256 was verified by the receiver; a refused or failed file is
exit 1 (with the first reason), a session that ended under the transfer is exit 5.

--existing says what the receiver does when a file of the same name is there: ask (the default:
refuse it, nothing is overwritten without a decision), skip, overwrite, keep-both.

Reconnect: when the session's path breaks under a transfer (the relay restarts, the network
changes), a `reconnecting` line says so and the session comes back with its resumption secret as
`connect` does (client/resume.py); the new session's file engine carries the cut transfers on
(FileEngine.carry: the receiver's parts are checked block by block, the data continues where it
stopped), the progress line goes on from there, and `reconnected` says when (`--reconnect-for`
SECONDS bounds the trying, as for `connect`: after it, exit 5). The `transferred`
line counts the bytes of every session (`bytes`), per session (`parts`: what moved before the first
reconnect, after it, ...) and the `reconnects`; `frames` and `fps` say how the partner's screen kept
coming in the same session(s) while the files moved, `session_bytes` all they received (the
screen's share of a `get` is session_bytes - bytes).
"""

import argparse
import os
import sys
import threading
import time

from tagio.cli.common import add_accept_new_key, make_client, running
from tagio.cli.connect import _ask_password, _as_session_loss, _reconnect, _stop_session
from tagio.cli.output import EXIT_INTERRUPTED, EXIT_OK
from tagio.client.resume import RESUME_TTL, lost_path
from tagio.crypto.identity import format_id, normalize_id
from tagio.errors import ConfigError, ConnectionClosed
from tagio.protocol import files as f
from tagio.session.files_names import FileRefused

POLICY_NAMES = {name: code for code, name in f.POLICIES.items()}


def add_commands(commands, common):
    """The send and get subcommands (called by tagio.entry.build_parser)."""
    for name, what, target in (("send", "send files and folders to a partner", "REMOTE_DIR"),
                               ("get", "get files and folders from a partner", "LOCAL_DIR")):
        cmd = commands.add_parser(name, parents=[common], help=what)
        cmd.add_argument("partner_id", metavar="ID", help="the partner's 9-digit ID")
        cmd.add_argument("paths", metavar="PATH" if name == "send" else "REMOTE_PATH", nargs="+",
                         help="local files/folders" if name == "send"
                         else "paths relative to the partner's files folder")
        cmd.add_argument("--to", metavar=target, default="" if name == "send" else ".",
                         help="folder in the partner's files folder" if name == "send"
                         else "local folder to write to (default: here)")
        cmd.add_argument("--existing", choices=sorted(POLICY_NAMES), default="ask",
                         help="when a file of that name is there: ask (refuse), skip, overwrite, "
                              "keep-both")
        cmd.add_argument("--password", metavar="PW",
                         help="the partner's password; '-' reads it from standard input (else asked)")
        cmd.add_argument("--reconnect-for", type=_seconds, default=RESUME_TTL, metavar="SECONDS",
                         help=f"when the connection breaks, try to bring the session back for this long "
                              f"(0 = not at all; at most and by default {RESUME_TTL:.0f})")
        cmd.add_argument("--timeout", type=float, default=15.0, help=argparse.SUPPRESS)
        add_accept_new_key(cmd)


def _seconds(text) -> float:
    """--reconnect-for: 0 to RESUME_TTL seconds (as for `connect`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= RESUME_TTL:
        raise argparse.ArgumentTypeError(f"must be between 0 and {RESUME_TTL:.0f}")
    return value


class TransferWatch:
    """The ViewerSessions' events during a transfer: progress lines, problems, the ends. One watch
    lives through every session of a run: `next_session()` hands out the event callback of the
    next one (the events of an older session are ignored from then on) and `carried(mapping)`
    follows the transfers a reconnect took up under new ids."""

    def __init__(self, out):
        self.out = out
        self.done = {}              # tid -> transfer_done fields
        self.parts = []             # bytes each session moved (cut transfers included)
        self.frames = 0             # frames of the partner's screen received by the sessions before
        self.received = 0           # session bytes received by them (screen, files, everything)
        self.ended = threading.Event()
        self.reason = None
        self.changed = threading.Condition()
        self.tty = not out.as_json and sys.stdout.isatty()
        self._progress = {}
        self._before = {}           # tid of a carried transfer -> (bytes, total) before its session
        self._session = 0
        self._started = time.monotonic()

    def next_session(self):
        """The event callback for the next session."""
        with self.changed:
            self._session += 1
            self.parts.append(0)
            self.ended.clear()
            self.reason = None
            session = self._session
        return lambda name, **fields: self._event(session, name, fields)

    def __call__(self, name, **fields):
        self._event(self._session, name, fields)

    def _event(self, session, name, fields):
        handler = self._HANDLERS.get(name)
        if handler is not None and session == self._session:
            handler(self, fields)

    def count(self, session):
        """A session ended: add what it received."""
        self.frames += session.stats.get("frames", 0)
        self.received += session.stats.get("bytes", 0)

    def carried(self, mapping, tids) -> list:
        """The new session took up `mapping` {old tid: new tid}: the tids to wait for now."""
        with self.changed:
            for old, new in mapping.items():
                last = self._progress.pop(old, None)
                before = self._before.pop(old, (0, None))
                if last is not None:    # its progress goes on from what the receiver holds
                    self._before[new] = (last["bytes"] + before[0] - last["total"] + (before[1] or 0),
                                         before[1] or last["total"])
            return [mapping.get(t, t) for t in tids]

    def _on_progress(self, fields):
        fields = dict(fields)
        before = self._before.get(fields["tid"])
        if before is not None:       # a carried transfer: shown as a whole, not from zero
            fields["bytes"] += before[1] - fields["total"]
            fields["total"] = before[1]
        self._progress[fields["tid"]] = fields
        total = sum(p["total"] for p in self._progress.values())
        done = sum(p["bytes"] for p in self._progress.values())
        rate = done / max(time.monotonic() - self._started, 1e-3)
        if self.out.as_json:
            self.out.event("progress", "", bytes=done, total=total, rate=round(rate),
                           files=sum(p["files"] for p in self._progress.values()),
                           files_total=sum(p["files_total"] for p in self._progress.values()))
        elif self.tty:
            percent = 100.0 * done / total if total else 100.0
            print(f"\r{percent:5.1f}%  {done / 1e6:9.1f} / {total / 1e6:.1f} MB  {rate / 1e6:6.1f} MB/s",
                  end="", file=sys.stdout, flush=True)

    def _on_problem(self, fields):
        reason = fields.get("reason") or fields.get("message") or ""
        kind = "file_refused" if "reason" in fields else "file_error"
        path = fields.get("path") or "a file"
        self._newline()          # a refusal's sentence may name the path itself (FileRefused does)
        text = reason if reason.startswith(f"{path}:") else f"{path}: {reason}"
        self.out.event(kind, text, path=fields.get("path"), reason=reason)

    def _on_done(self, fields):
        with self.changed:
            self.parts[-1] += fields["bytes"]
            if not fields.get("cut"):       # a cut one goes on after a reconnect (or ends the run)
                self.done[fields["tid"]] = fields
            self.changed.notify_all()

    def _on_end(self, fields):
        with self.changed:
            self.reason = self.reason or fields.get("reason") or fields.get("message")
            self.ended.set()
            self.changed.notify_all()

    def _on_chat(self, fields):
        self._newline()
        self.out.event("chat", f"chat: {fields['text']}", message=fields["text"])

    def _newline(self):
        if self.tty and self._progress:
            print(file=sys.stdout, flush=True)

    _HANDLERS = {"file_progress": _on_progress, "file_refused": _on_problem, "file_error": _on_problem,
                 "transfer_done": _on_done, "closed": _on_end, "error": _on_end, "chat": _on_chat}

    def wait(self, tids, stop):
        """Until every transfer in `tids` ended, the session ended, or Ctrl+C (False then)."""
        with self.changed:
            while not stop.is_set():
                if all(t in self.done for t in tids):
                    return True
                if self.ended.is_set():
                    return False
                self.changed.wait(0.1)
        return False


def _local_paths(paths):
    for path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"{path}: no such file or folder")
    return paths


def run_send(args, out, stop) -> int:
    paths = _local_paths(args.paths)
    policy = POLICY_NAMES[args.existing]
    return _run(args, out, stop, lambda session: session.send_files(paths, args.to, policy))


def run_get(args, out, stop) -> int:
    try:
        os.makedirs(args.to, exist_ok=True)     # --to names where the files go: made if missing
    except OSError as exc:
        raise ConfigError(f"{args.to}: cannot use that folder ({exc.strerror or exc})") from None
    if not os.path.isdir(args.to):
        raise ConfigError(f"{args.to}: not a folder")
    policy = POLICY_NAMES[args.existing]
    return _run(args, out, stop, lambda session: [session.get_files(args.paths, args.to, policy)])


def _run(args, out, stop, begin) -> int:
    partner = normalize_id(args.partner_id)
    out.partner_id = partner
    password = _ask_password(args)
    client = make_client(args, out, direct_bind=args.direct_bind)
    with running(client):
        conn = client.connect(partner, password, timeout=args.timeout,
                              accept_new_key=args.accept_new_key)
        out.event("connected", f"connected to {format_id(conn.peer_id)} via {conn.path} in "
                  f"{conn.connect_ms:.0f} ms",
                  peer=conn.peer_id, path=conn.path, connect_ms=round(conn.connect_ms, 1))
        return _transfer(out, stop, conn, begin, client, args.reconnect_for)


def _transfer(out, stop, conn, begin, client=None, reconnect_for=RESUME_TTL) -> int:
    stop.polling = True
    watch = TransferWatch(out)
    session = conn.open_session(on_event=watch.next_session())
    session.start()
    started = time.monotonic()
    tids, finished, cause = [], False, None
    try:
        tids = begin(session)
        while True:
            finished = watch.wait(tids, stop)
            if finished or stop.is_set():
                break
            cause = _stop_session(session)
            again = (_reconnect(client, conn, out, stop, cause, None, reconnect_for)
                     if lost_path(cause) else None)
            if again is None:
                break           # (the last session is counted once, below)
            watch.count(session)
            conn, old, cause = again, session, None
            session = conn.open_session(on_event=watch.next_session())
            session.start()
            tids = watch.carried(session.files.carry(old.files), tids)
    finally:
        failure = _as_session_loss(_stop_session(session) or cause)
    watch.count(session)
    watch._newline()
    return _report(out, watch, tids, finished, failure, time.monotonic() - started, stop.is_set())


def _report(out, watch, tids, finished, failure, seconds, interrupted=False) -> int:
    results = [watch.done[t] for t in tids if t in watch.done]
    fields = {key: sum(r[key] for r in results)
              for key in ("verified", "failed", "refused", "skipped", "bytes")}
    fields["bytes"] = sum(watch.parts)     # every session's, a cut transfer's first part included
    fields["parts"], fields["reconnects"] = list(watch.parts), len(watch.parts) - 1
    fields["seconds"] = round(seconds, 3)
    # the partner's screen kept coming while the files moved (same session, same path)
    fields["frames"], fields["fps"] = watch.frames, round(watch.frames / max(seconds, 1e-3), 2)
    fields["session_bytes"] = watch.received
    fields["ok"] = finished and all(r["ok"] for r in results)
    out.event("transferred", f"{fields['verified']} files verified, {fields['skipped']} skipped, "
              f"{fields['refused'] + fields['failed']} not transferred; {fields['bytes']} bytes in "
              f"{seconds:.1f} s", **fields)
    if fields["ok"]:
        return EXIT_OK
    if interrupted and not finished:
        print("tagio: interrupted; the same command again resumes where it stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not finished:
        return out.error(failure or ConnectionClosed(watch.reason or "the session ended before the "
                                                     "transfer did"))
    problems = [r["message"] for r in results if not r["ok"] and r["message"]]
    return out.error(FileRefused(problems[0] if problems else "not every file was transferred"))
