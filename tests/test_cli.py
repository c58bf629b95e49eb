"""Tests for the command line (tagio.entry, tagio.cli, tagio-gui.py): parsing, error lines, exit codes.

Real subprocesses of tagio-gui.py; the relay cases use a closed port on 127.0.0.1 (nothing else is ever
contacted: every run passes --relay and a private --config-dir).
"""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import tagio
from tagio.cli import output as cli
from tagio.entry import build_parser
from tagio.errors import (ConfigError, ConnectionClosed, RelayError, RemoteProtocolError,
                          TransportTimeout, WrongPasswordError)
from tests.platforms import NO_DISPLAY, skip_on_windows
from tests.xvfb import Xvfb, skip_unless_xvfb

ROOT = Path(__file__).resolve().parent.parent
GUI = ROOT / "tagio-gui.py"


def run_gui(*args, timeout=30, env=None, stdin_text=None):
    environ = dict(os.environ, PYTHONPATH=str(ROOT))
    environ.pop("DISPLAY", None)
    environ.pop("TAGIO_RELAY", None)
    environ.update(env or {})
    return subprocess.run([sys.executable, str(GUI), *args], capture_output=True, text=True,
                          timeout=timeout, env=environ, cwd=str(ROOT),
                          input=stdin_text if stdin_text is not None else "")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ParserTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def parse(self, *argv):
        return build_parser().parse_args(list(argv))

    def test_options_before_and_after_command(self):
        a = self.parse("--config-dir", "A", "--cli", "host", "--json")
        self.assertEqual((a.config_dir, a.json, a.command), ("A", True, "host"))
        b = self.parse("--cli", "connect", "123456789", "--password", "pw", "--relay", "127.0.0.1:7",
                       "--duration", "2.5", "--snapshot", "x.png")
        self.assertEqual((b.partner_id, b.relay, b.duration, b.snapshot),
                         ("123456789", "127.0.0.1:7", 2.5, "x.png"))

    def test_host_options(self):
        a = self.parse("--cli", "host", "--view-only", "--monitor", "2", "--fps", "60",
                       "--direct-bind", "127.0.0.1")
        self.assertEqual((a.view_only, a.monitor, a.fps, a.direct_bind),
                         (True, 2, 60, ("127.0.0.1", 0)))

    def test_bad_values_are_usage_errors(self):
        for argv in (["--cli", "host", "--monitor", "0"], ["--cli", "host", "--fps", "500"],
                     ["--cli", "host", "--relay", "host:99999"], ["--cli", "connect"]):
            with self.subTest(argv=argv), self.assertRaises(SystemExit) as ctx:
                with _quiet_stderr():
                    self.parse(*argv)
            self.assertEqual(ctx.exception.code, 2)


class ErrorTableTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_kinds_and_codes(self):
        cases = [
            (WrongPasswordError("wrong password"), "wrong_password", cli.EXIT_AUTH, "wrong password"),
            (RelayError("unknown_id", "no such id"), "unknown_id", cli.EXIT_RELAY, "unknown ID"),
            (RelayError("offline", "x"), "offline", cli.EXIT_RELAY, "not online"),
            (RelayError("unreachable", "relay h:1 is unreachable: refused"), "relay_unreachable",
             cli.EXIT_RELAY, "unreachable"),
            (ConnectionClosed("peer left"), "partner_gone", cli.EXIT_GONE, "partner gone: peer left"),
            (TransportTimeout("slow"), "timeout", cli.EXIT_GONE, "timed out"),
            (RemoteProtocolError("bad"), "protocol", cli.EXIT_GONE, "protocol error"),
            (ConfigError("bad id"), "usage", cli.EXIT_USAGE, "bad id"),
            (ValueError("boom"), "internal", cli.EXIT_ERROR, "internal error"),
        ]
        for exc, kind, status, needle in cases:
            with self.subTest(exc=exc):
                got_kind, got_status, text = cli.describe_error(exc)
                self.assertEqual((got_kind, got_status), (kind, status))
                self.assertIn(needle, text)
                self.assertNotIn("\n", text)

    def test_output_json_and_stderr(self):
        out, err = io.StringIO(), io.StringIO()
        status = cli.Output(True, out, err).error(WrongPasswordError("wrong password"))
        self.assertEqual(status, cli.EXIT_AUTH)
        self.assertEqual(json.loads(out.getvalue()),
                         {"event": "error", "kind": "wrong_password", "message": "wrong password"})
        self.assertEqual(err.getvalue(), "tagio: wrong password\n")


class FilesDirTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_a_missing_files_folder_is_made_and_a_file_is_refused(self):
        from tagio.cli.host import _files_dir
        with tempfile.TemporaryDirectory() as tmp:
            wanted = os.path.join(tmp, "host-files")
            self.assertEqual(_files_dir(wanted), os.path.abspath(wanted))
            self.assertTrue(os.path.isdir(wanted))
            self.assertEqual(_files_dir(wanted), os.path.abspath(wanted))     # there already: fine
            plain = os.path.join(tmp, "a-file")
            Path(plain).write_text("x")
            with self.assertRaisesRegex(ConfigError, "not a folder"):     # not "(File exists)"
                _files_dir(plain)
        self.assertIsNone(_files_dir(None))


class ScriptPlayerTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_a_bug_in_the_script_thread_is_kept_for_the_caller(self):
        import threading
        from tagio.cli.connect import start_script

        class BrokenSession:        # a fake for the pure thread logic: its input call has a bug
            stats = {"frames": 1}

            def send_mouse_move(self, x, y):
                raise RuntimeError("bug in the input path")
        player = start_script(BrokenSession(), [("move", (1, 2))], threading.Event())
        player.join(10)
        self.assertFalse(player.is_alive())
        self.assertEqual([type(e) for e in player.errors], [RuntimeError])


class ProcessTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.config = self._tmp.name
        self.addCleanup(self._tmp.cleanup)

    def test_version_and_help(self):
        r = run_gui("--version")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, f"TagIO {tagio.__version__}"))
        r = run_gui("--cli", "connect", "--help")
        self.assertEqual(r.returncode, 0)
        for word in ("--password", "--snapshot", "--duration", "--config-dir", "--json"):
            self.assertIn(word, r.stdout)
        self.assertNotIn("--script", r.stdout)          # hidden test option

    def test_bad_id_is_one_line(self):
        r = run_gui("--cli", "connect", "12345", "--password", "x", "--config-dir", self.config,
                    "--direct-bind", "127.0.0.1",
                    "--relay", f"127.0.0.1:{closed_port()}", "--json")
        self.assertEqual(r.returncode, cli.EXIT_USAGE)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("not a TagIO ID", r.stderr)
        self.assertEqual(json.loads(r.stdout)["kind"], "usage")

    def test_unusable_config_dir(self):
        not_a_dir = Path(self.config) / "file"
        not_a_dir.write_text("x")
        r = run_gui("--cli", "connect", "123456789", "--password", "pw", "--config-dir", str(not_a_dir),
                    "--direct-bind", "none", "--relay", f"127.0.0.1:{closed_port()}")
        self.assertEqual(r.returncode, cli.EXIT_USAGE, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(f"cannot read settings {not_a_dir}", r.stderr)

    def test_identity_key_cannot_be_created(self):
        from tagio.client.core import Client
        from tagio.client.settings import Settings
        not_a_dir = Path(self.config) / "file"
        not_a_dir.write_text("x")
        with self.assertRaises(ConfigError) as ctx:
            Client(not_a_dir, relay="127.0.0.1:9", settings=Settings(self.config), direct_bind=None)
        self.assertIn("cannot create this machine's key", str(ctx.exception))

    def test_missing_password_without_terminal(self):
        r = run_gui("--cli", "connect", "123456789", "--config-dir", self.config, "--direct-bind", "none",
                    "--relay", f"127.0.0.1:{closed_port()}")
        self.assertEqual(r.returncode, cli.EXIT_USAGE)
        self.assertIn("a password is needed", r.stderr)

    def test_direct_port_in_use(self):
        # A pure viewer binds only UDP on its direct port (no TCP listener: tagio.client.paths), so
        # a UDP socket is what takes that port from it.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
            busy.bind(("127.0.0.1", 0))
            port = busy.getsockname()[1]
            r = run_gui("--cli", "connect", "123456789", "--password", "pw", "--config-dir", self.config,
                        "--direct-bind", f"127.0.0.1:{port}", "--relay", f"127.0.0.1:{closed_port()}")
        self.assertEqual(r.returncode, cli.EXIT_USAGE, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(f"cannot listen for direct connections on 127.0.0.1:{port}", r.stderr)

    def test_password_from_stdin(self):
        common = ["--cli", "connect", "123456789", "--password", "-", "--config-dir", self.config,
                  "--direct-bind", "none", "--relay", f"127.0.0.1:{closed_port()}"]
        r = run_gui(*common, stdin_text="")
        self.assertEqual(r.returncode, cli.EXIT_USAGE)
        self.assertIn("no password on standard input", r.stderr)
        r = run_gui(*common, stdin_text="s3cret-from-stdin\n")
        self.assertEqual(r.returncode, cli.EXIT_RELAY, r.stderr)      # got past the password
        self.assertNotIn("s3cret-from-stdin", r.stdout + r.stderr)

    @skip_on_windows(NO_DISPLAY)
    def test_window_without_display(self):
        r = run_gui("--config-dir", self.config, "--relay", f"127.0.0.1:{closed_port()}")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    @skip_on_windows(NO_DISPLAY)
    def test_host_without_a_screen(self):
        r = run_gui("--cli", "host", "--config-dir", self.config, "--relay", f"127.0.0.1:{closed_port()}")
        self.assertEqual(r.returncode, cli.EXIT_USAGE)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("cannot capture the screen", r.stderr)

    @skip_unless_xvfb
    def test_window_opens_and_sigterm_closes_it(self):
        with Xvfb(width=800, height=600) as xvfb:
            env = dict(xvfb.env(), PYTHONPATH=str(ROOT))
            env.pop("TAGIO_RELAY", None)
            proc = subprocess.Popen([sys.executable, str(GUI), "--config-dir", self.config,
                                     "--relay", f"127.0.0.1:{closed_port()}"], env=env, cwd=str(ROOT),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                found = subprocess.run(["xdotool", "search", "--sync", "--name", "TagIO"], env=env,
                                       capture_output=True, text=True, timeout=30)
                self.assertTrue(found.stdout.split(), "no TagIO window appeared")
            finally:
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=20)
            self.assertEqual(proc.returncode, 0, err)
            self.assertNotIn("Traceback", err)

    def test_relay_unreachable(self):
        port = closed_port()
        for command in (["connect", "123456789", "--password", "pw"],):   # host: see test_e2e
            with self.subTest(command=command[0]):
                r = run_gui("--cli", *command, "--config-dir", self.config, "--json",
                            "--relay", f"127.0.0.1:{port}", "--direct-bind", "127.0.0.1")
                self.assertEqual(r.returncode, cli.EXIT_RELAY, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(f"127.0.0.1:{port} is unreachable", r.stderr)
                last = json.loads(r.stdout.strip().splitlines()[-1])
                self.assertEqual(last["kind"], "relay_unreachable")
                self.assertNotIn("password", r.stdout)   # no ready line, no secret

    def test_a_damaged_settings_file_is_told_in_plain_words(self):
        """The warning is for people: what happened and where the old file is, not the JSON parser's
        "Expecting ',' delimiter: line 2 column 1 (char 32)" (that goes to the log)."""
        settings = Path(self.config) / "settings.json"
        for content, words in (('{"relay": "127.0.0.1:9", "fps_cap": 5\n', ("damaged", "default settings",
                                                                            str(settings) + ".bad")),
                               ('{"fps_cap": "fast"}', ("not valid", "fps_cap"))):
            with self.subTest(content=content):
                settings.write_text(content)
                r = run_gui("--cli", "connect", "123456789", "--password", "pw", "--config-dir", self.config,
                            "--direct-bind", "none", "--relay", f"127.0.0.1:{closed_port()}", "--json")
                warning = json.loads(r.stdout.splitlines()[0])
                self.assertEqual(warning["event"], "warning", r.stdout)
                for word in words:
                    self.assertIn(word, warning["message"])
                for jargon in ("Expecting", "column", "char "):
                    self.assertNotIn(jargon, warning["message"])

    def test_a_short_unattended_password_is_refused(self):
        """--password lets partners in with no prompt: fewer than 10 characters is one plain line and
        exit status 2, from the flag and from stdin alike, and the line never repeats the password."""
        for args, stdin_text in ((["--password", "short-pw1"], None), (["--password", "-"], "tiny-pw-9\n")):
            with self.subTest(args=args):
                r = run_gui("--cli", "host", *args, "--config-dir", self.config, "--relay",
                            f"127.0.0.1:{closed_port()}", "--direct-bind", "127.0.0.1", stdin_text=stdin_text)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn("at least 10 characters", r.stderr)
                self.assertNotIn("short-pw1", r.stderr)
                self.assertNotIn("tiny-pw-9", r.stderr)
                self.assertNotIn("Password:", r.stdout)               # no ready line


class _quiet_stderr:
    def __enter__(self):
        self._old, sys.stderr = sys.stderr, io.StringIO()

    def __exit__(self, *exc):
        sys.stderr = self._old


if __name__ == "__main__":
    unittest.main()
