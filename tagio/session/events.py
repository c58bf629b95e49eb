"""What a viewer session tells its front end: one small frozen dataclass per event.

Theory of operation. The session's threads never touch the UI and never wait for it. They report
through two one-way, bounded paths, and both carry the events defined here:

  updates    `ViewerSession.updates`, a bounded queue.Queue that the display drains on its own
             thread (the Tk window from an after() poll). It gets every event marked "display".
             When nobody drains it, it collapses into one Refresh (plus a Size or Closed), so it
             never blocks the session and never grows.
  on_event   the owner's callback, `on_event(event.name, **fields(event))`, called on a session
             thread. It gets every event marked "owner". The Tk app posts them to its own bounded
             queue (bridge.EventBridge) and handles them from its poll; the command line prints them.

  event        name            fields                                    goes to
  Size         "size"          width, height, monitor                    display, owner
  Rects        "rects"         frame_id, pieces [(x, y, RGB image)],     display
                               capture_time
  Refresh      "refresh"       -  (redraw everything from framebuffer)    display
  Cursor       "cursor"        x, y  (monitor coordinates)               display
  CursorShape  "cursor_shape"  hot_x, hot_y, image (RGBA)                display
  Monitors     "monitors"      current, monitors [(left, top, w, h)]     display
  Clipboard    "clipboard"     text                                      display, owner
  Closed       "closed"        reason  (for people)                      display; owner on the host's Bye
  Error        "error"         message (for people)                      owner

Input goes the other way through `ViewerSession.send_*` and `displayed()`, which only hand an
encoded message to the session's sender thread (tagio.session.outbox) and return at once.
"""

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Size:
    """A new geometry: the framebuffer was reset (black)."""
    name: ClassVar[str] = "size"
    width: int
    height: int
    monitor: int


@dataclass(frozen=True)
class Rects:
    """Paste these decoded images at (x, y); the framebuffer already holds them."""
    name: ClassVar[str] = "rects"
    frame_id: int
    pieces: list
    capture_time: float


@dataclass(frozen=True)
class Refresh:
    """Updates were dropped: redraw from the framebuffer."""
    name: ClassVar[str] = "refresh"


@dataclass(frozen=True)
class Cursor:
    """The host's pointer moved."""
    name: ClassVar[str] = "cursor"
    x: int
    y: int


@dataclass(frozen=True)
class CursorShape:
    """The host's pointer changed its picture."""
    name: ClassVar[str] = "cursor_shape"
    hot_x: int
    hot_y: int
    image: object


@dataclass(frozen=True)
class Monitors:
    """The host's monitors, and which one is shown."""
    name: ClassVar[str] = "monitors"
    current: int
    monitors: list


@dataclass(frozen=True)
class Clipboard:
    """The host's clipboard changed (`text` is None when it holds an image)."""
    name: ClassVar[str] = "clipboard"
    text: str


@dataclass(frozen=True)
class ClipboardNotice:
    """A clipboard value was not shared (too big, or refused); `message` says so, for people."""
    name: ClassVar[str] = "clipboard_notice"
    message: str


@dataclass(frozen=True)
class Closed:
    """The session ended; `reason` says why, for people."""
    name: ClassVar[str] = "closed"
    reason: str


@dataclass(frozen=True)
class Error:
    """The session ended on an error (a stalled path, a protocol error, a bug)."""
    name: ClassVar[str] = "error"
    message: str


def fields(event) -> dict:
    """The event's fields as keywords for on_event (shallow: images are not copied)."""
    return dict(vars(event))
