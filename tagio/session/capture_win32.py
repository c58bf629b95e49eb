"""Screen capture on Windows: a cheap change source, no flicker, and a pause on the secure desktop.

Theory of operation
-------------------
X11 tells the host what it drew (tagio.session.damage); Windows' GDI tells nothing, so the host used
to grab and compare the whole monitor 10 times a second when idle and 30 when busy (8 MB per 1080p
grab). Three pieces fix what that costs and what it breaks:

- `ScanProbe`, a change source with DamageProbe's interface (collect / wait / drain / close), polls
  like x11vnc: a scan grabs one row in every STEP rows of the monitor (34 one-row BitBlts at 1080p
  instead of one 8 MB grab), compares each with the host's copy of the screen (bytes compares:
  C speed), and reports the tiles around a row that changed. The offset of the rows moves each time
  in bit-reversed order (0, 16, 8, 24, ...), so a change h rows tall is seen within about STEP/h
  scans, and every row within STEP scans. Each grab costs a fixed ~30 us (a round trip, a GDI call
  on Windows) whatever its width, so a scan costs ~1 ms: it runs SCAN_FPS (20) times a second while
  scans find changes, and QUIET_SCAN_FPS (10) once none did for QUIET_AFTER seconds, as on an idle
  screen (what changed lately is grabbed by the host instead, at every frame or with each scan:
  tiles.RecentChanges).
  A row that differs is compared tile by tile: the scan reports those tiles' columns (on their
  tile row and its neighbours; what lies beyond them is found by a later scan), leaving out the
  tiles the host has just grabbed (tiles.RecentChanges), which are no news.
  A safety sweep replaces the host's whole-screen grab: each scan also grabs the next band of
  rows (the band grows with the time since the last one: ~108 rows of 1080 at 10 scans a second)
  and compares it in one memcmp, so every row is read within SWEEP_SECONDS, in pieces of ~0.3 ms
  rather than an 8 MB grab and compare (plus a copy of the screen) once a second.
  Bounds, from a change on the screen to the host grabbing it: at most one scan interval (50 ms,
  100 ms after QUIET_AFTER without changes) for a change at least STEP rows tall, about STEP/h
  scans for one h rows tall, and SWEEP_SECONDS plus one scan interval for any change at all; once
  seen, its tiles are grabbed at every frame while they keep changing (then with each scan for
  a while: tiles.RecentChanges).
- `capture_blt_off()`: mss 10 BitBlts with SRCCOPY | CAPTUREBLT, a module constant of
  mss.windows.gdi read at every grab. CAPTUREBLT includes layered windows by briefly hiding and
  redrawing the pointer, so the host user's pointer flickers while a session runs (mss issue #179).
  Layered windows are composited by DWM on Windows 8 and later and are captured without the flag.
- The secure desktop: while a UAC prompt or the lock screen is up, the input desktop is Winlogon's
  and a normal user's BitBlt fails (mss raises ScreenShotError), or returns a black picture.
  `SecureDesktop.active()` asks the system (OpenInputDesktop + its name), and the host pauses the
  picture instead of ending the session: `PAUSE_NOTICE` is drawn over the last picture on the
  viewer's side (`notice_band`) and said to the host's own front end; a full picture follows when
  capture works again. What no unelevated program can do (see the README) is capture or click that
  desktop: that needs a service running as SYSTEM.

- Ctrl+Alt+Del and elevated windows: SendInput cannot produce the secure-attention sequence, and
  Windows drops input into an elevated program's window (UIPI) without telling the sender.
  `SecureAttentionWatch` spots Ctrl+Alt+Del in the viewer's keys and `ElevatedForeground` asks
  whether the window in front is elevated; the host then says why, on its side and (drawn over the
  picture for NOTICE_SECONDS, `NoticeHold`) on the viewer's.

Everything here that talks to Windows takes the DLL (or mss module) as an argument, so the logic
runs in the normal test suite with fakes.
"""

import math
import sys
import time

from PIL import Image, ImageDraw

WINDOWS = sys.platform == "win32"
STEP = 32               # rows between two scanned rows (x11vnc uses 32 too)
TILE = 64               # the host's tile size (tagio.session.tiles.TILE)
ORDER = tuple(int(f"{i:05b}"[::-1], 2) for i in range(STEP))    # 0, 16, 8, 24, 4, 20, ...
SCAN_FPS = 20           # scans a second while they keep finding changes ...
QUIET_SCAN_FPS = 10     # ... and once none did for QUIET_AFTER seconds (what changes is followed
QUIET_AFTER = 1.0       #     by the host anyway: tiles.RecentChanges)
SCAN_EARLY = 0.005      # a scan due this soon counts as due (frames on a grid wake up a little late)
SWEEP_SECONDS = 1.0     # the safety sweep reads every row of the screen within this time
PAUSE_NOTICE = ("The partner's screen is locked or showing a system prompt (UAC); the picture "
                "continues when it is gone.")
