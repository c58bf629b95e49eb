"""Session messages: what host and viewer say to each other inside a SecureChannel.

Theory of operation: the secure channel already delivers whole messages (one record each), so this
codec needs no stream framing: `encode(msg) -> bytes` and `decode(bytes) -> msg`, with no I/O.
Every message is `type:u8` + a fixed struct header + (for some types) a bounded variable part. The
table `MESSAGE_TYPES` maps type code -> class; each class knows its own layout. `decode` checks every
length and count against the bounds below before it allocates anything, and raises only
RemoteProtocolError, and only for what the peer sent: it does not relabel its own exceptions, so a
bug here surfaces as a bug. `encode` raises LocalProtocolError for values we must never send.
Versions and capability bits follow protocol/version.py: the host's Hello names both, and a
partner with another SESSION_VERSION is refused with words a person can act on.

A screen update is one or more `Frame` messages with the same frame id; the last carries FINAL, and
the viewer answers it with one `FrameAck` (pull-based flow control, as in VNC). A frame larger than
MAX_MESSAGE is split by the sender into several Frame messages, never into one huge record.
"""

import struct
from dataclasses import dataclass, field

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.version import SESSION_CAPABILITIES, SESSION_VERSION, check_peer_version
from tagio.protocol import files as file_messages

PROTOCOL_VERSION = SESSION_VERSION  # the older name, kept for callers that still use it
MAX_MESSAGE = 1 << 20           # one SecureChannel record (docs/interfaces.md)
MAX_RECTS = 4096                # rectangles in one Frame message
MAX_RECT_DATA = MAX_MESSAGE - 64
MAX_DIMENSION = 16384           # pixels, any axis
MAX_SCREEN_PIXELS = 40_000_000  # a Hello may not make the viewer allocate more (8K is 33 M pixels)
MAX_MONITORS = 16
MAX_TEXT = 4096                 # bytes of UTF-8 in Text / Bye
MAX_CLIPBOARD = 256 * 1024     # bytes of UTF-8 text in one Clipboard message
MAX_CLIPBOARD_IMAGE = MAX_MESSAGE - 64      # bytes of PNG in one Clipboard message
MAX_KEYSYM = 32
MAX_CURSOR_SIDE = 128

FINAL = 0x01                    # Frame flag: last message of this frame id

# Rectangle encodings.
ENC_FILL = 0                    # data = 3 bytes RGB
ENC_PNG = 1                     # lossless (few colours: text, UI; and still-region refresh)
ENC_JPEG = 2                    # photo-like content at the current quality
ENC_COPY = 3                    # data = src_x, src_y (u16 each): copy w x h from there (scroll, move);
                                # every Copy of a frame reads the screen as it was before the frame, so
                                # the host sends them first, in the frame's first message
ENC_SCALED = 4                  # data = width, height (u16 each) of the encoded picture, then its JPEG:
                                # moving content at a reduced resolution, which the viewer scales up
                                # to the rectangle's w x h; sent only to a viewer whose
                                # ViewerCapabilities names CAP_SCALED_RECT (older viewers never see it)
ENCODINGS = {ENC_FILL: "fill", ENC_PNG: "png", ENC_JPEG: "jpeg", ENC_COPY: "copy", ENC_SCALED: "scaled"}
LOSSY_ENCODINGS = frozenset({ENC_JPEG, ENC_SCALED})     # what the lossless top-off must follow
_COPY_SOURCE = struct.Struct("!HH")
_SCALED_HEAD = struct.Struct("!HH")

# Mouse actions.
MOUSE_MOVE, MOUSE_PRESS, MOUSE_RELEASE, MOUSE_CLICK = 0, 1, 2, 3
MOUSE_ACTIONS = (MOUSE_MOVE, MOUSE_PRESS, MOUSE_RELEASE, MOUSE_CLICK)
MOUSE_BUTTONS = (0, 1, 2, 3)    # 0 = none (move), 1 left, 2 middle, 3 right


def _need(cond, why):
    if not cond:
        raise RemoteProtocolError(why)


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what} is not valid UTF-8") from exc


def _check_local(cond, why):
    if not cond:
        raise LocalProtocolError(why)


