"""Packaging: build.spec builds exactly two working executables; the client code stays portable.

Theory of operation. `FrozenBuildTest` runs PyInstaller once (setUpClass) on build.spec into a
temporary dist/work folder, so the checkout stays clean, then exercises the artefacts themselves:
exactly two files, both answer --version like the scripts do, the relay's archive holds none of the
desktop stack, the frozen relay serves /health on 127.0.0.1, and a frozen host on a private Xvfb
display serves a frozen viewer through the frozen relay. It is the slowest test (about a minute of
PyInstaller on 2 cores); it prints build time and sizes.

The other classes are fast static checks: the spec's shape, the deployment files, and an AST scan
that no client-side module calls a POSIX-only API outside a platform guard (the traps that break the
Windows build only at run time on a user's machine).
"""

import ast
import http.client
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from unittest import mock

import tagio
from tests.frozen_window import FrozenWindowSession

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build.spec"
WINDOWS = sys.platform == "win32"
EXE_SUFFIX = ".exe" if WINDOWS else ""
GUI_NAME = "tagio-gui" + EXE_SUFFIX
RELAY_NAME = "tagio_relay_server" + EXE_SUFFIX
BUILD_TIMEOUT = 600
DESKTOP_STACK = ("tkinter", "_tkinter", "PIL", "mss", "pynput", "Xlib", "tagio.ui", "tagio.session")


def pyinstaller_available() -> bool:
    try:
        import PyInstaller  # noqa: F401
        return True
    except ImportError:
        return False


def archive_modules(executable: Path) -> set:
    """Module names inside a one-file executable's PYZ archive."""
    from PyInstaller.archive.readers import CArchiveReader
    reader = CArchiveReader(str(executable))
    pyz_name = next(name for name in reader.toc if name.endswith(".pyz"))
    return set(reader.open_embedded_archive(pyz_name).toc)


