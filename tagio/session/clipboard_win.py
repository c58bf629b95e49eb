"""The Windows clipboard through ctypes (user32 / kernel32), without Tk.

Theory of operation. Text is CF_UNICODETEXT (UTF-16-LE with a terminating NUL). Images: the
registered "PNG" format when a program put one there (browsers, Office do), else CF_DIB (a bitmap
without its file header), converted to PNG with Pillow; writing an image puts both PNG and CF_DIB
so that programs that know only bitmaps can paste it. Windows has a change notification only for
windows (AddClipboardFormatListener), so a PollingWatcher compares GetClipboardSequenceNumber every
POLL_INTERVAL; the number our own write produced is ignored (no echo to the partner).

OpenClipboard fails while another program holds the clipboard open: each access retries a few
times, then gives up quietly (the next change is another chance). The byte-level conversions
(`utf16_text`, `dib_to_png`, `png_to_dib`) are pure functions, tested on every platform; the ctypes
part runs on Windows only.
"""

import ctypes
import io
import logging
import time

from tagio.protocol.session import CLIP_PNG, CLIP_TEXT
from tagio.session.clipboard import DEFAULT_MAX_BYTES, Content, PollingWatcher

log = logging.getLogger("tagio.clipboard")

CF_UNICODETEXT = 13
CF_DIB = 8
GMEM_MOVEABLE = 0x0002
OPEN_TRIES = 10
OPEN_RETRY = 0.02           # seconds between tries while another program holds the clipboard
MAX_DIB = 64 << 20          # bytes of raw bitmap we read to make a PNG (a 4K screen is ~33 MB)
_BI_BITFIELDS = 3
_BMP_FILE_HEADER = 14


# -- pure conversions (any platform) ---------------------------------------------------------------
def utf16_text(raw: bytes) -> bytes:
    """CF_UNICODETEXT bytes (UTF-16-LE, NUL-terminated, maybe padded) -> UTF-8 bytes."""
    text = raw.decode("utf-16-le", "replace")
    end = text.find("\0")
    return (text if end < 0 else text[:end]).encode("utf-8")


def text_utf16(data: bytes) -> bytes:
    """UTF-8 bytes -> CF_UNICODETEXT bytes (with the terminating NUL)."""
    return data.decode("utf-8").encode("utf-16-le") + b"\0\0"


def dib_to_png(dib: bytes) -> bytes:
    """A CF_DIB block (BITMAPINFOHEADER or later, colour table, pixels) -> PNG bytes.

    A DIB is a .bmp file without its 14-byte file header: we put one in front (its pixel offset
    counts the header, the bit masks of BI_BITFIELDS and the colour table) and let Pillow read it.
    Raises ValueError for a block that is not a bitmap."""
    if len(dib) < 40:
        raise ValueError("DIB too short")
    header = int.from_bytes(dib[0:4], "little")
    bits = int.from_bytes(dib[14:16], "little")
    compression = int.from_bytes(dib[16:20], "little")
    used = int.from_bytes(dib[32:36], "little")
    masks = 12 if header == 40 and compression == _BI_BITFIELDS else 0
    colours = used or (1 << bits if bits <= 8 else 0)
    offset = _BMP_FILE_HEADER + header + masks + 4 * colours
    bmp = (b"BM" + (len(dib) + _BMP_FILE_HEADER).to_bytes(4, "little") + b"\0\0\0\0"
           + offset.to_bytes(4, "little") + dib)
    from PIL import Image
    try:
        image = Image.open(io.BytesIO(bmp), formats=["BMP"])
        image.load()
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"not a bitmap: {exc}") from exc
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def png_to_dib(png: bytes) -> bytes:
    """PNG bytes -> a CF_DIB block (24-bit, or 32-bit with alpha). Raises ValueError."""
    from PIL import Image
    try:
        image = Image.open(io.BytesIO(png), formats=["PNG"])
        image.load()
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"not a PNG: {exc}") from exc
    image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    out = io.BytesIO()
    image.save(out, "BMP")
    return out.getvalue()[_BMP_FILE_HEADER:]


