"""Skip markers for tests that assume one operating system, each with the reason a reader needs.

Theory of operation: the Windows CI job runs the same suite as Linux. A test that depends on
something Windows does not have (X11 and Xvfb, POSIX signals delivered to a handler, network
namespaces and nftables, pseudo-terminals, RLIMIT_NOFILE, file modes, Linux socket ioctls) is
marked here instead of failing there; a test of a Win32 code path that can only run on Windows is
marked `windows_only`. Pure tests of the Windows branches (fed the inputs Windows produces) run
everywhere and need no marker.

    @skip_on_windows(SIGNALS)
    def test_sigterm_shuts_down_cleanly(self): ...
"""

import importlib.util
import sys
import unittest

WINDOWS = sys.platform == "win32"

# Reasons, so that the same assumption reads the same way in every module.
SIGNALS = ("POSIX signals: on Windows Popen.send_signal(SIGTERM) is TerminateProcess, which runs no "
           "handler and exits with 1")
NO_DISPLAY = ("needs a machine without a screen: on Windows mss and pynput always find the desktop and "
              "Tk always opens a window")
RLIMIT = "RLIMIT_NOFILE and preexec_fn are POSIX (Windows has neither)"
LINUX_IOCTL = "FIONREAD/SIOCOUTQ through fcntl are Linux socket ioctls"
MSG_DONTWAIT = "socket.MSG_DONTWAIT does not exist on Windows"
XLIB = "python-xlib comes with pynput on Linux only"
NGINX_CONFIG = "the nginx test configuration is written for a POSIX nginx"


def skip_on_windows(reason):
    """Decorator (function or class): skip on Windows, saying which POSIX assumption the test makes."""
    return unittest.skipIf(WINDOWS, f"not on Windows: {reason}")


def windows_only(reason):
    """Decorator (function or class): a test of a real Win32 call, skipped elsewhere with `reason`."""
    return unittest.skipUnless(WINDOWS, f"Windows only: {reason}")


def skip_unless_module(name, reason):
    """Decorator: skip when the module `name` cannot be imported here (e.g. Xlib on Windows)."""
    return unittest.skipUnless(importlib.util.find_spec(name) is not None, f"needs {name}: {reason}")