PAUSE_RETRY = 0.5       # seconds between capture attempts while paused
NOTICE_HEIGHT = TILE    # the band the notice is drawn in: one tile row (the encoder works in tiles)


def capture_blt_off(gdi=None) -> bool:
    """mss's Windows grabber without CAPTUREBLT (no pointer flicker). `gdi` (tests) replaces the
    mss.windows.gdi module. False off Windows or with an mss that has no such constant."""
    if gdi is None:
        if not WINDOWS:
            return False
        try:
            from mss.windows import gdi
        except ImportError:     # another mss layout: leave it as it is
            return False
    if not hasattr(gdi, "CAPTUREBLT"):
        return False
    gdi.CAPTUREBLT = 0
    return True


class ScanProbe:
    """Scanline polling as a change source (see the module docstring). `grab(box)` is the host's
    grab (its failures are ConfigError) -> the pixels, bytes-like, read here before the next
    grab (the host lends a view of its grab memory: host_capture.peek); `watch(mon)` names the
    monitor being captured, as the host keeps it: {"box": {...}, "screen": ScreenCopy}. `clock`
    (tests) gives seconds."""

    def __init__(self, grab, step=STEP, clock=time.monotonic):
        self._grab, self._clock = grab, clock
        self._step = step
        self._order = tuple(o for o in ORDER if o < step) if step == STEP else tuple(range(step))
        self.watch(None)

    def watch(self, mon):
        self._mon = mon
        self._turn, self._next_at, self._found_at = 0, float("-inf"), float("-inf")
        self._sweep_row, self._swept_at = 0, None

    def due(self):
        """Will the next collect() scan (rather than return [] at once)?"""
        return self._mon is not None and self._clock() >= self._next_at

    def collect(self):
        """Rectangles (desktop coordinates) around rows that changed since the host's copy; [] when
        none did or no scan is due yet; None when the host must grab everything (no copy yet,
        nothing watched)."""
        if self._mon is None or self._mon["screen"].buf is None:
            return None
        now = self._clock()
        if now < self._next_at:
            return []
        screen, box, hot = self._mon["screen"], self._mon["box"], self._mon.get("hot")
        hot, found = (hot.tiles() if hot is not None else ()), {}
        swept = self._sweep(screen, box, now, hot, found)
        self._scan(screen, box, hot, found, swept)
        if found:
            self._found_at = now
        fps = SCAN_FPS if now - self._found_at < QUIET_AFTER else QUIET_SCAN_FPS
        self._next_at = now + 1.0 / fps - SCAN_EARLY
        return band_rects(found, box, screen.width, screen.height)

    def _scan(self, screen, box, hot, found, swept):
        """Add to `found` ({tile row: (first, last tile column)}) the tiles in which this turn's
        scanlines differ from the copy, leaving out the `hot` ones (tiles.RecentChanges): the host
        has just grabbed those (a scan may catch them drawn since), so they neither cost a grab
        here nor count as news. Rows just read by the sweep (`swept`: ranges) are not read again."""
        offset = self._order[self._turn % len(self._order)]
        self._turn += 1
        buf, stride, grab, left, top = screen.buf, screen.width * 4, self._grab, box["left"], box["top"]
        read = set().union(*swept)      # (one set: a generator per scanline cost more than its grab)
        for y in range(offset, screen.height, self._step):
            if y in read:
                continue
            line = grab({"left": left, "top": top + y, "width": screen.width, "height": 1})
            if not buf.startswith(line, y * stride):
                _note_row(found, buf, line, y, stride, hot)

    def _sweep(self, screen, box, now, hot, found):
        """Read the safety sweep's next band of rows into `found` as _scan does; the rows read (one
        or two ranges: the band may wrap round the bottom). The band grows with the time since
        the last one, so every row is read within SWEEP_SECONDS (and a scan interval) whatever
        the scan rate; a still band costs one grab and one compare (memcmp)."""
        elapsed = 0.0 if self._swept_at is None else now - self._swept_at
        self._swept_at = now
        count = max(1, math.ceil(screen.height * min(1.0, elapsed / SWEEP_SECONDS)))
        swept = []
        while count > 0:
            top = self._sweep_row
            bottom = min(top + count, screen.height)
            self._read_band(screen, box, top, bottom, hot, found)
            swept.append(range(top, bottom))
            count -= bottom - top
            self._sweep_row = bottom % screen.height
        return swept

    def _read_band(self, screen, box, top, bottom, hot, found):
        """Grab rows [top, bottom) and add the tiles in which they differ to `found`."""
        stride = screen.width * 4
        band = self._grab({"left": box["left"], "top": box["top"] + top, "width": screen.width,
                           "height": bottom - top})
        if screen.buf.startswith(band, top * stride):
            return
        band = memoryview(band)
        for y in range(top, bottom):
            line = band[(y - top) * stride:(y - top + 1) * stride]
            if not screen.buf.startswith(line, y * stride):
                _note_row(found, screen.buf, line, y, stride, hot)

    def wait(self, _timeout=0):
        return True         # nothing to wait for: a polled source is always "maybe drawn"

    def drain(self):
        pass

    def close(self):
        pass