class _Fixed:
    """A message that is one struct and nothing else; FIELDS names the struct's values in order."""

    FORMAT = ""
    FIELDS = ()
    _LAYOUT = struct.Struct("!")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._LAYOUT = struct.Struct("!" + cls.FORMAT)  # compiled once: FrameAck comes with every frame

    def _pack(self) -> bytes:
        try:
            return self._LAYOUT.pack(*(getattr(self, f) for f in self.FIELDS))
        except struct.error as exc:
            raise LocalProtocolError(f"{type(self).__name__}: {exc}") from exc

    @classmethod
    def _unpack(cls, body: bytes):
        layout = cls._LAYOUT
        if len(body) != layout.size:    # (not _need: its message would be formatted for every ack)
            raise RemoteProtocolError(f"{cls.__name__} must be {layout.size} bytes, got {len(body)}")
        msg = cls(*layout.unpack(body))
        msg.validate()
        return msg

    def validate(self):
        """Raise RemoteProtocolError when decoded values are out of range."""


class _Text:
    """A message that is one bounded UTF-8 string."""

    LIMIT = MAX_TEXT

    def _pack(self) -> bytes:
        data = self.text.encode("utf-8")
        _check_local(len(data) <= self.LIMIT, f"{type(self).__name__} text over {self.LIMIT} bytes")
        return data

    @classmethod
    def _unpack(cls, body: bytes):
        _need(len(body) <= cls.LIMIT, f"{cls.__name__} text over {cls.LIMIT} bytes")
        return cls(_utf8(body, cls.__name__))


@dataclass
class Hello(_Fixed):
    """Host -> viewer: geometry of the captured monitor (sent again after SelectMonitor), and the
    host's session version and capability bits (protocol/version.py)."""
    version: int
    flags: int          # HELLO_VIEW_ONLY, HELLO_INPUT
    width: int
    height: int
    monitor: int
    capabilities: int = SESSION_CAPABILITIES
    FORMAT = "BIHHBI"
    FIELDS = ("version", "flags", "width", "height", "monitor", "capabilities")

    @classmethod
    def _unpack(cls, body: bytes):
        # The version comes first and is checked first: an older partner's Hello has another
        # layout, and the person needs "update both sides", not "Hello must be 15 bytes".
        _need(len(body) >= 1, "Hello truncated")
        check_peer_version("session", body[0], SESSION_VERSION)
        return super()._unpack(body)

    def validate(self):
        _need(0 < self.width <= MAX_DIMENSION and 0 < self.height <= MAX_DIMENSION
              and self.width * self.height <= MAX_SCREEN_PIXELS, f"bad screen size {self.width}x{self.height}")


HELLO_VIEW_ONLY = 0x01
HELLO_INPUT = 0x02       # the host can inject input


@dataclass
class Rect:
    x: int
    y: int
    w: int
    h: int
    encoding: int
    data: bytes


_RECT_HEAD = struct.Struct("!HHHHBI")
_FRAME_HEAD = struct.Struct("!IBdHH")


@dataclass
class Frame:
    """Host -> viewer: changed rectangles of frame `frame_id`.

    capture_time is the host's monotonic clock at capture (meaningful to the host, and to a viewer on
    the same machine in benchmarks); latency_ms is the host's last measured capture -> ack time.
    """
    frame_id: int
    flags: int
    capture_time: float
    latency_ms: int
    rects: list = field(default_factory=list)

    def _pack(self) -> bytes:
        _check_local(len(self.rects) <= MAX_RECTS, "too many rectangles in one Frame")
        parts = [_FRAME_HEAD.pack(self.frame_id, self.flags, self.capture_time,
                                  min(self.latency_ms, 65535), len(self.rects))]
        for r in self.rects:
            _check_local(r.encoding in ENCODINGS, f"unknown encoding {r.encoding}")
            parts.append(_RECT_HEAD.pack(r.x, r.y, r.w, r.h, r.encoding, len(r.data)))
            parts.append(r.data)
        return b"".join(parts)

    @classmethod
    def _unpack(cls, body: bytes):
        _need(len(body) >= _FRAME_HEAD.size, "Frame header truncated")
        frame_id, flags, ctime, latency, count = _FRAME_HEAD.unpack_from(body)
        _need(count <= MAX_RECTS, f"Frame has {count} rectangles (max {MAX_RECTS})")
        rects, pos = [], _FRAME_HEAD.size
        for _ in range(count):
            rect, pos = _unpack_rect(body, pos)
            rects.append(rect)
        _need(pos == len(body), "Frame has trailing bytes")
        return cls(frame_id, flags, ctime, latency, rects)


