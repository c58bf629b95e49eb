"""The host's pointer on Windows: position and shape from Win32, as tagio.session.cursor does on X11.

Theory of operation: GDI grabs do not contain the pointer, and pynput's position is not there in a
view-only session (no injector), so a Windows host sent no pointer at all. `Win32CursorProbe` has
CursorProbe's interface (position, shape, close): GetCursorInfo gives the position (physical pixels,
the process being per-monitor DPI aware) and the HCURSOR, which serves as the shape's serial;
when it changes, GetIconInfo gives the hot spot and the bitmaps, and GetDIBits reads them as 32-bit
top-down rows. Two kinds of cursor exist:

- colour (hbmColor set): BGRA pixels; old cursors carry no alpha, then the AND mask says which
  pixels are transparent (`color_to_rgba`);
- monochrome (hbmColor NULL): one mask bitmap twice as tall, the AND mask over the XOR mask
  (`mono_to_rgba`): AND 0 / XOR 0 black, 0 / 1 white, 1 / 0 transparent, 1 / 1 "invert the
  screen", which a picture cannot do: drawn black, as the I-beam must stay visible on white.

GetDIBits converts a 1-bit mask to 32-bit pixels itself (0 -> 0x000000, 1 -> 0xFFFFFF), so the pure
functions only ever see 32-bit rows. They are tested everywhere; the ctypes calls run on Windows.
"""

import sys

from tagio.session.cursor import MAX_SIDE, CursorShape

WINDOWS = sys.platform == "win32"
CURSOR_SHOWING = 0x0001
DIB_RGB_COLORS = 0


def _mask_set(pixels, i) -> bool:
    """Is pixel i of a 32-bit converted 1-bit mask set (white)?"""
    return pixels[4 * i] != 0 or pixels[4 * i + 1] != 0 or pixels[4 * i + 2] != 0


def mono_to_rgba(and_pixels: bytes, xor_pixels: bytes, width: int, height: int) -> bytes:
    """A monochrome cursor's AND and XOR masks (32-bit pixels each) -> RGBA bytes."""
    out = bytearray(width * height * 4)
    for i in range(width * height):
        a, x = _mask_set(and_pixels, i), _mask_set(xor_pixels, i)
        if a and not x:
            continue                                    # transparent: stays 0, 0, 0, 0
        value = 255 if (x and not a) else 0             # white, else black (incl. "invert")
        out[4 * i:4 * i + 4] = bytes((value, value, value, 255))
    return bytes(out)


def color_to_rgba(bgra: bytes, and_pixels: bytes, width: int, height: int) -> bytes:
    """A colour cursor's BGRA pixels (and its AND mask) -> RGBA bytes. Alpha from the pixels when
    they have any, else from the mask (set = transparent)."""
    has_alpha = any(bgra[3::4])
    out = bytearray(width * height * 4)
    for i in range(width * height):
        b, g, r, alpha = bgra[4 * i:4 * i + 4]
        if not has_alpha:
            alpha = 0 if and_pixels and _mask_set(and_pixels, i) else 255
        out[4 * i:4 * i + 4] = bytes((r, g, b, alpha))
    return bytes(out)


def crop_shape(serial, hot_x, hot_y, width, height, rgba) -> CursorShape:
    """At most MAX_SIDE square (what the Cursor message carries), the hot spot kept inside."""
    w, h = min(width, MAX_SIDE), min(height, MAX_SIDE)
    if (w, h) != (width, height):
        rgba = b"".join(rgba[row * width * 4:row * width * 4 + w * 4] for row in range(h))
    return CursorShape(serial, min(hot_x, max(w - 1, 0)), min(hot_y, max(h - 1, 0)), w, h, rgba)


