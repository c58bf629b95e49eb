"""What a Tk mouse event means for the host, on the viewer's own platform (pure; no widgets).

Theory of operation. Tk numbers mouse buttons differently per platform. On X11, 4/5 (and 6/7) are
the wheel (vertical, horizontal) and 8/9 are the side buttons Back/Forward. On Windows the wheel is
a separate <MouseWheel> event and Tk 8.6 reports the side buttons (XBUTTON1/2) as 4/5: read as wheel
buttons they scrolled the host. The protocol's Mouse carries buttons 1-3, so the side buttons go to
the host as what they do in browsers and file managers on every system: Alt+Left and Alt+Right.

The wheel: a notched wheel sends a <MouseWheel> delta of 120 per notch, but a touchpad or a free
spinning wheel sends many small deltas (8, 30 ...). Each event used to count as at least one notch,
which scrolled the host 2-12 times too far. On Windows `WheelAccumulator` adds the deltas up and
sends whole notches, the rest carried over (as Tk's own Windows code does for high-resolution wheels since
8.6.11, so with such a Tk the deltas simply arrive whole); the remainder is dropped after a pause.
"""

WHEEL_DELTA = 120
WHEEL_PAUSE = 1.5           # seconds without wheel events after which a remainder is forgotten
MAX_STEPS = 10              # notches sent for one event at most (a flung wheel)
BACK_FORWARD = {"back": ("Alt_L", "Left"), "forward": ("Alt_L", "Right")}

# (platform, Tk button) -> what it is; missing -> ("button", num) for 1-3, else ignored
_X11_BUTTONS = {4: ("scroll", (0, 1)), 5: ("scroll", (0, -1)), 6: ("scroll", (-1, 0)), 7: ("scroll", (1, 0)),
                8: ("keys", BACK_FORWARD["back"]), 9: ("keys", BACK_FORWARD["forward"])}
_WINDOWS_BUTTONS = {4: ("keys", BACK_FORWARD["back"]), 5: ("keys", BACK_FORWARD["forward"])}


def button_role(num: int, windows: bool, shift: bool = False):
    """("button", n), ("scroll", (dx, dy)), ("keys", names) or None for a Tk button number."""
    if num in (1, 2, 3):
        return "button", num
    role = (_WINDOWS_BUTTONS if windows else _X11_BUTTONS).get(num)
    if role is not None and role[0] == "scroll" and shift and role[1][0] == 0:
        return "scroll", (-role[1][1], 0)           # Shift+wheel: sideways
    return role


class WheelAccumulator:
    """<MouseWheel> deltas -> whole notches (positive: up/away from the user). Off Windows (macOS's
    Tk reports lines, 1, 2, ..., not 120ths) every event is at least one notch, as before."""

    def __init__(self, windows: bool):
        self._windows = windows
        self._rest, self._last = 0, None

    def add(self, delta: int, now: float) -> int:
        if not self._windows:
            return max(-MAX_STEPS, min(MAX_STEPS, int(delta / WHEEL_DELTA) or (1 if delta > 0 else -1)))
        if self._last is None or now - self._last > WHEEL_PAUSE or (delta > 0) != (self._rest > 0):
            self._rest = 0                          # a new gesture, or the direction changed
        self._last = now
        total = self._rest + int(delta)
        steps = int(total / WHEEL_DELTA)            # towards zero: -130 is one notch, rest -10
        self._rest = total - steps * WHEEL_DELTA
        return max(-MAX_STEPS, min(MAX_STEPS, steps))