def _unpack_rect(body, pos):
    _need(len(body) - pos >= _RECT_HEAD.size, "Frame rectangle header truncated")
    x, y, w, h, enc, size = _RECT_HEAD.unpack_from(body, pos)
    pos += _RECT_HEAD.size
    _need(enc in ENCODINGS, f"unknown rectangle encoding {enc}")
    _need(0 < w <= MAX_DIMENSION and 0 < h <= MAX_DIMENSION, f"bad rectangle size {w}x{h}")
    _need(size <= len(body) - pos, "Frame rectangle data truncated")
    _need(enc != ENC_FILL or size == 3, "fill rectangle must carry 3 bytes")
    _need(enc != ENC_COPY or size == _COPY_SOURCE.size, "copy rectangle must carry 4 bytes")
    if enc == ENC_SCALED:
        _need(size > _SCALED_HEAD.size, "scaled rectangle truncated")
        sw, sh = _SCALED_HEAD.unpack_from(body, pos)
        _need(0 < sw <= w and 0 < sh <= h, f"scaled rectangle encodes {sw}x{sh} for {w}x{h}")
    return Rect(x, y, w, h, enc, body[pos:pos + size]), pos + size


def copy_rect(src_x, src_y, x, y, w, h) -> Rect:
    """A Rect that copies w x h pixels from (src_x, src_y) of the previous screen to (x, y).
    Raises LocalProtocolError for a source outside 0..65535."""
    _check_local(0 <= src_x <= 0xFFFF and 0 <= src_y <= 0xFFFF, f"copy source {src_x},{src_y} out of range")
    return Rect(x, y, w, h, ENC_COPY, _COPY_SOURCE.pack(src_x, src_y))


def copy_source(rect) -> tuple:
    """(src_x, src_y) of an ENC_COPY Rect (decode() has checked its length)."""
    return _COPY_SOURCE.unpack(rect.data)


def scaled_rect(x, y, w, h, scaled_w, scaled_h, jpeg) -> Rect:
    """A Rect that draws the scaled_w x scaled_h JPEG `jpeg` scaled up to w x h at (x, y).
    Raises LocalProtocolError unless 0 < scaled_w <= w and 0 < scaled_h <= h."""
    _check_local(0 < scaled_w <= w and 0 < scaled_h <= h and jpeg,
                 f"scaled rectangle {scaled_w}x{scaled_h} for {w}x{h}")
    return Rect(x, y, w, h, ENC_SCALED, _SCALED_HEAD.pack(scaled_w, scaled_h) + bytes(jpeg))


def scaled_size(rect) -> tuple:
    """(width, height) of the picture an ENC_SCALED Rect encodes (decode() has checked them)."""
    return _SCALED_HEAD.unpack_from(rect.data)


def scaled_data(rect) -> bytes:
    """The JPEG bytes of an ENC_SCALED Rect."""
    return rect.data[_SCALED_HEAD.size:]


@dataclass
class FrameAck(_Fixed):
    """Viewer -> host: frame `frame_id` is decoded (or drawn); the host may capture another. With
    CAP_ACK_UPTO agreed (the viewer's ViewerCapabilities names it) it stands for every earlier frame
    still unacknowledged too (protocol/version.py)."""
    frame_id: int
    FORMAT = "I"
    FIELDS = ("frame_id",)


@dataclass
class ViewerCapabilities(_Fixed):
    """Viewer -> host: the capability bits this viewer takes, of those the host's Hello offered
    (protocol/version.py agree()). Sent in answer to a Hello that offers a bit the host may use
    only with the viewer's consent (CAP_SCALED_RECT); an older host never offers one, so it never
    gets this message, and a host that gets none keeps to what every viewer takes."""
    capabilities: int
    FORMAT = "I"
    FIELDS = ("capabilities",)


@dataclass
class Cursor:
    """Host -> viewer: pointer position (monitor coordinates) and, when it changed, its RGBA shape."""
    x: int
    y: int
    visible: int = 1
    hot_x: int = 0
    hot_y: int = 0
    width: int = 0
    height: int = 0
    rgba: bytes = b""

    _HEAD = struct.Struct("!iiBHHHH")

    def _pack(self) -> bytes:
        _check_local(len(self.rgba) == self.width * self.height * 4, "cursor shape size mismatch")
        _check_local(self.width <= MAX_CURSOR_SIDE and self.height <= MAX_CURSOR_SIDE, "cursor too big")
        return self._HEAD.pack(self.x, self.y, self.visible, self.hot_x, self.hot_y,
                               self.width, self.height) + self.rgba

    @classmethod
    def _unpack(cls, body: bytes):
        _need(len(body) >= cls._HEAD.size, "Cursor truncated")
        x, y, vis, hx, hy, w, h = cls._HEAD.unpack_from(body)
        _need(w <= MAX_CURSOR_SIDE and h <= MAX_CURSOR_SIDE, f"cursor shape {w}x{h} too big")
        _need(len(body) - cls._HEAD.size == w * h * 4, "cursor shape size mismatch")
        return cls(x, y, vis, hx, hy, w, h, body[cls._HEAD.size:])


