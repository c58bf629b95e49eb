"""Presentation logic of the client windows, kept free of Tk so it can be tested alone.

Theory of operation: the Tk widgets in home.py, settings_dialog.py and prompts.py only
display what the functions here compute, and the controller in app.py only moves data
between the client core and those widgets.  Everything that decides *what* a person sees
-- how an ID is written, which message an error becomes, whether an incoming connection
needs a prompt, which settings are acceptable, which state the home window is in -- lives
here as small pure functions, tables and one state machine.

Nothing in this module may show, log or return a password or secret except the one-time
password the home window is meant to show.
"""

import enum
import logging
import math
from dataclasses import dataclass

from tagio.client.settings import MIN_PERMANENT_PASSWORD, format_address, parse_address, parse_relay
from tagio.client import words
from tagio.client.words import RETRYING_IN, explain, short_reason  # noqa: F401 (short_reason: API)
from tagio.crypto.identity import format_id, normalize_id
from tagio.errors import ConfigError, LocalProtocolError

log = logging.getLogger("tagio.ui")

MAX_PASSWORD_LEN = 128
MAX_SECRET_LEN = 256
FPS_RANGE = (1, 60)
QUALITY_RANGE = (10, 95)      # as tagio.client.settings.FIELDS
ACCEPT_TIMEOUT_S = 30
MAX_RECENT_SHOWN = 12


# --- IDs -----------------------------------------------------------------------------------

def display_id(tagio_id) -> str:
    """'123456789' -> '123 456 789'; anything unusable becomes an em dash placeholder."""
    try:
        return format_id(tagio_id)
    except (ConfigError, TypeError, IndexError):
        return "\u2014"


def validate_partner_id(text: str, own_id: str | None = None):
    """Return (digits, None) for a usable partner ID, or (None, message) to show inline."""
    text = (text or "").strip()
    if not text:
        return None, "Enter your partner's ID (9 digits, shown on their TagIO window)."
    try:
        digits = normalize_id(text)
    except ConfigError:
        return None, "An ID has 9 digits, like 123 456 789."
    if own_id and digits == own_id:
        return None, "That is this desk's own ID; enter your partner's ID."
    return digits, None


# --- relay status ----------------------------------------------------------------------------

# status word -> (text shown, colour key in theme.STATUS_COLOURS)
RELAY_STATUS_TEXT = {
    "online": ("Ready \u2014 connected to the relay", "ok"),
    "connecting": ("Connecting to the relay\u2026", "busy"),
    "unreachable": ("Relay unreachable", "error"),
    "offline": ("Relay unreachable", "error"),
    "stopped": ("Not connected", "idle"),
}


def parse_relay_status(status):
    """Normalise what the core reports to (word, reason).

    The core gives a plain word ("online") or "word: reason"; a (word, reason) pair or a dict
    with state/reason mean the same.  Anything else is a bug of the caller (TypeError).
    """
    if status is None:
        return "connecting", ""
    if isinstance(status, str):
        word, _, reason = status.partition(":")
        return word.strip().lower(), reason.strip()
    if isinstance(status, (tuple, list)) and status:
        return str(status[0]).lower(), str(status[1]) if len(status) > 1 and status[1] else ""
    if isinstance(status, dict):
        return str(status.get("state", "connecting")).lower(), str(status.get("reason") or "")
    raise TypeError(f"relay status {status!r} is not a word, a pair or a dict")


def relay_status_text(status, relay_address: str = "", lan_available: bool = False, retry_in=None):
    """(line of text, colour key) for the status bar of the home window.

    The LAN hint is only given when the core really offers LAN connections; `retry_in` (seconds
    until the next attempt, while the relay is unreachable) becomes a countdown."""
    word, reason = parse_relay_status(status)
    text, colour = RELAY_STATUS_TEXT.get(word, (word.capitalize() or "Unknown", "idle"))
    if relay_address and colour in ("ok", "error"):
        text = f"{text} ({relay_address})"
    if reason and colour == "error":
        text = f"{text}: {short_reason(reason)}"
    if colour == "error" and retry_in is not None:
        text += " \u2014 " + RETRYING_IN.format(seconds=math.ceil(retry_in))
    if colour == "error" and lan_available:
        text += " \u2014 LAN connections still work"
    return text, colour


# --- errors -----------------------------------------------------------------------------------

def error_message(exc: BaseException, partner_id: str = ""):
    """(title, message) for an error from connecting or from a session, in the words of the one
    table (tagio.client.words); the technical detail goes to the log, never into the dialog."""
    said = explain(exc, partner_id=partner_id)
    log.info("%s (%s: %s)", said.title, type(exc).__name__, said.detail)
    return said.title, said.body