# -- the Win32 clipboard ------------------------------------------------------------------------------
def _api():
    """user32 and kernel32 with argument and result types set (handles are pointers on 64-bit)."""
    from ctypes import wintypes
    user32, kernel32 = ctypes.WinDLL("user32", use_last_error=True), ctypes.WinDLL("kernel32")
    table = {
        (user32, "OpenClipboard"): ([wintypes.HWND], wintypes.BOOL),
        (user32, "CloseClipboard"): ([], wintypes.BOOL),
        (user32, "EmptyClipboard"): ([], wintypes.BOOL),
        (user32, "GetClipboardData"): ([wintypes.UINT], wintypes.HANDLE),
        (user32, "SetClipboardData"): ([wintypes.UINT, wintypes.HANDLE], wintypes.HANDLE),
        (user32, "IsClipboardFormatAvailable"): ([wintypes.UINT], wintypes.BOOL),
        (user32, "GetClipboardSequenceNumber"): ([], wintypes.DWORD),
        (user32, "RegisterClipboardFormatW"): ([wintypes.LPCWSTR], wintypes.UINT),
        (user32, "CreateWindowExW"): ([wintypes.DWORD, wintypes.LPCWSTR, wintypes.LPCWSTR, wintypes.DWORD]
                                      + [ctypes.c_int] * 4 + [wintypes.HWND, wintypes.HMENU,
                                                              wintypes.HINSTANCE, wintypes.LPVOID],
                                      wintypes.HWND),
        (user32, "DestroyWindow"): ([wintypes.HWND], wintypes.BOOL),
        (kernel32, "GlobalAlloc"): ([wintypes.UINT, ctypes.c_size_t], wintypes.HGLOBAL),
        (kernel32, "GlobalFree"): ([wintypes.HGLOBAL], wintypes.HGLOBAL),
        (kernel32, "GlobalLock"): ([wintypes.HGLOBAL], wintypes.LPVOID),
        (kernel32, "GlobalUnlock"): ([wintypes.HGLOBAL], wintypes.BOOL),
        (kernel32, "GlobalSize"): ([wintypes.HGLOBAL], ctypes.c_size_t),
    }
    for (dll, name), (args, result) in table.items():
        function = getattr(dll, name)
        function.argtypes, function.restype = args, result
    return user32, kernel32


class WindowsClipboard:
    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._user32, self._kernel32 = _api()
        self._png = self._user32.RegisterClipboardFormatW("PNG")
        self._watcher = PollingWatcher(self._user32.GetClipboardSequenceNumber, self._content,
                                       "clipboard-win")

    def read(self):
        content = self._content()
        return None if content is None or content.data is None else (content.mime, content.data)

    def write(self, mime, data):
        if mime == CLIP_TEXT:
            blocks = [(CF_UNICODETEXT, text_utf16(data))]
        elif mime == CLIP_PNG:
            blocks = [(self._png, data), (CF_DIB, png_to_dib(data))]
        else:
            return
        # OpenClipboard(NULL) then EmptyClipboard leaves no owner, and SetClipboardData fails
        # without one: writing needs a window of ours (a hidden STATIC one, made on this thread).
        hwnd = self._user32.CreateWindowExW(0, "STATIC", None, 0, 0, 0, 0, 0, None, None, None, None)
        try:
            with _Opened(self._user32, hwnd) as is_open:
                if not is_open:
                    return
                self._user32.EmptyClipboard()
                for fmt, block in blocks:
                    self._set(fmt, block)
        finally:
            if hwnd:
                self._user32.DestroyWindow(hwnd)
        self._watcher.ignore_token = self._user32.GetClipboardSequenceNumber()

    def watch(self, callback):
        self._watcher.start(callback)

    def close(self):
        self._watcher.close()

    # -- helpers -----------------------------------------------------------------------------------
    def _content(self):
        with _Opened(self._user32, None) as is_open:
            if not is_open:
                return None
            for fmt, mime, convert in ((CF_UNICODETEXT, CLIP_TEXT, utf16_text), (self._png, CLIP_PNG, None),
                                       (CF_DIB, CLIP_PNG, dib_to_png)):
                if self._user32.IsClipboardFormatAvailable(fmt):
                    return self._get(fmt, mime, convert)
        return None

    def _get(self, fmt, mime, convert):
        handle = self._user32.GetClipboardData(fmt)
        if not handle:
            return None
        size = self._kernel32.GlobalSize(handle)
        limit = {CF_UNICODETEXT: 2 * self.max_bytes + 2, CF_DIB: MAX_DIB}.get(fmt, self.max_bytes)
        if size > limit:
            return Content(mime, None, size // 2 if fmt == CF_UNICODETEXT else size)
        pointer = self._kernel32.GlobalLock(handle)
        if not pointer:
            return None
        try:
            raw = ctypes.string_at(pointer, size)
        finally:
            self._kernel32.GlobalUnlock(handle)
        try:
            data = convert(raw) if convert is not None else raw
        except ValueError:
            log.debug("clipboard bitmap not readable", exc_info=True)
            return None
        return Content(mime, data if len(data) <= self.max_bytes else None, len(data))

    def _set(self, fmt, block):
        handle = self._kernel32.GlobalAlloc(GMEM_MOVEABLE, len(block))
        if not handle:
            return
        pointer = self._kernel32.GlobalLock(handle)
        if not pointer:
            self._kernel32.GlobalFree(handle)
            return
        ctypes.memmove(pointer, block, len(block))
        self._kernel32.GlobalUnlock(handle)
        if not self._user32.SetClipboardData(fmt, handle):
            self._kernel32.GlobalFree(handle)       # on success the system owns the memory


class _Opened:
    """`with` block holding the clipboard open (True) or not obtained after OPEN_TRIES (False)."""

    def __init__(self, user32, hwnd):
        self._user32, self._hwnd, self._open = user32, hwnd, False

    def __enter__(self):
        for _ in range(OPEN_TRIES):
            if self._user32.OpenClipboard(self._hwnd):
                self._open = True
                return True
            time.sleep(OPEN_RETRY)      # another program has it open for a moment
        return False

    def __exit__(self, *exc):
        if self._open:
            self._user32.CloseClipboard()