@dataclass
class Mouse(_Fixed):
    """Viewer -> host: pointer action at (x, y) in monitor coordinates."""
    action: int
    button: int
    x: int
    y: int
    count: int = 1      # clicks for MOUSE_CLICK (2 = double-click)
    FORMAT = "BBiiB"
    FIELDS = ("action", "button", "x", "y", "count")

    def validate(self):
        _need(self.action in MOUSE_ACTIONS, f"unknown mouse action {self.action}")
        _need(self.button in MOUSE_BUTTONS, f"unknown mouse button {self.button}")
        _need(1 <= self.count <= 3, f"bad click count {self.count}")


@dataclass
class Key:
    """Viewer -> host: a key went down or up (shortcuts, keys that are not text, modifiers). `key`
    is an X11 keysym name or one character (tagio.protocol.keys)."""
    key: str
    pressed: bool

    def _pack(self) -> bytes:
        data = self.key.encode("utf-8")
        _check_local(0 < len(data) <= MAX_KEYSYM, f"bad key name {self.key!r}")
        return bytes([1 if self.pressed else 0]) + data

    @classmethod
    def _unpack(cls, body: bytes):
        _need(2 <= len(body) <= MAX_KEYSYM + 1, "bad Key length")
        _need(body[0] in (0, 1), "bad Key pressed flag")
        return cls(_utf8(body[1:], "key name"), bool(body[0]))


@dataclass
class Scroll(_Fixed):
    """Viewer -> host: wheel steps; dy > 0 scrolls up, dx > 0 scrolls right."""
    dx: int
    dy: int
    FORMAT = "hh"
    FIELDS = ("dx", "dy")

    def validate(self):
        _need(abs(self.dx) <= 100 and abs(self.dy) <= 100, "scroll step out of range")


@dataclass
class Text(_Text):
    """Viewer -> host: type this Unicode text (layout independent): what the viewer's key events
    produced as text; the host types it with its own modifiers out of the way (tagio.protocol.keys)."""
    text: str


CLIP_TEXT = "text/plain;charset=utf-8"
CLIP_PNG = "image/png"
CLIPBOARD_FORMATS = {1: CLIP_TEXT, 2: CLIP_PNG}     # wire code -> MIME type
CLIPBOARD_LIMITS = {CLIP_TEXT: MAX_CLIPBOARD, CLIP_PNG: MAX_CLIPBOARD_IMAGE}
_CLIPBOARD_CODES = {mime: code for code, mime in CLIPBOARD_FORMATS.items()}
_CLIP_HEAD = struct.Struct("!BI")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Clipboard:
    """Either way: the sender's clipboard changed to `data` of MIME type `mime`.

    `size` is the size of what the sender's clipboard holds. Equal to len(data) for a shared
    value; with empty `data` and a size over the format's limit it says "your partner copied
    something too big to share" (the receiver shows a notice instead of silently missing it).
    Wire: format code u8, size u32, then the data."""
    mime: str
    data: bytes
    size: int = -1      # -1: len(data)

    def __post_init__(self):
        if self.size < 0:
            self.size = len(self.data)

    @classmethod
    def of_text(cls, text):
        return cls(CLIP_TEXT, text.encode("utf-8"))

    @property
    def text(self):
        """The text of a text clipboard (None for other formats)."""
        return self.data.decode("utf-8") if self.mime == CLIP_TEXT else None

    @property
    def omitted(self):
        """True when the sender's clipboard was over the limit and only its size came."""
        return not self.data and self.size > 0

    def _pack(self) -> bytes:
        code = _CLIPBOARD_CODES.get(self.mime)
        _check_local(code is not None, f"unknown clipboard format {self.mime!r}")
        limit = CLIPBOARD_LIMITS[self.mime]
        _check_local(len(self.data) <= limit, f"clipboard data over {limit} bytes")
        _check_local(len(self.data) in (0, self.size) and 0 <= self.size < 1 << 32, "bad clipboard size")
        return _CLIP_HEAD.pack(code, self.size) + self.data

    @classmethod
    def _unpack(cls, body: bytes):
        _need(len(body) >= _CLIP_HEAD.size, "Clipboard truncated")
        code, size = _CLIP_HEAD.unpack_from(body)
        mime = CLIPBOARD_FORMATS.get(code)
        _need(mime is not None, f"unknown clipboard format {code}")
        data = body[_CLIP_HEAD.size:]
        limit = CLIPBOARD_LIMITS[mime]
        _need(len(data) <= limit, f"clipboard data over {limit} bytes")
        _need(len(data) in (0, size), "Clipboard size does not match its data")
        if mime == CLIP_TEXT:
            _utf8(data, "clipboard text")
        else:
            _need(not data or data.startswith(PNG_SIGNATURE), "clipboard image is not a PNG")
        return cls(mime, data, size)