# --- incoming connections -----------------------------------------------------------------

class AcceptDecision(enum.Enum):
    ACCEPT = "accept"
    ASK = "ask"


def decide_accept(ask_before_accept: bool, unattended: bool) -> AcceptDecision:
    """Unattended access (permanent password) never prompts; otherwise the setting decides."""
    if unattended or not ask_before_accept:
        return AcceptDecision.ACCEPT
    return AcceptDecision.ASK


def countdown_text(peer_id: str, seconds_left: int, name: str = "") -> str:
    """The accept prompt's text; `name` is the viewer's desk name (already cleaned)."""
    desk = f"Desk {desk_text(peer_id, name)}"
    return (words.ACCEPT_WANTS.format(desk=desk) + "\n"
            + words.ACCEPT_DENIED_IN.format(seconds=max(0, int(seconds_left))))


def desk_text(peer_id: str, name: str = "") -> str:
    """'123 456 789', or '123 456 789 (Bob)' with the desk's (cleaned) name."""
    return display_id(peer_id) + (f" ({name})" if name else "")


def controlled_text(peer_id: str, name: str = "") -> str:
    return f"Being controlled by {desk_text(peer_id, name)}"


# --- home window state machine ---------------------------------------------------------------

class HomeState(enum.Enum):
    IDLE = "idle"                # ready to connect
    ASKING_PASSWORD = "asking"   # the ID is checked, then the password dialog is open
    CONNECTING = "connecting"    # worker thread is connecting
    WAITING = "waiting"          # connected; the partner's user is being asked to accept
    IN_SESSION = "in_session"    # viewer window open
    ERROR_SHOWN = "error"        # error dialog open; closing it returns to IDLE


class HomeEvent(enum.Enum):
    CONNECT_CLICKED = "connect_clicked"
    PASSWORD_GIVEN = "password_given"
    PASSWORD_CANCELLED = "password_cancelled"
    WAITING = "waiting"          # the partner is asking its user
    CANCEL_CLICKED = "cancel_clicked"
    CONNECTED = "connected"
    FAILED = "failed"
    SESSION_ENDED = "session_ended"
    ERROR_DISMISSED = "error_dismissed"


_S, _E = HomeState, HomeEvent
HOME_TRANSITIONS = {
    (_S.IDLE, _E.CONNECT_CLICKED): _S.ASKING_PASSWORD,
    (_S.ASKING_PASSWORD, _E.PASSWORD_GIVEN): _S.CONNECTING,
    (_S.ASKING_PASSWORD, _E.PASSWORD_CANCELLED): _S.IDLE,
    (_S.ASKING_PASSWORD, _E.FAILED): _S.ERROR_SHOWN,      # the ID check: unknown or offline
    (_S.CONNECTING, _E.CONNECTED): _S.IN_SESSION,
    (_S.CONNECTING, _E.FAILED): _S.ERROR_SHOWN,
    (_S.CONNECTING, _E.WAITING): _S.WAITING,
    (_S.CONNECTING, _E.CANCEL_CLICKED): _S.IDLE,
    (_S.WAITING, _E.CONNECTED): _S.IN_SESSION,
    (_S.WAITING, _E.FAILED): _S.ERROR_SHOWN,
    (_S.WAITING, _E.CANCEL_CLICKED): _S.IDLE,
    (_S.IN_SESSION, _E.SESSION_ENDED): _S.IDLE,
    (_S.IN_SESSION, _E.FAILED): _S.ERROR_SHOWN,
    (_S.ERROR_SHOWN, _E.ERROR_DISMISSED): _S.IDLE,
}


class HomeMachine:
    """The home window's state; `handle` raises LocalProtocolError for a pair not in the table (a bug)."""

    def __init__(self):
        self.state = HomeState.IDLE

    def can(self, event: HomeEvent) -> bool:
        return (self.state, event) in HOME_TRANSITIONS

    def handle(self, event: HomeEvent) -> HomeState:
        try:
            self.state = HOME_TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(f"home window: {event.value} not allowed in state {self.state.value}") from None
        return self.state

    @property
    def connect_enabled(self) -> bool:
        return self.state is HomeState.IDLE

    @property
    def cancel_enabled(self) -> bool:
        return self.state in (HomeState.CONNECTING, HomeState.WAITING)


# --- settings form ------------------------------------------------------------------------------

@dataclass
class SettingsForm:
    """The raw strings/flags the settings dialog collects."""
    relay: str = ""
    relay_secret: str = ""
    new_password: str = ""
    confirm_password: str = ""
    clear_password: bool = False
    ask_before_accept: bool = True
    fps_cap: str = "30"
    quality: str = "75"
    view_only: bool = False
    allow_reconnect: bool = True


