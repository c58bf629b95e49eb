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
- UDP sockets on Windows: `recvfrom` raises for things that concern one datagram only. A datagram
  larger than the buffer is WSAEMSGSIZE (10040; Linux truncates it silently), and an ICMP "port
  unreachable" or "time exceeded" answering an earlier `sendto` is WSAECONNRESET (10054) or
  WSAENETRESET (10052) on the next `recvfrom` (Linux reports none on an unconnected socket).
  `datagram_error(exc)` names such an error (the reader drops that datagram and reads on) and
  `disable_udp_connreset(sock)` turns the ICMP reports off (SIO_UDP_CONNRESET through WSAIoctl:
  CPython's `socket.ioctl` accepts only SIO_RCVALL, SIO_KEEPALIVE_VALS and SIO_LOOPBACK_FAST_PATH).
- The Windows console of a server program (the relay): `quick_edit_off()` clears ENABLE_QUICK_EDIT_MODE,
  because a click into a QuickEdit console starts a selection and stops the program at its next write
  until Esc; `console_is_ours()` says whether the console was created for this process alone (the exe
  was double-clicked: the window closes with the process), so a start-up error waits for Enter.
  Both take a `kernel32` for tests and do nothing without a console or off Windows.
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
streams_mode = "unchanged"   # what prepare_std_streams did: "log"/"discarded" = nobody reads stderr

# winerror -> what happened: errors of one datagram, after which the UDP socket works on.
DATAGRAM_WINERRORS = {
    10040: "WSAEMSGSIZE: a datagram larger than the buffer (Windows discards it)",
    10052: "WSAENETRESET: an ICMP time-exceeded answered an earlier send",
    10054: "WSAECONNRESET: an ICMP port-unreachable answered an earlier send",
}
SIO_UDP_CONNRESET = 0x9800000C  # _WSAIOW(IOC_VENDOR, 12), mswsock.h
STD_INPUT_HANDLE = -10
ENABLE_QUICK_EDIT_MODE = 0x0040
ENABLE_EXTENDED_FLAGS = 0x0080   # must be set for a change of QuickEdit to take effect


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


def prepare_std_streams(config_dir, argv=(), *, attach=None, inherit=None) -> str:
    """Give a windowed program usable stdout/stderr. Returns "unchanged", "inherited" (Windows: the
    parent redirected our standard handles to pipes or files, and Python did not pick them up),
    "console", "log", or "discarded" when the log cannot be opened (a read-only or missing config
    folder must not stop the program before it can show anything).

    `attach` and `inherit` (tests only) replace the Windows AttachConsole and GetStdHandle steps.
    """
    global streams_mode
    streams_mode = _prepare_std_streams(config_dir, argv, attach, inherit or _inherit_std_handles)
    return streams_mode


def _prepare_std_streams(config_dir, argv, attach, inherit):
    if sys.stdout is not None and sys.stderr is not None:
        return "unchanged"
    if inherit():
        return "inherited"      # a script or test that captures our output gets it, not a console
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


STD_OUTPUT_HANDLE, STD_ERROR_HANDLE = -11, -12


def _inherit_std_handles() -> bool:
    """Windows only: when whoever started us redirected stdout/stderr (STARTF_USESTDHANDLES), use
    those handles. True when both streams are usable afterwards."""
    if not WINDOWS:
        return False
    import ctypes   # guarded: windll exists only on Windows
    import msvcrt
    get_std_handle = ctypes.windll.kernel32.GetStdHandle
    get_std_handle.restype = ctypes.c_void_p
    for name, which in (("stdout", STD_OUTPUT_HANDLE), ("stderr", STD_ERROR_HANDLE)):
        handle = get_std_handle(which)
        if getattr(sys, name) is not None or not handle or handle == ctypes.c_void_p(-1).value:
            continue
        try:
            fd = msvcrt.open_osfhandle(handle, os.O_WRONLY)
        except OSError:
            continue
        setattr(sys, name, open(fd, "w", encoding="utf-8", errors="replace", buffering=1))
    return sys.stdout is not None and sys.stderr is not None


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
    if sys.stdin is None:   # a password prompt reads the console; the shell must wait (start /wait)
        sys.stdin = open("CONIN$", "r", encoding="utf-8", errors="replace")
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


def tell_user(text: str, title: str = "TagIO", show=None) -> bool:
    """A start-up error of a windowed program: besides stderr (which went to the log), show it in a
    message box when nobody reads that stream. `show` (tests) replaces show_fatal_error."""
    if streams_mode not in ("log", "discarded"):
        return False
    return (show or show_fatal_error)(title, text)


def show_fatal_error(title: str, text: str) -> bool:
    """Show `text` in a message box (for windowed programs). False if no GUI is available.
    On Windows MessageBoxW, which needs no Tk (Tk itself may be what failed)."""
    if WINDOWS:
        try:
            import ctypes
            mb_iconerror = 0x10
            ctypes.windll.user32.MessageBoxW(None, text, title, mb_iconerror)
            return True
        except (OSError, AttributeError):
            pass
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


def datagram_error(exc: OSError):
    """What went wrong with one datagram (a DATAGRAM_WINERRORS text), or None when `exc` is an error
    of the socket itself that the caller must not ignore."""
    return DATAGRAM_WINERRORS.get(getattr(exc, "winerror", None))


def disable_udp_connreset(sock, *, wsaioctl=None) -> bool:
    """Windows: ICMP port-unreachable no longer makes this UDP socket's next recvfrom fail. True when
    done; False elsewhere (nothing to do) or when WSAIoctl refused. `wsaioctl` (tests) replaces
    ws2_32.WSAIoctl."""
    if wsaioctl is None:
        if not WINDOWS:
            return False
        import ctypes   # guarded: windll exists only on Windows
        wsaioctl = ctypes.windll.ws2_32.WSAIoctl
    import ctypes
    off, returned = ctypes.c_uint32(0), ctypes.c_uint32(0)     # BOOL FALSE in, nothing out
    result = wsaioctl(ctypes.c_size_t(sock.fileno()), ctypes.c_uint32(SIO_UDP_CONNRESET), ctypes.byref(off),
                      ctypes.sizeof(off), None, 0, ctypes.byref(returned), None, None)
    return result == 0


def _kernel32(kernel32):
    """The given fake, the real kernel32 on Windows, or None."""
    if kernel32 is not None or not WINDOWS:
        return kernel32
    import ctypes   # guarded: windll exists only on Windows
    real = ctypes.windll.kernel32
    real.GetStdHandle.restype = ctypes.c_void_p
    return real


def without_quick_edit(mode: int) -> int:
    """A console input mode with QuickEdit off (and the flag that makes that change count)."""
    return (mode & ~ENABLE_QUICK_EDIT_MODE) | ENABLE_EXTENDED_FLAGS


def quick_edit_off(kernel32=None) -> bool:
    """Windows: switch QuickEdit off for the console we run in. False when there is no console
    (GetConsoleMode fails on a pipe or file) or elsewhere."""
    kernel32 = _kernel32(kernel32)
    if kernel32 is None:
        return False
    import ctypes
    handle = kernel32.GetStdHandle(STD_INPUT_HANDLE)
    mode = ctypes.c_uint32(0)
    if not handle or not kernel32.GetConsoleMode(ctypes.c_void_p(handle), ctypes.byref(mode)):
        return False
    if not mode.value & ENABLE_QUICK_EDIT_MODE:
        return True
    return bool(kernel32.SetConsoleMode(ctypes.c_void_p(handle), ctypes.c_uint32(without_quick_edit(mode.value))))


def console_is_ours(kernel32=None) -> bool:
    """Windows: True when no other process shares our console, i.e. Windows made it for us (the exe
    was started from Explorer) and it vanishes when we exit. False in a terminal, or elsewhere."""
    kernel32 = _kernel32(kernel32)
    if kernel32 is None:
        return False
    import ctypes
    processes = (ctypes.c_uint32 * 2)()
    return kernel32.GetConsoleProcessList(processes, 2) == 1


def keep_console_open(ask=input, kernel32=None, stdin=None) -> bool:
    """After a start-up error: wait for Enter if the console would otherwise close at once (and
    its keyboard is our input: a script that started us with other input never waits)."""
    stdin = sys.stdin if stdin is None else stdin
    if not console_is_ours(kernel32) or stdin is None or not stdin.isatty():
        return False
    try:
        ask("Press Enter to close this window.")
    except (EOFError, KeyboardInterrupt, OSError):
        pass
    return True


# SetProcessDpiAwarenessContext values (windef.h): -4 is PER_MONITOR_AWARE_V2.
DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2 = -4
PROCESS_PER_MONITOR_DPI_AWARE = 2


def set_dpi_awareness(user32=None, shcore=None) -> str:
    """Windows: real pixels on every monitor, before Tk or capture start (the first call wins, later
    ones fail; a system-aware process gets a second monitor at 150% scaled). Tries Windows 10's
    per-monitor v2, then 8.1's per-monitor, then Vista's system-aware. Returns which one took
    ("per-monitor-v2", "per-monitor", "system", or "" when none / not Windows). `user32` and
    `shcore` (tests) replace the DLLs."""
    if user32 is None:
        if not WINDOWS:
            return ""
        import ctypes   # guarded: windll exists only on Windows
        user32, shcore = ctypes.windll.user32, getattr(ctypes.windll, "shcore", None)
    import ctypes
    attempts = (
        ("per-monitor-v2", lambda: user32.SetProcessDpiAwarenessContext(
            ctypes.c_void_p(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2)) != 0),
        ("per-monitor", lambda: shcore is not None and shcore.SetProcessDpiAwareness(PROCESS_PER_MONITOR_DPI_AWARE) == 0),
        ("system", lambda: user32.SetProcessDPIAware() != 0),
    )
    for name, attempt in attempts:
        try:
            if attempt():
                return name
        except (AttributeError, OSError):   # an older Windows lacks the function
            continue
    return ""
