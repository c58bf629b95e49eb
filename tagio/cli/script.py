"""Scripted viewer input for `tagio-gui --cli connect --script FILE` (tests and automation).

Theory of operation: a script is a small text file, one command per line, parsed up front (bounded in
size, lines and values) into (name, args) steps, so a typo is reported with its line number before
anything is sent. `run_script` then calls the ViewerSession's send_* methods step by step, sleeping on
a stop event so Ctrl+C interrupts a `wait`. Commands (coordinates are host screen pixels):

    move X Y          pointer to (X, Y)
    click [BUTTON]    press and release (1 left, 2 middle, 3 right; default 1)
    down BUTTON       press            up BUTTON     release
    scroll DX DY      wheel steps (DY > 0 scrolls up, DX > 0 right; as protocol.session.Scroll)
    key KEYSYM        press and release an X keysym such as Return, Left, F5, a
    type TEXT         the rest of the line as text
    chat TEXT         the rest of the line as a chat message
    wait SECONDS      pause (at most MAX_WAIT)
    # comment         ignored, as are blank lines
"""

from tagio.errors import ConfigError

MAX_SCRIPT_BYTES = 64 * 1024
MAX_STEPS = 1000
MAX_WAIT = 30.0
MAX_COORD = 1 << 15


def _ints(count, low=-MAX_COORD, high=MAX_COORD):
    def parse(rest):
        parts = rest.split()
        if len(parts) != count:
            raise ValueError(f"expected {count} number(s)")
        values = tuple(int(p) for p in parts)
        if not all(low <= v <= high for v in values):
            raise ValueError("number out of range")
        return values
    return parse


def _button(rest):
    return _ints(1, 1, 9)(rest or "1")


def _keysym(rest):
    rest = rest.strip()
    if not rest or len(rest) > 64 or " " in rest:
        raise ValueError("expected one keysym")
    return (rest,)


def _text(rest):
    if not rest or len(rest) > 1000:
        raise ValueError("expected text")
    return (rest,)


def _seconds(rest):
    value = float(rest)
    if not 0 <= value <= MAX_WAIT:
        raise ValueError(f"wait must be 0-{MAX_WAIT:g} seconds")
    return (value,)


# command -> argument parser (the raw rest of the line in, a tuple of arguments out)
PARSERS = {
    "move": _ints(2, 0),
    "click": _button,
    "down": _button,
    "up": _button,
    "scroll": _ints(2, -100, 100),
    "key": _keysym,
    "type": _text,
    "chat": _text,
    "wait": _seconds,
}


def parse_script(text: str) -> list:
    """Script text -> [(command, args), ...]; raise ConfigError naming the bad line."""
    if len(text) > MAX_SCRIPT_BYTES:
        raise ConfigError(f"script larger than {MAX_SCRIPT_BYTES} bytes")
    steps = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, _, rest = stripped.partition(" ")
        parser = PARSERS.get(name)
        if parser is None:
            raise ConfigError(f"script line {number}: unknown command {name[:20]!r}")
        try:
            steps.append((name, parser(line.lstrip()[len(name) + 1:] if name in ("type", "chat") else rest)))
        except ValueError as exc:
            raise ConfigError(f"script line {number}: {name}: {exc}") from None
        if len(steps) > MAX_STEPS:
            raise ConfigError(f"script has more than {MAX_STEPS} steps")
    return steps


def load_script(path) -> list:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read script {path}: {exc.strerror or exc}") from None
    try:
        return parse_script(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"script {path} is not UTF-8 text") from None


def _click(session, button):
    session.send_mouse_button(button, True)
    session.send_mouse_button(button, False)


def _key(session, keysym):
    session.send_key(keysym, True)
    session.send_key(keysym, False)


# command -> what it does to a ViewerSession; `wait` is handled by run_script (it needs the stop event)
ACTIONS = {
    "move": lambda s, x, y: s.send_mouse_move(x, y),
    "click": _click,
    "down": lambda s, b: s.send_mouse_button(b, True),
    "up": lambda s, b: s.send_mouse_button(b, False),
    "scroll": lambda s, dx, dy: s.send_scroll(dx, dy),
    "key": _key,
    "type": lambda s, text: s.send_text(text),
    "chat": lambda s, text: s.send_chat(text),
}


def run_script(session, steps, stop_event, step_delay=0.02) -> bool:
    """Play steps into session; False if stopped early. A short delay between steps keeps the
    host's injected events in order with the OS's own event processing."""
    for name, args in steps:
        if stop_event.is_set():
            return False
        if name == "wait":
            if stop_event.wait(args[0]):
                return False
            continue
        ACTIONS[name](session, *args)
        if stop_event.wait(step_delay):
            return False
    return True