@dataclass
class SetQuality(_Fixed):
    """Viewer -> host: JPEG quality 1..100 and frame-rate cap 1..60 (0 = keep)."""
    quality: int
    fps_cap: int = 0
    FORMAT = "BB"
    FIELDS = ("quality", "fps_cap")

    def validate(self):
        _need(1 <= self.quality <= 100, f"quality {self.quality} out of range")
        _need(0 <= self.fps_cap <= 60, f"fps cap {self.fps_cap} out of range")


@dataclass
class SelectMonitor(_Fixed):
    """Viewer -> host: capture monitor `index` (1-based, as in mss) from now on; 0 = all monitors as
    one picture (mss's monitors[0], the whole virtual screen)."""
    index: int
    FORMAT = "B"
    FIELDS = ("index",)

    def validate(self):
        _need(0 <= self.index <= MAX_MONITORS, f"monitor {self.index} out of range")


_MONITOR = struct.Struct("!iiHH")


@dataclass
class MonitorList:
    """Host -> viewer: the host's monitors as (left, top, width, height); `current` is 1-based."""
    current: int
    monitors: list

    def _pack(self) -> bytes:
        _check_local(len(self.monitors) <= MAX_MONITORS, "too many monitors")
        return bytes([self.current, len(self.monitors)]) + b"".join(
            _MONITOR.pack(*m) for m in self.monitors)

    @classmethod
    def _unpack(cls, body: bytes):
        _need(len(body) >= 2, "MonitorList truncated")
        current, count = body[0], body[1]
        _need(count <= MAX_MONITORS, f"{count} monitors (max {MAX_MONITORS})")
        _need(len(body) == 2 + count * _MONITOR.size, "MonitorList size mismatch")
        mons = [_MONITOR.unpack_from(body, 2 + i * _MONITOR.size) for i in range(count)]
        return cls(current, [tuple(m) for m in mons])


@dataclass
class Bye(_Text):
    """Either way: the session ends; `text` says why, for people."""
    text: str = ""


@dataclass
class Files:
    """Either way: one file-transfer message (tagio.protocol.files), decoded with its own table."""
    msg: object

    def _pack(self) -> bytes:
        return file_messages.encode(self.msg)

    @classmethod
    def _unpack(cls, body: bytes):
        return cls(file_messages.decode(body))


MAX_CHAT = 4096                 # bytes of UTF-8 in one Chat message


@dataclass
class Chat(_Text):
    """Either way: one chat line typed by a person."""
    text: str
    LIMIT = MAX_CHAT


@dataclass
class Ping(_Fixed):
    """Either way: "are you there?" Sent by a side that heard nothing for a while (heartbeat.py);
    the partner answers with Pong carrying the same number."""
    nonce: int
    FORMAT = "I"
    FIELDS = ("nonce",)


@dataclass
class Pong(_Fixed):
    """Either way: the answer to Ping(nonce)."""
    nonce: int
    FORMAT = "I"
    FIELDS = ("nonce",)


ADMISSION_PENDING = 1       # the host's user is being asked; the viewer shows "waiting..."
ADMISSION_ADMITTED = 2      # the session starts: Hello follows
ADMISSION_STATES = (ADMISSION_PENDING, ADMISSION_ADMITTED)


@dataclass
class Admission(_Fixed):
    """Host -> viewer, between the handshake and the session: where the host's accept step is.
    A refusal is a Bye instead ("the partner declined ...")."""
    state: int
    FORMAT = "B"
    FIELDS = ("state",)

    def validate(self):
        _need(self.state in ADMISSION_STATES, f"unknown admission state {self.state}")


