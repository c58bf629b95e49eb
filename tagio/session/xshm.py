"""Screen grabs on X11 through MIT-SHM, spoken on an X connection of our own.

Theory of operation. mss 10 already grabs through MIT-SHM, but through xcb over ctypes: many
ctypes calls and a ScreenShot object per grab, ~0.17 ms of the live host's thread CPU for a
200x100 box (~0.1 ms this way, half of it copying pixels another process just wrote), and a
polled screen is grabbed many times a frame. The X protocol for a grab is one 32-byte request
and one 32-byte reply, so `ShmGrab` speaks it itself, as tagio.session.cursor
(RawPointer) and tagio.session.damage (RawEvents) do: python-xlib connects, authenticates and
looks up the extension's major opcode, then ShmGetImage (ZPixmap, every plane, the root window)
is written to the socket with struct, the server writes the box's pixels straight into a shared
segment, and its reply says they are there. The pixels of a box are its first w*h*4 bytes (32
bits a pixel and 32-bit scanline padding: rows are packed), and `grab` hands out a copy (`bytes`):
the host keeps a grab (the screen copy, the encoder) while the next one is made. `peek` hands out
the segment itself (a memoryview, overwritten by the next grab) for what is only compared with
the host's copy and then dropped: the whole-screen safety grab, the scanlines of a polled screen.

The segment is a memfd passed to the server with ShmAttachFd (MIT-SHM 1.2, as mss does), not a
SysV segment: there is no id to remove and nothing outlives the process, even when it crashes; the
server gets the memory by the descriptor sent along the request (SCM_RIGHTS), which works only
over a local Unix socket to a server that can map it: exactly the case where shared memory works.
It is sized for the whole screen (mss's monitors[0]) and replaced by a larger one when a larger
box is asked.

Pixels come as mss gives them on Linux, B, G, R, X: `open()` returns None (the caller keeps mss)
unless the root window has depth 24 or 32, 32 bits a pixel, red/green/blue masks ff0000/ff00/ff
and least significant byte first; also off X11, without python-xlib, over TCP, without MIT-SHM
1.2, or when anything in the set-up fails (open() checks with one real grab). The connection is
used by one thread only (the capture thread); no events are asked for on it, those the server
sends every client anyway (MappingNotify) are skipped. An X error (a box outside the screen)
comes back as an error instead of the reply and raises OSError; a server that went away closes
the socket and raises ConnectionResetError, so a grab never waits for a reply that cannot come.
"""

import array
import mmap
import os
import socket
import struct

from tagio.session.xreply import REPLY, read_reply

EXTENSION = "MIT-SHM"
SHM_QUERY_VERSION, SHM_DETACH, SHM_GET_IMAGE, SHM_ATTACH_FD = 0, 2, 4, 6    # minor opcodes
NEEDS_VERSION = (1, 2)      # ShmAttachFd
Z_PIXMAP = 2
ALL_PLANES = 0xFFFFFFFF
LSB_FIRST = 0               # image byte order: B, G, R, X in memory with the masks below
BGRX_MASKS = (0xFF0000, 0x00FF00, 0x0000FF)
DEPTHS = (24, 32)
BITS_PER_PIXEL = 32
REPLY_SIZE = 32             # a reply without extra bytes (ShmGetImage's: the pixels are in the segment)
_GET_IMAGE = struct.Struct("=BBHIhhHHIBxxxII")  # python-xlib speaks native byte order to the server
_ATTACH_FD = struct.Struct("=BBHIBxxx")
_DETACH = struct.Struct("=BBHI")
_QUERY_VERSION = struct.Struct("=BBH")
_VERSION = struct.Struct("=HH")     # the QueryVersion reply's major, minor at byte 8


