"""Portability helpers: the few places where Windows and POSIX differ, behind one small API.

Theory of operation. TagIO's client code must run unchanged on Windows, Linux and macOS, frozen
or not. Instead of scattering `sys.platform` checks, callers use these helpers:

- `prepare_std_streams(config_dir, argv)`: a windowed Windows executable (PyInstaller
  console=False, as build.spec makes tagio-gui.exe) starts with sys.stdout/sys.stderr = None, so
  `--cli` output and tracebacks would vanish. With --cli/--version/--help it attaches to the
  console of the shell that started it (AttachConsole(ATTACH_PARENT_PROCESS)); otherwise, or if
  there is none, it writes both streams to `tagio.log` in the config folder. Elsewhere it does
  nothing.
- `show_fatal_error(title, text)`: a Tk message box when there is no console to read an error in.
- `kill_signal()`: SIGKILL where it exists, else SIGTERM (Windows has no SIGKILL).
- `restrict_to_owner(path)`: chmod 600 on POSIX; on Windows the per-user %APPDATA% already is.
- `atomic_write(path, data, mode=0o600)`: the one way TagIO writes a file it must not lose (settings,
  identity key, relay bindings): a temporary file in the same folder, fsync, then os.replace, so a
  crash leaves the old file or the new one, never half of one.
"""

import os
import signal
import sys
import tempfile
from pathlib import Path

WINDOWS = sys.platform == "win32"
LOG_FILE = "tagio.log"
MAX_LOG_BYTES = 1 << 20      # the log is truncated at start once it grows past this
_CONSOLE_WORDS = ("--cli", "--version", "--help", "-h")


def is_frozen() -> bool:
    """True inside a PyInstaller executable."""
    return bool(getattr(sys, "frozen", False))


def kill_signal() -> int:
    """The strongest signal os.kill can send here."""
    return getattr(signal, "SIGKILL", signal.SIGTERM)


def restrict_to_owner(path) -> None:
    """Make a file readable by its owner only (POSIX); a no-op where modes do not apply."""
    if WINDOWS:
        return
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass


def atomic_write(path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically, creating its folder; the file gets `mode` (POSIX).

    The temporary file has a unique name (two writers never share it) and is created owner-only,
    so a secret is never readable by others, not even for a moment. Raises OSError; the temporary
    file is removed on any failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not WINDOWS:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prepare_std_streams(config_dir, argv=(), *, attach=None) -> str:
    """Give a windowed program usable stdout/stderr. Returns "console", "log", "unchanged", or
    "discarded" when the log cannot be opened (a read-only or missing config folder must not
    stop the program before it can show anything).

    `attach` (tests only) replaces the Windows AttachConsole call.
    """
    if sys.stdout is not None and sys.stderr is not None:
        return "unchanged"
    wants_console = any(word in argv for word in _CONSOLE_WORDS)
    attach = attach or _attach_parent_console
    if wants_console and attach():
        return "console"
    try:
        _redirect_to_log(Path(config_dir) / LOG_FILE)
    except OSError:
        _redirect(open(os.devnull, "w", encoding="utf-8"))
        return "discarded"
    return "log"


def _attach_parent_console() -> bool:
    """Windows only: reuse the console of the shell that started us, if any."""
    if not WINDOWS:
        return False
    import ctypes   # guarded: windll exists only on Windows
    attach_parent_process = -1
    if not ctypes.windll.kernel32.AttachConsole(attach_parent_process):
        return False
    sys.stdout = open("CONOUT$", "w", encoding="utf-8", errors="replace", buffering=1)
    sys.stderr = open("CONOUT$", "w", encoding="utf-8", errors="replace", buffering=1)
    return True


def _redirect_to_log(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "w" if path.exists() and path.stat().st_size > MAX_LOG_BYTES else "a"
    stream = open(path, mode, encoding="utf-8", errors="replace", buffering=1)
    restrict_to_owner(path)
    _redirect(stream)


def _redirect(stream) -> None:
    """Use `stream` for whichever of stdout/stderr is missing."""
    if sys.stdout is None:
        sys.stdout = stream
    if sys.stderr is None:
        sys.stderr = stream


def show_fatal_error(title: str, text: str) -> bool:
    """Show `text` in a message box (for windowed programs). False if no GUI is available."""
    try:
        import tkinter
        from tkinter import messagebox
        root = tkinter.Tk()
    except Exception:       # no tkinter, no display: the caller falls back to the log
        return False
    try:
        root.withdraw()
        messagebox.showerror(title, text, parent=root)
        return True
    finally:
        root.destroy()