def check_relay(text: str):
    """Relay field -> "host:port" (or a tls://, ws://, wss:// URL) text, or None for "use the
    default relay"; raises ConfigError."""
    text = (text or "").strip()
    if not text:
        return None
    if "://" in text:
        parse_relay(text)               # validates the URL forms the client understands
        return text
    return format_address(parse_address(text))


def _parse_int(text, bounds, what):
    low, high = bounds
    text = str(text).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{what} must be a whole number from {low} to {high}.")
    return int(text)


def _check_password(form: SettingsForm):
    """New permanent password: None (unchanged), "" (clear) or the password; raises ConfigError."""
    if form.clear_password:
        return ""
    if not form.new_password and not form.confirm_password:
        return None
    if len(form.new_password) < MIN_PERMANENT_PASSWORD:
        raise ConfigError(f"The permanent password needs at least {MIN_PERMANENT_PASSWORD} characters.")
    if len(form.new_password) > MAX_PASSWORD_LEN:
        raise ConfigError(f"The permanent password may have at most {MAX_PASSWORD_LEN} characters.")
    if form.new_password != form.confirm_password:
        raise ConfigError("The two permanent passwords do not match.")
    return form.new_password


# field name -> checker(form) returning the clean value; errors are keyed by field name
FIELD_CHECKS = {
    "relay": lambda f: check_relay(f.relay),
    "relay_secret": lambda f: _check_secret(f.relay_secret),
    "permanent_password": _check_password,
    "fps_cap": lambda f: _parse_int(f.fps_cap, FPS_RANGE, "The frame-rate cap"),
    "quality": lambda f: _parse_int(f.quality, QUALITY_RANGE, "Quality"),
    "ask_before_accept": lambda f: bool(f.ask_before_accept),
    "view_only": lambda f: bool(f.view_only),
    "allow_reconnect": lambda f: bool(f.allow_reconnect),
}


def _check_secret(secret: str):
    secret = (secret or "").strip()
    if len(secret) > MAX_SECRET_LEN:
        raise ConfigError(f"The relay secret may have at most {MAX_SECRET_LEN} characters.")
    return secret or None


def validate_settings(form: SettingsForm):
    """Return (values, errors): clean values by field, and a message per bad field."""
    values, errors = {}, {}
    for name, check in FIELD_CHECKS.items():
        try:
            values[name] = check(form)
        except ConfigError as exc:
            errors[name] = str(exc)
    return values, errors


# --- lists -------------------------------------------------------------------------------------

def recent_rows(recent) -> list:
    """Recent partners (IDs, or dicts/tuples with an id and a name) -> [(id, line shown)]."""
    return _rows(recent, _recent_item)


def lan_rows(peers) -> list:
    """LAN peers (LanPeer objects, {id, name} dicts or (id, addr) tuples) -> [(id, line shown)]."""
    return _rows(peers, _lan_item)


def _recent_item(item):
    """(id, extra text) of one recent partner."""
    if isinstance(item, dict):
        return item.get("id"), item.get("name") or item.get("label") or ""
    if isinstance(item, (tuple, list)) and item:
        return item[0], (item[1] if len(item) > 1 else "")
    return item, ""


def _lan_item(item):
    """(id, extra text or address) of one LAN peer."""
    if isinstance(item, dict):
        return item.get("id"), item.get("name") or item.get("host") or ""
    if isinstance(item, (tuple, list)):
        return _recent_item(item)
    return item.id, item.address        # tagio.net.lan.LanPeer: id, address (ip, port)


def _rows(items, id_and_extra) -> list:
    """[(id, line shown)] for the first MAX_RECENT_SHOWN items; unusable IDs are skipped."""
    rows = []
    for item in list(items or [])[:MAX_RECENT_SHOWN]:
        pid, extra = id_and_extra(item)
        if isinstance(extra, (tuple, list)):    # an address (ip, port): the ip says enough
            extra = extra[0] if extra else ""
        shown = display_id(pid)
        if shown != "\u2014":
            rows.append((normalize_id(pid), f"{shown}   {extra}".rstrip()))
    return rows


def apply_settings(settings, values: dict, host_id: str) -> None:
    """Copy validated form values onto a Settings object (not saved).  Raises ConfigError.

    The password goes first: if it is refused, nothing else has been changed."""
    password = values.get("permanent_password")
    if password is not None:          # None: leave the stored secret alone; "": clear it
        settings.set_permanent_password(password, host_id)
    for name in ("relay", "relay_secret", "ask_before_accept", "fps_cap", "quality", "view_only",
                 "allow_reconnect"):
        setattr(settings, name, values[name])