class LineReader:
    """Collects a child's output lines on a thread so waits are bounded and pipes never fill."""

    def __init__(self, stream, log=None):
        self.lines = queue.Queue()
        self.seen = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()
        self._tailing = log is not None
        if log is not None:     # a windowed Windows program may write here instead (tagio.platform)
            threading.Thread(target=self._tail, args=(Path(log),), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def _tail(self, path, polls=600):
        """Feed the lines appended to `path` (a log file has no end to wait on: poll, 60 s at most)."""
        offset = 0
        for _ in range(polls):
            if path.exists():
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(offset)
                    for line in iter(f.readline, ""):
                        if line.endswith("\n"):
                            self.lines.put(line)
                            offset = f.tell()
            time.sleep(0.1)

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                if self._tailing:
                    continue                # the pipe ended; the log tail may still deliver
                break
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no matching line within {timeout}s; got: {''.join(self.seen)[-2000:]}")


def stop_process(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ------------------------------------------------------------------------------- the frozen programs

def skip_unless_required(reason):
    """Skip with `reason`, except in CI (TAGIO_REQUIRE_FROZEN=1), where a skipped frozen test would
    make a green job prove nothing: there it fails."""
    if os.environ.get("TAGIO_REQUIRE_FROZEN") == "1":
        raise AssertionError(f"TAGIO_REQUIRE_FROZEN=1 but {reason}")
    raise unittest.SkipTest(reason)


class FrozenBuildTest(FrozenWindowSession, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not pyinstaller_available():
            skip_unless_required("PyInstaller is not installed (pip install pyinstaller)")
        cls._tmp = tempfile.TemporaryDirectory(prefix="tagio-build-")
        cls.tmp = Path(cls._tmp.name)
        cls.dist = cls.tmp / "dist"
        before = {name: (ROOT / name).exists() for name in ("dist", "build")}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--log-level", "WARN",
             "--distpath", str(cls.dist), "--workpath", str(cls.tmp / "work")],
            cwd=str(cls.tmp), capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        cls.build_seconds = time.monotonic() - started
        cls.build_output = result.stdout + result.stderr
        cls.build_rc = result.returncode
        cls.tree_dirtied = [name for name, existed in before.items()
                            if not existed and (ROOT / name).exists()]
        if cls.build_rc == 0:
            sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(cls.dist.iterdir()))
            print(f"\n  pyinstaller build.spec: {cls.build_seconds:.0f} s; {sizes}", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def setUp(self):
        if self.build_rc != 0:
            self.fail(f"PyInstaller failed (rc {self.build_rc}):\n{self.build_output[-4000:]}")

    def env(self, **extra):
        env = dict(os.environ, **extra)
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "PORT", "AUTH_SECRET", "PUBLIC_IP"):
            env.pop(name, None)
        env.update(extra)
        return env

    def start_relay(self):
        """The frozen relay on 127.0.0.1, any free port; returns (proc, port)."""
        env = self.env(TAGIO_RELAY_STATE=str(self.tmp / f"relay-state-{time.monotonic_ns()}.json"))
        proc = subprocess.Popen([str(self.dist / RELAY_NAME), "--bind", "127.0.0.1:0"], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=str(self.tmp))
        self.addCleanup(stop_process, proc)
        line = LineReader(proc.stdout).wait_for(lambda s: "listening on" in s, timeout=30)
        return proc, int(re.search(r"listening on \S+:(\d+)", line).group(1))

    def test_exactly_two_executables(self):
        self.assertEqual(sorted(p.name for p in self.dist.iterdir()), sorted([GUI_NAME, RELAY_NAME]))
        for name in (GUI_NAME, RELAY_NAME):
            self.assertTrue((self.dist / name).is_file(), name)   # one-file: not a folder
        self.assertEqual(self.tree_dirtied, [], "the build wrote into the checkout")

    def test_version_matches_the_scripts(self):
        programs = [(GUI_NAME, "tagio-gui.py"), (RELAY_NAME, "tagio_relay_server.py")]
        if sys.platform == "win32":
            programs = programs[1:]   # the windowed GUI has no console to print to (see tagio/platform.py)
        for frozen, script in programs:
            with self.subTest(program=frozen):
                got = subprocess.run([str(self.dist / frozen), "--version"], capture_output=True,
                                     text=True, timeout=60, env=self.env(), cwd=str(self.tmp))
                want = subprocess.run([sys.executable, str(ROOT / script), "--version"], capture_output=True,
                                      text=True, timeout=60, env=self.env(PYTHONPATH=str(ROOT)))
                self.assertEqual(got.returncode, 0, got.stderr)
                self.assertEqual(got.stdout.strip(), want.stdout.strip())
                self.assertRegex(got.stdout, r"\d+\.\d+")
        if sys.platform != "win32":
            gui = subprocess.run([str(self.dist / GUI_NAME), "--version"], capture_output=True, text=True,
                                 timeout=60)
            self.assertIn(tagio.__version__, gui.stdout)

    def test_relay_holds_no_desktop_stack_and_gui_has_its_hidden_imports(self):
        relay = archive_modules(self.dist / RELAY_NAME)
        leaked = sorted(m for m in relay if any(m == p or m.startswith(p + ".") for p in DESKTOP_STACK))
        self.assertEqual(leaked, [])
        self.assertIn("tagio.relay.server", relay)
        gui = archive_modules(self.dist / GUI_NAME)
        backend = {"win32": "pynput.keyboard._win32", "darwin": "pynput.keyboard._darwin"}.get(
            sys.platform, "pynput.keyboard._xorg")
        for module in ("Crypto.PublicKey._nist_ecc", "Crypto.PublicKey._edwards", "tagio.crypto.handshake",
                       "tagio.cli.connect", "tkinter", "PIL._tkinter_finder", backend):
            self.assertIn(module, gui)
        if (ROOT / "tagio" / "net" / "connect.py").exists():
            self.assertIn("tagio.net.connect", gui)    # imported by name, see tagio/client/paths.py

    def test_frozen_relay_serves_health(self):
        proc, port = self.start_relay()
        for path in ("/health", "/healthz"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            self.assertEqual(response.status, 200, path)
            self.assertEqual(json.loads(body)["status"], "ok")
        self.assertIsNone(proc.poll())

    def test_frozen_window_opens(self):
        """The bundled Tcl/Tk works: the frozen GUI opens its main window (on Xvfb here, on the
        desktop of the Windows runner there)."""
        config = self.tmp / "window"
        with socket_closed_port() as port:
            if WINDOWS:
                env, find = self.env(TAGIO_CONFIG_DIR=str(config)), find_window_win32
            else:
                display = self.private_display(800, 600)
                env, find = self.env(DISPLAY=display.display), lambda title: find_window_x11(display, title)
            gui = subprocess.Popen([str(self.dist / GUI_NAME), "--relay", f"127.0.0.1:{port}", "--config-dir",
                                    str(config)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, cwd=str(self.tmp))
            self.addCleanup(stop_process, gui)
            deadline, found = time.monotonic() + 45, False
            while time.monotonic() < deadline and not found and gui.poll() is None:
                found = find("TagIO")
                time.sleep(0.3)
        self.assertTrue(found, f"no TagIO window (rc={gui.poll()})")
        self.assertIsNone(gui.poll())
        self.assertTrue((config / "identity.pem").exists())

    def private_display(self, width, height):
        from tests.xvfb import Xvfb, xvfb_available
        if not xvfb_available():
            skip_unless_required("needs Xvfb and xdotool")
        xvfb = Xvfb(width=width, height=height).start()
        self.addCleanup(xvfb.stop)
        return xvfb

    def test_frozen_host_and_viewer_session(self):
        """A frozen host serves a frozen viewer through the frozen relay: a private Xvfb display here,
        the real desktop of the runner on Windows (where the GUI is a windowed program: its lines come
        through the pipe, or through tagio.log in its config folder when Windows gave it no streams)."""
        host_config, viewer_config = self.tmp / "host", self.tmp / "viewer"
        if WINDOWS:
            host_env, size = self.env(TAGIO_CONFIG_DIR=str(host_config)), primary_monitor_size()
        else:
            host_env, size = self.env(DISPLAY=self.private_display(640, 480).display), (640, 480)
        _, port = self.start_relay()
        relay = f"127.0.0.1:{port}"
        gui = str(self.dist / GUI_NAME)
        host = subprocess.Popen([gui, "--cli", "host", "--json", "--relay", relay, "--config-dir",
                                 str(host_config), "--direct-bind", "127.0.0.1"], env=host_env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=str(self.tmp))
        self.addCleanup(stop_process, host)
        host_lines = LineReader(host.stdout, log=host_config / "tagio.log" if WINDOWS else None)
        ready = json.loads(host_lines.wait_for(lambda s: '"ready"' in s, timeout=60))
        viewer_env = self.env(TAGIO_CONFIG_DIR=str(viewer_config)) if WINDOWS else self.env()
        viewer_env.pop("DISPLAY", None)                      # the viewer is headless
        snapshot = self.tmp / "snapshot.png"
        viewer = subprocess.run([gui, "--cli", "connect", ready["id"], "--password", ready["password"],
                                 "--json", "--relay", relay, "--config-dir", str(viewer_config),
                                 # loopback only: the host may dial the viewer's candidates back
                                 "--direct-bind", "127.0.0.1",
                                 "--duration", "2", "--snapshot", str(snapshot)],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
                                env=viewer_env, cwd=str(self.tmp))
        output = viewer.stdout or read_log(viewer_config)
        self.assertEqual(viewer.returncode, 0, viewer.stderr or output[-2000:])
        events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        connected = next(e for e in events if e.get("event") == "connected")
        closed = next(e for e in events if e.get("event") == "closed")
        self.assertEqual(connected["peer"], ready["id"])
        self.assertGreater(closed["frames"], 0)
        self.assertNotIn(ready["password"], viewer.stderr)
        from PIL import Image
        with Image.open(snapshot) as image:
            self.assertEqual(image.size, size)
        host_lines.wait_for(lambda s: "session_started" in s, timeout=10)
        print(f"\n  frozen session: path={connected['path']} connect_ms={connected.get('connect_ms')} "
              f"frames={closed['frames']}", file=sys.stderr)


def read_log(config_dir: Path) -> str:
    """What a windowed program without streams wrote to its log (tagio.platform.prepare_std_streams)."""
    path = config_dir / "tagio.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def find_window_x11(display, title) -> bool:
    found = subprocess.run(["xdotool", "search", "--name", f"^{title}$"], capture_output=True,
                           text=True, timeout=10, env=display.env())
    return bool(found.stdout.strip())


def find_window_win32(title) -> bool:
    """A top-level window with exactly this title exists (Windows)."""
    import ctypes
    return bool(ctypes.windll.user32.FindWindowW(None, title))


def primary_monitor_size() -> tuple:
    """The size mss (in this process, per-monitor DPI aware like the host) gives the host's monitor 1."""
    import mss
    with mss.MSS() as sct:
        monitor = sct.monitors[1]
    return monitor["width"], monitor["height"]


# ------------------------------------------------------------------------------- static checks

class SpecShapeTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def setUp(self):
        self.source = SPEC.read_text()
        self.tree = ast.parse(self.source)

    def calls(self, name):
        return [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == name]

    def assigned_list(self, name):
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                return {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
        self.fail(f"{name} not found in build.spec")

    def test_exactly_two_exe_targets_both_one_file(self):
        exe_calls = self.calls("EXE")
        self.assertEqual(len(exe_calls), 2)
        names = {k.value.value for c in exe_calls for k in c.keywords if k.arg == "name"}
        self.assertEqual(names, {"tagio-gui", "tagio_relay_server"})
        # Written as `name = EXE(` at the top level, so a plain grep counts the targets too.
        self.assertEqual(len(re.findall(r"(?m)^\s*[a-zA-Z_]+\s*=\s*EXE\(", self.source)), 2)
        self.assertNotIn("COLLECT(", self.source)             # COLLECT would make one-folder builds

    def test_hidden_imports_and_excludes(self):
        crypto = self.assigned_list("CRYPTO_HIDDEN")
        for module in ("Crypto.PublicKey._nist_ecc", "Crypto.PublicKey._edwards", "Crypto.PublicKey._montgomery"):
            self.assertIn(module, crypto)
        for module in ("pynput.keyboard._win32", "pynput.mouse._win32", "pynput._util.win32",
                       "pynput.keyboard._xorg", "pynput.mouse._xorg", "pynput.keyboard._darwin",
                       "PIL._tkinter_finder"):
            self.assertIn(f'"{module}"', self.source)
        excludes = self.assigned_list("RELAY_EXCLUDES")
        for package in ("tkinter", "mss", "pynput", "PIL"):
            self.assertIn(package, excludes)

    def test_windows_icon_is_drawn(self):
        """make_icon() runs only in Windows builds; run its code here so CI is not the first to try."""
        func = next(n for n in self.tree.body if isinstance(n, ast.FunctionDef) and n.name == "make_icon")
        with tempfile.TemporaryDirectory() as workpath:
            namespace = {"os": os, "workpath": workpath}
            exec(compile(ast.Module(body=[func], type_ignores=[]), str(SPEC), "exec"), namespace)
            path = namespace["make_icon"]()
            from PIL import Image
            with Image.open(path) as icon:
                self.assertEqual(icon.format, "ICO")
                self.assertIn((256, 256), icon.info.get("sizes", set()) | {icon.size})

    def test_gui_windowed_only_on_windows(self):
        self.assertIn('console=not WINDOWS', self.source)


class DeploymentFilesTest(unittest.TestCase):
    def test_dockerfile(self):
        text = (ROOT / "Dockerfile").read_text()
        self.assertRegex(text, r"(?m)^FROM python:3\.\d+-slim")
        self.assertRegex(text, r"(?m)^USER (?!root)\w+")
        self.assertRegex(text, r"(?m)^EXPOSE ")
        self.assertRegex(text, r"(?m)^HEALTHCHECK .*/health")
        self.assertIn("tagio_relay_server.py", text)

    def test_dockerignore_keeps_secrets_and_builds_out(self):
        lines = (ROOT / ".dockerignore").read_text().split()
        for entry in (".git", "dist", "build", "tests"):
            self.assertIn(entry, lines)

    def test_dockerfile_healthcheck_command_works(self):
        """Run the HEALTHCHECK's own command against a real relay on 127.0.0.1."""
        text = (ROOT / "Dockerfile").read_text()
        command = re.search(r'(?m)^HEALTHCHECK .*?CMD \["python", "-c", (".*")\]\s*$', text)
        self.assertIsNotNone(command, "HEALTHCHECK must use CMD [\"python\", \"-c\", \"...\"]")
        code = json.loads(command.group(1))
        from tests.relay_fixture import start_relay
        with start_relay() as relay:
            env = dict(os.environ, PORT=str(relay.address[1]))
            ok = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        with socket_closed_port() as port:
            env = dict(os.environ, PORT=str(port))
            bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
        self.assertNotEqual(bad.returncode, 0)

    def test_render_yaml(self):
        text = (ROOT / "render.yaml").read_text()
        self.assertRegex(text, r"healthCheckPath:\s*/health")
        self.assertIn("dockerfilePath", text)
        self.assertIn("AUTH_SECRET", text)
        # Render's edge listens on 443 and forwards to $PORT: the info page must say 443.
        from tagio.relay.cli import parse_public
        public = re.search(r"key: PUBLIC_IP\b.*\n\s+value: (\S+)", text).group(1)
        self.assertTrue(parse_public(public).endswith(":443"), public)

    def test_workflow_builds_on_windows_and_linux(self):
        text = (ROOT / ".github" / "workflows" / "build.yml").read_text()
        for needle in ("windows-latest", "ubuntu-latest", "build.spec", "python -m tests",
                       "upload-artifact", "requirements.txt"):
            self.assertIn(needle, text)

    def test_yaml_files_parse(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("PyYAML not installed")
        workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "build.yml").read_text())
        self.assertEqual(workflow["jobs"]["build"]["strategy"]["matrix"]["os"], ["windows-latest", "ubuntu-latest"])
        render = yaml.safe_load((ROOT / "render.yaml").read_text())
        service = render["services"][0]
        self.assertEqual((service["type"], service["runtime"], service["healthCheckPath"]), ("web", "docker", "/health"))

    def test_render_doc_mentions_port_443(self):
        text = (ROOT / "docs" / "render_server.md").read_text()
        self.assertIn(":443", text)
        self.assertIn("TAGIO_RELAY", text)


class socket_closed_port:
    """A 127.0.0.1 port with nothing listening (bound then released)."""

    def __enter__(self):
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------------------- portability

# POSIX-only names that exist in the module on Linux but not on Windows (AttributeError there).
POSIX_ONLY_ATTRS = {
    "os": {"splice", "getuid", "geteuid", "getgid", "getegid", "fork", "setsid", "killpg", "getpgid",
           "mkfifo", "chown", "sendfile", "getloadavg", "sync", "O_NONBLOCK", "WNOHANG", "uname"},
    "signal": {"SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE", "SIGCHLD", "SIGQUIT",
               "alarm", "setitimer", "pause", "siginterrupt"},
    "socket": {"AF_UNIX", "SO_REUSEPORT", "MSG_NOSIGNAL"},
    "select": {"poll", "epoll", "kqueue"},
}
POSIX_ONLY_MODULES = {"fcntl", "termios", "pwd", "grp", "tty", "pty", "resource", "posix", "readline"}
GUARD_WORDS = ("os.name", "sys.platform", "hasattr", "getattr", "WINDOWS", "POSIX", "platform.system",
               "IS_", "_WIN", "win32")
PLATFORM_FUNCTION_WORDS = ("linux", "posix", "unix")
GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "AttributeError", "OSError", "Exception",
                    "NotImplementedError"}
CLIENT_SIDE = ["tagio/client", "tagio/session", "tagio/ui", "tagio/net", "tagio/crypto", "tagio/protocol",
               "tagio/errors.py", "tagio/platform.py", "tagio-gui.py"]


class _TrapFinder(ast.NodeVisitor):
    """Finds POSIX-only names used outside an `if <platform check>` or a try/except that handles them."""

    def __init__(self, source):
        self.source = source
        self.guards = 0
        self.found = []

    def _guarded_visit(self, node, guarded):
        self.guards += guarded
        self.generic_visit(node)
        self.guards -= guarded

    def visit_If(self, node):
        test = ast.get_source_segment(self.source, node.test) or ""
        self._guarded_visit(node, any(word in test for word in GUARD_WORDS))

    visit_IfExp = visit_If

    def visit_FunctionDef(self, node):
        # A helper named for its platform (e.g. `_linux_interface_addresses`) is called only behind a check.
        self._guarded_visit(node, any(word in node.name.lower() for word in PLATFORM_FUNCTION_WORDS))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Try(self, node):
        names = set()
        for handler in node.handlers:
            for item in ast.walk(handler.type) if handler.type else [ast.Name(id="Exception")]:
                if isinstance(item, ast.Name):
                    names.add(item.id)
        self._guarded_visit(node, bool(names & GUARD_EXCEPTIONS))

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.attr in POSIX_ONLY_ATTRS.get(node.value.id, ()):
            self._report(node, f"{node.value.id}.{node.attr}")
        self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name.split(".")[0] in POSIX_ONLY_MODULES:
                self._report(node, f"import {alias.name}")

    def visit_ImportFrom(self, node):
        if (node.module or "").split(".")[0] in POSIX_ONLY_MODULES:
            self._report(node, f"from {node.module} import ...")

    def _report(self, node, what):
        if not self.guards:
            self.found.append(f"line {node.lineno}: {what}")


def find_traps(source: str) -> list:
    finder = _TrapFinder(source)
    finder.visit(ast.parse(source))
    return finder.found


class PortabilityTest(unittest.TestCase):
    def test_the_scanner_catches_traps_and_accepts_guards(self):
        self.assertEqual(len(find_traps("import os\nos.kill(1, signal.SIGKILL)\nimport fcntl\n")), 2)
        self.assertEqual(find_traps("if sys.platform != 'win32':\n    import fcntl\n"), [])
        self.assertEqual(find_traps("try:\n    import fcntl\nexcept ImportError:\n    fcntl = None\n"), [])
        self.assertEqual(find_traps("sig = signal.SIGKILL if hasattr(signal, 'SIGKILL') else signal.SIGTERM\n"), [])
        self.assertEqual(len(find_traps("try:\n    os.splice(a, b, 1)\nexcept ValueError:\n    pass\n")), 1)
        self.assertEqual(find_traps("def _linux_addresses():\n    import fcntl\n"), [])
        self.assertEqual(len(find_traps("def addresses():\n    import fcntl\n")), 1)

    def test_client_side_modules_guard_posix_only_calls(self):
        files = []
        for entry in CLIENT_SIDE:
            path = ROOT / entry
            files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        self.assertGreater(len(files), 10)
        problems = []
        for path in files:
            problems += [f"{path.relative_to(ROOT)} {trap}" for trap in find_traps(path.read_text())]
        self.assertEqual(problems, [], "POSIX-only call without a Windows path")

    def test_config_dir_is_appdata_on_windows(self):
        from tagio.client.settings import default_config_dir
        appdata = r"C:\Users\ann\AppData\Roaming"
        with mock.patch.object(sys, "platform", "win32"):
            self.assertEqual(default_config_dir({"APPDATA": appdata}), Path(appdata) / "TagIO")
            self.assertEqual(default_config_dir({"APPDATA": appdata, "TAGIO_CONFIG_DIR": "X"}), Path("X"))
        with mock.patch.object(sys, "platform", "linux"):
            self.assertEqual(default_config_dir({"HOME": "/home/ann", "XDG_CONFIG_HOME": "/cfg"}),
                             Path("/cfg") / "tagio")

    def test_no_machine_specific_paths_in_code(self):
        pattern = re.compile(r"['\"](/work/|/root/|/home/\w+/|C:\\\\Users\\\\)")
        offenders = []
        for path in list((ROOT / "tagio").rglob("*.py")) + [ROOT / "tagio-gui.py", ROOT / "tagio_relay_server.py", SPEC]:
            if path.exists() and pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
        self.assertEqual(offenders, [])


NONE = lambda: False  # noqa: E731  (no redirected standard handles: as a double-clicked exe starts)


class PlatformHelperTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.config = Path(self._tmp.name) / "cfg"
        saved = sys.stdout, sys.stderr
        self.addCleanup(lambda: setattr(sys, "stdout", saved[0]) or setattr(sys, "stderr", saved[1]))

    def test_streams_left_alone_when_present(self):
        from tagio import platform
        self.assertEqual(platform.prepare_std_streams(self.config, ["--cli"]), "unchanged")
        self.assertFalse(self.config.exists())

    def test_windowed_program_logs_to_config_folder(self):
        from tagio import platform
        sys.stdout = sys.stderr = None                       # what a windowed Windows exe starts with
        self.assertEqual(platform.prepare_std_streams(self.config, [], attach=lambda: True, inherit=NONE), "log")
        print("hello from a windowed program")
        sys.stderr.write("an error line\n")
        sys.stdout.close()
        text = (self.config / platform.LOG_FILE).read_text()
        self.assertIn("hello from a windowed program", text)
        self.assertIn("an error line", text)
        if sys.platform != "win32":
            self.assertEqual(os.stat(self.config / platform.LOG_FILE).st_mode & 0o777, 0o600)

    def test_unwritable_config_folder_does_not_stop_a_windowed_program(self):
        from tagio import platform
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text("a file where the folder should be")
        sys.stdout = sys.stderr = None
        self.assertEqual(platform.prepare_std_streams(self.config, [], attach=lambda: False, inherit=NONE), "discarded")
        print("still fine")                                  # no AttributeError on None
        sys.stderr.write("and this too\n")
        sys.stdout.close()

    def test_cli_attaches_to_the_parent_console_when_there_is_one(self):
        from tagio import platform
        calls = []
        sys.stdout = sys.stderr = None
        self.assertEqual(platform.prepare_std_streams(self.config, ["--cli", "host"],
                                                      attach=lambda: calls.append(1) or True, inherit=NONE),
                         "console")
        self.assertEqual(calls, [1])
        sys.stdout = sys.stderr = None
        self.assertEqual(platform.prepare_std_streams(self.config, ["--cli", "host"], attach=lambda: False,
                                                      inherit=NONE), "log")
        sys.stdout.close()

    def test_redirected_handles_win_over_console_and_log(self):
        """Windows: a script capturing the windowed exe's output gets it (the handles it gave us)."""
        from tagio import platform

        def inherit():
            sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")
            return True
        sys.stdout = sys.stderr = None
        self.assertEqual(platform.prepare_std_streams(self.config, ["--cli", "connect"], inherit=inherit,
                                                      attach=lambda: self.fail("no console needed")), "inherited")
        sys.stdout.close()
        self.assertFalse(self.config.exists())                  # and no log file

    def test_kill_signal_exists_everywhere(self):
        import signal
        from tagio import platform
        self.assertIn(platform.kill_signal(), {getattr(signal, "SIGKILL", None), signal.SIGTERM})


if __name__ == "__main__":
    unittest.main()