def _note_row(found, buf, line, y, stride, hot):
    """Widen `found` ({tile row: (first, last tile column)}) by the tiles, other than `hot` ones, in
    which the grabbed row `line` (row y of the screen) differs from the copy `buf`."""
    row = y // TILE
    cols = [c for c in _differing_columns(buf, line, y * stride) if (c, row) not in hot]
    if cols:
        first, last = found.get(row, (cols[0], cols[-1]))
        found[row] = (min(first, cols[0]), max(last, cols[-1]))


def _differing_columns(buf, line, start):
    """The tile columns in which one grabbed row `line` differs from `buf` at byte `start`."""
    view, span = memoryview(line), TILE * 4
    return [c for c in range(-(-len(line) // span))
            if not buf.startswith(view[c * span:(c + 1) * span], start + c * span)]


def band_rects(tile_rows, box, width, height):
    """Rectangles (desktop coordinates) over the given tile rows and their neighbours (a change seen
    on one row usually goes on above or below it). `tile_rows`: a set (the whole width) or a dict
    {tile row: (first, last tile column)} (those columns only)."""
    last_row, last_col = (height - 1) // TILE, (width - 1) // TILE
    spans = tile_rows if isinstance(tile_rows, dict) else dict.fromkeys(tile_rows, (0, last_col))
    wanted = {}
    for row, (first, last) in spans.items():
        for near in range(max(row - 1, 0), min(row + 1, last_row) + 1):
            a, b = wanted.get(near, (first, last))
            wanted[near] = (min(a, first), max(b, last))
    rects = []
    for row, (first, last) in sorted(wanted.items()):
        top, left = row * TILE, first * TILE
        rects.append((box["left"] + left, box["top"] + top, min((last + 1) * TILE, width) - left,
                      min(TILE, height - top)))
    return rects


# -- the secure desktop ---------------------------------------------------------------------------

DESKTOP_READOBJECTS = 0x0001
UOI_NAME = 2


class SecureDesktop:
    """Is the input desktop somewhere we cannot capture (UAC prompt, lock screen)? `user32` (tests)
    replaces the DLL."""

    def __init__(self, user32=None):
        self._user32 = user32

    @classmethod
    def open(cls):
        """A probe on Windows, None elsewhere."""
        if not WINDOWS:
            return None
        import ctypes   # guarded: windll exists only on Windows
        return cls(ctypes.windll.user32)

    def active(self) -> bool:
        """True when the input desktop is not the user's "Default" one (or cannot be opened, which
        is what a normal process gets while Winlogon's desktop has the input)."""
        import ctypes
        user32 = self._user32
        desk = user32.OpenInputDesktop(0, False, DESKTOP_READOBJECTS)
        if not desk:
            return True
        try:
            name = ctypes.create_unicode_buffer(64)
            needed = ctypes.c_uint32(0)
            if not user32.GetUserObjectInformationW(desk, UOI_NAME, name, ctypes.sizeof(name),
                                                    ctypes.byref(needed)):
                return True
            return name.value.lower() != "default"
        finally:
            user32.CloseDesktop(desk)


def notice_band(last_screen, width, height, text=PAUSE_NOTICE):
    """The top band of the last picture (BGRX bytes, `width` x `height`) with `text` drawn over it:
    (band bytes, band height). Black when there is no last picture."""
    band_h = min(NOTICE_HEIGHT, height)
    if last_screen is not None:
        img = Image.frombytes("RGB", (width, band_h), bytes(last_screen[:width * band_h * 4]), "raw", "BGRX")
    else:
        img = Image.new("RGB", (width, band_h))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, band_h), fill=(150, 40, 20))
    draw.text((10, max(0, band_h // 2 - 6)), text, fill=(255, 255, 255))
    return img.tobytes("raw", "BGRX"), band_h


# -- Ctrl+Alt+Del ---------------------------------------------------------------------------------

SAS_NOTICE = ("Ctrl+Alt+Del cannot be sent to Windows by a program: Windows takes it only from a real "
              "keyboard or from a service (SendSAS). Ask the person at the partner's computer to press it.")
NOTICE_SECONDS = 5.0
_CONTROL = frozenset({"Control_L", "Control_R"})
_ALT = frozenset({"Alt_L", "Alt_R"})
_DELETE = frozenset({"Delete", "KP_Delete"})


class SecureAttentionWatch:
    """Follows the Key messages a viewer sends and spots Ctrl+Alt+Del (the secure-attention
    sequence), which SendInput cannot produce: Windows drops it without a word."""

    def __init__(self):
        self._held = set()

    def feed(self, key: str, pressed: bool) -> bool:
        """True for the Delete press of a Ctrl+Alt+Del (that press should not be injected)."""
        if not pressed:
            self._held.discard(key)
            return False
        if key in _DELETE:
            return bool(self._held & _CONTROL and self._held & _ALT)
        if key in _CONTROL | _ALT:
            self._held.add(key)
        return False


class NoticeHold:
    """Keeps a notice drawn over some tiles on the viewer's picture for NOTICE_SECONDS: while it is
    up those tiles are not refreshed from the host's copy of the screen; afterwards they are sent
    again once, so the notice goes away. `clock` in seconds (monotonic)."""

    def __init__(self, seconds=NOTICE_SECONDS):
        self._seconds = seconds
        self._tiles, self._until = frozenset(), None

    def start(self, tiles, now):
        self._tiles, self._until = frozenset(tiles), now + self._seconds

    def filter(self, due, now):
        """The tiles to refresh now: `due` without the held ones, plus all of them when it ends."""
        if self._until is None:
            return due
        if now < self._until:
            return set(due) - self._tiles
        restore, self._tiles, self._until = self._tiles, frozenset(), None
        return set(due) | restore


# -- elevated windows -----------------------------------------------------------------------------

ELEVATED_NOTICE = ("The window in front on the partner's computer runs as administrator: TagIO, not "
                   "elevated, cannot click or type into it (Windows drops that input).")
ELEVATED_REPEAT = 30.0      # seconds before the same window is mentioned again
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
TOKEN_QUERY = 0x0008
TOKEN_ELEVATION = 20        # TOKEN_INFORMATION_CLASS TokenElevation


class ElevatedForeground:
    """Is the foreground window an elevated program's? Windows' UIPI drops our SendInput into it
    without a word (neither SendInput's result nor GetLastError says so), so the host asks before
    input goes out and says why nothing happens. A process whose token we may not even read runs
    at a higher integrity level than ours: counted as elevated. `user32`, `kernel32`, `advapi32`
    (tests) replace the DLLs; `open()` gives None off Windows or when TagIO itself is elevated."""

    def __init__(self, user32, kernel32, advapi32, clock):
        self._user32, self._kernel32, self._advapi32 = user32, kernel32, advapi32
        self._clock = clock
        self._told = {}             # hwnd -> when it was last mentioned

    @classmethod
    def open(cls, clock):
        if not WINDOWS:
            return None
        import ctypes   # guarded: WinDLL exists only on Windows
        user32, kernel32, advapi32 = (ctypes.WinDLL(name) for name in ("user32", "kernel32", "advapi32"))
        user32.GetForegroundWindow.restype = ctypes.c_void_p
        kernel32.OpenProcess.restype = ctypes.c_void_p
        kernel32.GetCurrentProcess.restype = ctypes.c_void_p
        probe = cls(user32, kernel32, advapi32, clock)
        return None if probe._elevated(kernel32.GetCurrentProcess()) else probe

    def blocked_window(self):
        """The foreground window (handle) when it is elevated and not yet mentioned lately, else None."""
        import ctypes
        hwnd = self._user32.GetForegroundWindow()
        if not hwnd:
            return None
        now = self._clock()
        if now - self._told.get(hwnd, float("-inf")) < ELEVATED_REPEAT:
            return None
        pid = ctypes.c_uint32(0)
        self._user32.GetWindowThreadProcessId(ctypes.c_void_p(hwnd), ctypes.byref(pid))
        process = self._kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid.value)
        if not process:
            return None     # gone already, or a protected system process: nothing to say
        try:
            if not self._elevated(process):
                return None
        finally:
            self._kernel32.CloseHandle(ctypes.c_void_p(process))
        self._told[hwnd] = now
        return hwnd

    def _elevated(self, process) -> bool:
        import ctypes
        token = ctypes.c_void_p()
        if not self._advapi32.OpenProcessToken(ctypes.c_void_p(process), TOKEN_QUERY, ctypes.byref(token)):
            return True     # may not even read it: a higher integrity level than ours
        try:
            elevation, size = ctypes.c_uint32(0), ctypes.c_uint32(0)
            if not self._advapi32.GetTokenInformation(token, TOKEN_ELEVATION, ctypes.byref(elevation),
                                                      ctypes.sizeof(elevation), ctypes.byref(size)):
                return False
            return bool(elevation.value)
        finally:
            self._kernel32.CloseHandle(token)