MAX_DESK_NAME = 64              # bytes of UTF-8 in Introduce: a desk's display name


@dataclass
class Introduce(_Text):
    """Either way, right after the handshake (before Admission): this desk's display name, which
    the user may have chosen ("name this desk"; "" = none). It travels only inside the channel,
    never to the relay. Shown to people only after `clean_name` (control characters removed)."""
    text: str = ""
    LIMIT = MAX_DESK_NAME


def clean_name(text: str, limit: int = MAX_DESK_NAME) -> str:
    """A desk name fit to show: control and format characters (newlines, bidi overrides) removed,
    runs of spaces collapsed, at most `limit` bytes of UTF-8 (cut at a character boundary)."""
    import unicodedata
    kept = "".join(" " if ch.isspace() else ch for ch in str(text or "")
                   if ch.isspace() or unicodedata.category(ch)[0] != "C")
    name = " ".join(kept.split())
    while len(name.encode("utf-8")) > limit:
        name = name[:-1]
    return name


FILES_CODE, CHAT_CODE = 40, 41  # a range of their own, away from the screen and input messages
PING_CODE, PONG_CODE, ADMISSION_CODE = 64, 65, 66   # liveness and the accept step
INTRODUCE_CODE = 67             # the desks' names, before the accept step

MESSAGE_TYPES = {
    1: Hello, 2: Frame, 3: FrameAck, 4: Cursor, 5: Mouse, 6: Key, 7: Scroll, 8: Text,
    9: Clipboard, 10: SetQuality, 11: SelectMonitor, 12: MonitorList, 13: Bye, 14: ViewerCapabilities,
    FILES_CODE: Files, CHAT_CODE: Chat,
    PING_CODE: Ping, PONG_CODE: Pong, ADMISSION_CODE: Admission, INTRODUCE_CODE: Introduce,
}
_TYPE_CODES = {cls: code for code, cls in MESSAGE_TYPES.items()}


def encode(msg) -> bytes:
    """One message -> bytes for one channel record. Raises LocalProtocolError."""
    code = _TYPE_CODES.get(type(msg))
    _check_local(code is not None, f"not a session message: {type(msg).__name__}")
    data = bytes([code]) + msg._pack()
    _check_local(len(data) <= MAX_MESSAGE, f"{type(msg).__name__} of {len(data)} bytes over MAX_MESSAGE")
    return data


_FRAME_CODE = _TYPE_CODES[Frame]
# A Frame of one rectangle in one struct: type code, Frame header, rectangle header (its data follows).
_ONE_RECT_FRAME = struct.Struct("!B" + _FRAME_HEAD.format[1:] + _RECT_HEAD.format[1:])


def encode_frame(frame_id, flags, capture_time, latency_ms, rects) -> bytes:
    """encode(Frame(frame_id, flags, capture_time, latency_ms, rects)), the same bytes. The host
    sends up to 60 frames a second, most of them one small rectangle: for those the generic path (a
    Frame object, the type table, a list of parts) was most of the cost. Raises LocalProtocolError."""
    if len(rects) != 1:
        return encode(Frame(frame_id, flags, capture_time, latency_ms, rects))
    r = rects[0]
    if r.encoding not in ENCODINGS:
        raise LocalProtocolError(f"unknown encoding {r.encoding}")
    data = _ONE_RECT_FRAME.pack(_FRAME_CODE, frame_id, flags, capture_time, min(latency_ms, 65535), 1,
                                r.x, r.y, r.w, r.h, r.encoding, len(r.data)) + r.data
    if len(data) > MAX_MESSAGE:
        raise LocalProtocolError(f"Frame of {len(data)} bytes over MAX_MESSAGE")
    return data


def decode(data: bytes):
    """bytes of one channel record -> message. Raises RemoteProtocolError only."""
    # (ifs, not _need: its message would be formatted for every message, ~60 acks a second)
    if not 0 < len(data) <= MAX_MESSAGE:
        raise RemoteProtocolError(f"session message of {len(data)} bytes")
    cls = MESSAGE_TYPES.get(data[0])
    if cls is None:
        raise RemoteProtocolError(f"unknown session message type {data[0]}")
    # Every layout checks its own lengths, counts and ranges (the _need calls) before it unpacks,
    # so nothing the peer sends reaches struct or a constructor unchecked. Anything else that
    # escapes from here is our bug and must stay visible as one (h11 does the same).
    return cls._unpack(bytes(data[1:]))
