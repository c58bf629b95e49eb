"""A private Xvfb display for GUI, capture and input-injection tests.

Theory of operation: `Xvfb -displayfd FD` lets the X server pick a free display number itself and
write it to FD once it accepts connections, so parallel test runs never race for ":N" and we never
poll with sleeps. `start()` reads that number (bounded by a timeout), then confirms a client can
connect (the X11 unix socket answers). `stop()` terminates the server and waits for it.

    with Xvfb(width=1280, height=800) as xv:
        subprocess.run(["xdotool", "getmouselocation"], env=xv.env())

Tk never closes an X connection it opened, and its event loop services every display it ever
used: once such an X server is gone, the next Tk update anywhere in the process hits libX11's fatal
I/O error handler and the process exits. In-process Tk tests therefore use `shared_xvfb()`, one
server per geometry that lives until the process ends.

`skip_unless_xvfb` skips a test (or class) with a clear reason only when Xvfb or xdotool is missing.
"""

import atexit
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

START_TIMEOUT = 15.0
_REQUIRED = ("Xvfb", "xdotool")


def xvfb_available() -> bool:
    """True when Xvfb and xdotool are installed (POSIX only)."""
    return os.name == "posix" and all(shutil.which(tool) for tool in _REQUIRED)


def _missing_reason() -> str:
    if os.name != "posix":
        return "Xvfb tests need a POSIX system"
    missing = [tool for tool in _REQUIRED if not shutil.which(tool)]
    return f"needs {' and '.join(missing)} (apt-get install xvfb xdotool)"


def skip_unless_xvfb(obj):
    """Decorator for a test function or class: skip unless Xvfb and xdotool are installed."""
    if xvfb_available():
        return obj
    return unittest.skip(_missing_reason())(obj)


def _die_with_parent():
    """In the child before exec: on Linux, get SIGTERM when the test process dies, so a crashed
    run (libX11's fatal I/O handler calls exit) leaves no orphaned X servers behind. The signal
    follows the *thread* that started the server: start Xvfb from a thread that outlives its use."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Xvfb:
    """One Xvfb server on a display number it picks itself."""

    def __init__(self, width=1280, height=800, depth=24):
        self.width, self.height, self.depth = width, height, depth
        self.display = None
        self.proc = None

    def start(self) -> "Xvfb":
        if self.proc is not None:
            return self
        return self._launch(lambda fd: ["Xvfb", "-displayfd", str(fd), "-screen", "0",
                                        f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp",
                                        "-noreset"])

    def _launch(self, argv_for) -> "Xvfb":
        """Start the X server `argv_for(fd)` names, which writes its display number to fd (-displayfd),
        and wait until it accepts connections."""
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(argv_for(write_fd), pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        finally:
            os.close(write_fd)
        try:
            number = self._read_display_number(read_fd)
        except BaseException:
            os.close(read_fd)
            self.stop()
            raise
        os.close(read_fd)
        self.display = f":{number}"
        self._wait_for_socket(number)
        return self

    def _read_display_number(self, fd) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError("Xvfb did not start (no display number reported)")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 32)
                if not chunk and self.proc.poll() is not None:
                    raise RuntimeError("Xvfb exited during start-up")
                data += chunk
        return int(data.strip())

    def _wait_for_socket(self, number) -> None:
        path = f"/tmp/.X11-unix/X{number}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(path)
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Xvfb display :{number} does not accept connections")

    def env(self) -> dict:
        """A copy of os.environ with DISPLAY pointing at this server."""
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_SHARED = {}


def shared_xvfb(width=1280, height=800) -> Xvfb:
    """A started Xvfb of this size shared by the whole test process and stopped at exit.

    Use it for tests that open Tk in the test process itself (see the module docstring)."""
    key = (width, height)
    if key not in _SHARED:
        _SHARED[key] = Xvfb(width=width, height=height).start()
        atexit.register(_SHARED[key].stop)
    return _SHARED[key]