class Win32CursorProbe:
    """CursorProbe's interface on Windows (one thread: the capture thread)."""

    def __init__(self, user32, gdi32):
        self._user32, self._gdi32 = user32, gdi32
        self._serial, self._shape = None, None

    @classmethod
    def open(cls, display=None):
        """A probe on Windows, None elsewhere."""
        if not WINDOWS:
            return None
        import ctypes   # guarded: WinDLL exists only on Windows
        user32, gdi32 = ctypes.WinDLL("user32"), ctypes.WinDLL("gdi32")   # our own function objects:
        user32.GetDC.restype = ctypes.c_void_p     # restypes set here reach no other library's calls
        return cls(user32, gdi32)

    def _info(self):
        import ctypes
        from ctypes import wintypes

        class CURSORINFO(ctypes.Structure):
            _fields_ = [("cbSize", wintypes.DWORD), ("flags", wintypes.DWORD),
                        ("hCursor", ctypes.c_void_p), ("ptScreenPos", wintypes.POINT)]
        info = CURSORINFO()
        info.cbSize = ctypes.sizeof(CURSORINFO)
        if not self._user32.GetCursorInfo(ctypes.byref(info)):
            raise OSError("GetCursorInfo failed")
        return info

    def position(self):
        info = self._info()
        return info.ptScreenPos.x, info.ptScreenPos.y

    def shape(self):
        """The current cursor as a CursorShape; the same object again while the HCURSOR is the same."""
        info = self._info()
        if not info.flags & CURSOR_SHOWING or not info.hCursor:
            return None
        if info.hCursor != self._serial:
            self._shape, self._serial = self._read_shape(info.hCursor), info.hCursor
        return self._shape

    def _read_shape(self, handle):
        import ctypes
        from ctypes import wintypes

        class ICONINFO(ctypes.Structure):
            _fields_ = [("fIcon", wintypes.BOOL), ("xHotspot", wintypes.DWORD), ("yHotspot", wintypes.DWORD),
                        ("hbmMask", ctypes.c_void_p), ("hbmColor", ctypes.c_void_p)]
        icon = ICONINFO()
        if not self._user32.GetIconInfo(ctypes.c_void_p(handle), ctypes.byref(icon)):
            return None
        try:
            if icon.hbmColor:
                width, height, color = self._bits(icon.hbmColor)
                _w, _h, mask = self._bits(icon.hbmMask) if icon.hbmMask else (0, 0, b"")
                rgba = color_to_rgba(color, mask, width, height)
            else:
                width, double, mask = self._bits(icon.hbmMask)
                height = double // 2
                half = width * height * 4
                rgba = mono_to_rgba(mask[:half], mask[half:2 * half], width, height)
        finally:
            for bitmap in (icon.hbmMask, icon.hbmColor):
                if bitmap:
                    self._gdi32.DeleteObject(ctypes.c_void_p(bitmap))
        return crop_shape(handle, icon.xHotspot, icon.yHotspot, width, height, rgba)

    def _bits(self, bitmap):
        """(width, height, 32-bit top-down pixels) of an HBITMAP."""
        import ctypes
        from ctypes import wintypes

        class BITMAP(ctypes.Structure):
            _fields_ = [("bmType", wintypes.LONG), ("bmWidth", wintypes.LONG), ("bmHeight", wintypes.LONG),
                        ("bmWidthBytes", wintypes.LONG), ("bmPlanes", wintypes.WORD),
                        ("bmBitsPixel", wintypes.WORD), ("bmBits", ctypes.c_void_p)]

        class BITMAPINFOHEADER(ctypes.Structure):
            _fields_ = [("biSize", wintypes.DWORD), ("biWidth", wintypes.LONG), ("biHeight", wintypes.LONG),
                        ("biPlanes", wintypes.WORD), ("biBitCount", wintypes.WORD),
                        ("biCompression", wintypes.DWORD), ("biSizeImage", wintypes.DWORD),
                        ("biXPelsPerMeter", wintypes.LONG), ("biYPelsPerMeter", wintypes.LONG),
                        ("biClrUsed", wintypes.DWORD), ("biClrImportant", wintypes.DWORD)]

        class BITMAPINFO(ctypes.Structure):   # room for the two colours a 1-bit bitmap reports
            _fields_ = [("bmiHeader", BITMAPINFOHEADER), ("bmiColors", wintypes.DWORD * 2)]
        bm = BITMAP()
        if not self._gdi32.GetObjectW(ctypes.c_void_p(bitmap), ctypes.sizeof(bm), ctypes.byref(bm)):
            raise OSError("GetObjectW failed")
        width, height = bm.bmWidth, abs(bm.bmHeight)
        info = BITMAPINFO()
        info.bmiHeader.biSize = ctypes.sizeof(BITMAPINFOHEADER)
        info.bmiHeader.biWidth, info.bmiHeader.biHeight = width, -height     # negative: top-down
        info.bmiHeader.biPlanes, info.bmiHeader.biBitCount = 1, 32
        buffer = ctypes.create_string_buffer(width * height * 4)
        dc = self._user32.GetDC(None)
        try:
            if not self._gdi32.GetDIBits(ctypes.c_void_p(dc), ctypes.c_void_p(bitmap), 0, height, buffer,
                                         ctypes.byref(info), DIB_RGB_COLORS):
                raise OSError("GetDIBits failed")
        finally:
            self._user32.ReleaseDC(None, ctypes.c_void_p(dc))
        return width, height, buffer.raw

    def close(self):
        pass
