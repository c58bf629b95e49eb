"""This machine's clipboard, without Tk: read it, write it, and hear when it changes.

Theory of operation. A session shares the clipboard both ways, in the Tk window and in the
command-line host alike, so the platform clipboard is reached here directly, never through Tk:

  X11      tagio.session.clipboard_x11: a python-xlib connection and one thread that owns it. It
           owns the CLIPBOARD selection to write (and answers other programs' requests, INCR for
           large data), converts the selection to read, and hears changes from XFixes.
  Windows  tagio.session.clipboard_win: the Win32 clipboard via ctypes (CF_UNICODETEXT, PNG or
           CF_DIB for images), changes seen by polling GetClipboardSequenceNumber.
  macOS    `pbcopy` / `pbpaste` for text, changes seen by polling (MacClipboard below).

Every backend offers the same small interface:

  read() -> (mime, bytes) | None     what the clipboard holds now (text as UTF-8, images as PNG)
  write(mime, data)                  put a value on the clipboard (returns at once)
  watch(callback)                    callback(Content) from the backend's thread on each change
                                     made by another program (never for our own writes)
  close()                            stop the thread and release the clipboard

MIME types are those of tagio.protocol.session: CLIP_TEXT and CLIP_PNG. `Content.data` is None when
the clipboard held more than the backend's `max_bytes` (then `size` is at least that much): the
caller says so to the user instead of sharing a truncated value.
"""

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

from tagio.protocol.session import CLIP_PNG, CLIP_TEXT, MAX_MESSAGE

log = logging.getLogger("tagio.clipboard")

DEFAULT_MAX_BYTES = MAX_MESSAGE         # never hold more than one message's worth of clipboard
POLL_INTERVAL = 0.25                    # seconds between looks where the platform cannot notify
COMMAND_TIMEOUT = 2.0                   # pbcopy / pbpaste


@dataclass
class Content:
    """One clipboard value: `data` None when it was larger than the reader's bound."""
    mime: str
    data: bytes | None
    size: int


def open_clipboard(display=None, max_bytes=DEFAULT_MAX_BYTES):
    """The clipboard backend for this platform (X11 `display`, None: $DISPLAY), or None when there
    is none here (no X server, python-xlib missing, a Wayland-only session): sharing is then off."""
    opener = _OPENERS.get(_platform())
    if opener is None:
        return None
    try:
        return opener(display, max_bytes)
    except Exception:       # whatever the platform layer raises, the clipboard is out of reach
        log.debug("no clipboard here", exc_info=True)
        return None


def _platform():
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "x11"


def _open_x11(display, max_bytes):
    if display is None and not os.environ.get("DISPLAY"):
        return None
    from tagio.session.clipboard_x11 import X11Clipboard
    return X11Clipboard.open(display, max_bytes)


def _open_windows(_display, max_bytes):
    from tagio.session.clipboard_win import WindowsClipboard
    return WindowsClipboard(max_bytes)


def _open_macos(_display, max_bytes):
    return MacClipboard(max_bytes)


_OPENERS = {"x11": _open_x11, "windows": _open_windows, "macos": _open_macos}


class PollingWatcher:
    """A thread that calls `probe()` every POLL_INTERVAL and `callback(Content)` when the value it
    returns (a change token) differs from the last; `fetch()` reads the new Content. Used where the
    platform has no change notification (Windows: the sequence number; macOS: the text itself)."""

    def __init__(self, probe, fetch, name):
        self._probe, self._fetch, self._name = probe, fetch, name
        self._stop = threading.Event()
        self._thread = None
        self._callback = None
        self.ignore_token = None        # the token our own last write produced

    def start(self, callback):
        self._callback = callback
        self._last = self._probe()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(POLL_INTERVAL):
            try:
                self._look()
            except Exception:       # a clipboard another program holds open: look again later
                log.debug("clipboard poll failed", exc_info=True)

    def _look(self):
        token = self._probe()
        if token == self._last:
            return
        self._last = token
        if token == self.ignore_token:
            return
        content = self._fetch()
        if content is not None:
            self._callback(content)

    def close(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)


_UTF8_ENV = dict(os.environ, LANG="en_US.UTF-8")     # pbcopy/pbpaste pick their encoding from LANG


class MacClipboard:
    """Text only, through pbcopy/pbpaste (images would need AppKit, which we do not depend on)."""

    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._watcher = PollingWatcher(self._paste, self._content, "clipboard-mac")

    def _paste(self):
        done = subprocess.run(["pbpaste"], capture_output=True, timeout=COMMAND_TIMEOUT, env=_UTF8_ENV)
        return done.stdout if done.returncode == 0 else None

    def _content(self):
        data = self._paste()
        if not data:
            return None
        if len(data) > self.max_bytes:
            return Content(CLIP_TEXT, None, len(data))
        return Content(CLIP_TEXT, data, len(data))

    def read(self):
        content = self._content()
        return None if content is None or content.data is None else (content.mime, content.data)

    def write(self, mime, data):
        if mime != CLIP_TEXT:
            return      # pbcopy takes text only
        self._watcher.ignore_token = data
        subprocess.run(["pbcopy"], input=data, timeout=COMMAND_TIMEOUT, check=False, env=_UTF8_ENV)

    def watch(self, callback):
        self._watcher.start(callback)

    def close(self):
        self._watcher.close()


__all__ = ["CLIP_PNG", "CLIP_TEXT", "Content", "open_clipboard", "PollingWatcher", "MacClipboard"]