class ShmGrab:
    """ShmGetImage on a connection only this object uses after python-xlib opened it (see the
    module doc). `grab` raises OSError when the server answers with an error or is gone."""

    def __init__(self, conn, sock, major, root):
        self._conn, self._sock, self._major, self._root = conn, sock, major, root
        self._seg, self._map, self._view, self._size = None, None, None, 0

    @classmethod
    def open(cls, display=None, size=0):
        """A ShmGrab for `display` (None: $DISPLAY) with room for `size` bytes of pixels, or None
        where MIT-SHM cannot give mss's pixels (see the module doc)."""
        try:
            from Xlib import display as xdisplay
            conn = xdisplay.Display(display)
        except Exception:       # not X11, python-xlib missing, no display: mss grabs on its own
            return None
        try:
            grabber = cls._take_over(conn)
        except Exception:       # a server without a working MIT-SHM, or a python-xlib unlike ours
            grabber = None
        if grabber is None:
            conn.close()
            return None
        try:
            grabber.reserve(max(size, 4))
            grabber.grab({"left": 0, "top": 0, "width": 1, "height": 1})
        except Exception:       # the server cannot map our memory (a sandbox, an old server): mss it is
            grabber.close()
            return None
        return grabber

    @classmethod
    def _take_over(cls, conn):
        """The grabber on python-xlib's socket, or None when its pixels would not be BGRX or
        python-xlib does not keep its socket where this expects it."""
        ext = conn.query_extension(EXTENSION)
        inner = conn.display
        sock = getattr(inner, "socket", None)
        unread = bytes(getattr(inner, "data_recv", b"?"))   # read off the socket but not parsed
        if (ext is None or not ext.present or not isinstance(sock, socket.socket)
                or sock.family != getattr(socket, "AF_UNIX", None) or unread != b"" or not bgrx(inner.info, conn.screen())):
            return None
        grabber = cls(conn, sock, ext.major_opcode, conn.screen().root.id)
        if grabber._version() < NEEDS_VERSION:
            return None
        return grabber

    def _version(self):
        self._sock.sendall(_QUERY_VERSION.pack(self._major, SHM_QUERY_VERSION, 1))
        return _VERSION.unpack_from(read_reply(self._sock), 8)

    def reserve(self, size):
        """Make the segment at least `size` bytes: a new one attached, the old one detached."""
        fd = os.memfd_create("tagio-grab", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            new_map = mmap.mmap(fd, size)
            seg = self._conn.display.allocate_resource_id()
            request = _ATTACH_FD.pack(self._major, SHM_ATTACH_FD, 3, seg, 0)
            self._sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        finally:
            os.close(fd)        # the server holds its own descriptor now; our mapping stays
        self._release()
        self._seg, self._map, self._size = seg, new_map, size
        self._view = memoryview(new_map)

    def grab(self, box):
        """The BGRX bytes of `box` (a dict with left, top, width, height, as mss takes)."""
        size = self._get(box)       # first: it may replace the segment
        return self._map[:size]

    def peek(self, box):
        """grab() without the copy: a memoryview of the segment's first bytes, which the next grab
        overwrites (read it before). For compares in place: a whole-screen safety grab that
        finds nothing new then costs no 8 MB copy into fresh memory (page faults and all)."""
        size = self._get(box)
        return self._view[:size]

    def _get(self, box):
        """Have the server write `box`'s pixels into the segment; their size in bytes."""
        width, height = box["width"], box["height"]
        size = width * height * 4
        if size > self._size:
            self.reserve(size)
        self._sock.sendall(_GET_IMAGE.pack(self._major, SHM_GET_IMAGE, 8, self._root, box["left"], box["top"],
                                           width, height, ALL_PLANES, Z_PIXMAP, self._seg, 0))
        reply = self._sock.recv(REPLY_SIZE)
        if len(reply) != REPLY_SIZE or reply[0] != REPLY:     # rare: a short read, an event, an error
            read_reply(self._sock, reply)
        return size

    def _release(self):
        """Detach the current segment (best effort: the server may be gone) and unmap it."""
        seg, self._seg = self._seg, None
        if seg is not None:
            try:
                self._sock.sendall(_DETACH.pack(self._major, SHM_DETACH, 2, seg))
            except OSError:
                pass
        if self._map is not None:
            self._view.release()
            try:
                self._map.close()
            except BufferError:     # a peek() still read somewhere: unmapped when it is dropped
                pass
            self._map, self._view, self._size = None, None, 0

    def close(self):
        """Free the segment and the connection; safe to call twice and after the server died."""
        self._release()
        try:
            self._conn.close()
        except Exception:       # the X server is already gone
            pass


def bgrx(info, screen):
    """Do grabs of the root window come as B, G, R, X bytes (what mss gives and the host reads)?
    `info` is the connection set-up reply, `screen` its screen (python-xlib's)."""
    depth = screen.root_depth
    formats = [f for f in info.pixmap_formats if f.depth == depth]
    visuals = [v for d in screen.allowed_depths if d.depth == depth for v in d.visuals
               if v.visual_id == screen.root_visual]
    return (depth in DEPTHS and info.image_byte_order == LSB_FIRST and len(formats) == 1 and len(visuals) == 1
            and (formats[0].bits_per_pixel, formats[0].scanline_pad) == (BITS_PER_PIXEL, BITS_PER_PIXEL)
            and (visuals[0].red_mask, visuals[0].green_mask, visuals[0].blue_mask) == BGRX_MASKS)


class Shot:
    """What mss's grab returns, as far as the host reads it."""
    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw


class Grabber:
    """mss (its monitors; every grab where ShmGrab did not open) with grabs through ShmGrab where it
    did. A context manager like mss.MSS, closing both."""

    def __init__(self, sct, shm=None):
        self._sct, self._shm = sct, shm
        self._grab = shm.grab if shm is not None else None
        # peek(box): the pixels to compare in place, through MIT-SHM a view of the segment that
        # the next grab or peek overwrites (ShmGrab.peek), else mss's fresh grab. Bound here,
        # not a method: a call less per grab (a polled screen makes many).
        self.peek = shm.peek if shm is not None else (lambda box: sct.grab(box).raw)

    @classmethod
    def open(cls, sct, display=None):
        """Wrap the mss object `sct` of `display`: grabs through MIT-SHM where ShmGrab opens (only
        Linux has memfd; Windows and macOS keep mss)."""
        try:
            monitors = sct.monitors
        except Exception:
            sct.close()
            raise
        size = monitors[0]["width"] * monitors[0]["height"] * 4 if monitors else 0
        return cls(sct, ShmGrab.open(display, size) if hasattr(os, "memfd_create") else None)

    @property
    def monitors(self):
        return self._sct.monitors

    def grab(self, box):
        if self._grab is None:
            return self._sct.grab(box)
        return Shot(self._grab(box))

    def close(self):
        try:
            if self._shm is not None:
                self._shm.close()
        finally:
            self._sct.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
