"""Client settings: one small JSON file in the user's config folder.

Theory of operation: `Settings.load(config_dir)` reads `settings.json` (bounded in size), checks every
field against the FIELDS table (type, range, default) and keeps only valid values, so a hand-edited or
damaged file degrades to defaults field by field instead of stopping the program. A file that is not JSON
at all is moved aside to `settings.json.bad` (nothing is lost) and defaults are used; `warning` says so.
`save()` writes a temporary file with owner-only permissions and renames it over the old one, so a crash
mid-write never leaves half a file. `partner_views` remembers the session window per partner (size and
position, zoom, monitor, quality, full screen), bounded to MAX_PARTNER_VIEWS partners.

The permanent password is never stored: only `tagio.crypto.kdf.password_secret(password, host_id)`, the
value the host handshake needs. Which relay to use is decided by `resolve_relay`: the `--relay` flag,
then `TAGIO_RELAY`, then the settings file, then `tagio.DEFAULT_RELAY`.
"""

import json
import os
import re
import sys
import threading
from pathlib import Path

from tagio import DEFAULT_RELAY
from tagio.errors import ConfigError
from tagio.platform import atomic_write
from tagio.protocol.address import RelayTarget, format_address, parse_address, parse_relay  # noqa: F401

SETTINGS_FILE = "settings.json"
MAX_FILE_BYTES = 64 * 1024          # a settings file is a few hundred bytes; refuse anything silly
MAX_RECENT = 10
MAX_TEXT = 256
DEFAULT_PORT = 443
ENV_CONFIG_DIR = "TAGIO_CONFIG_DIR"
ENV_RELAY = "TAGIO_RELAY"
# One save at a time in this process: the Tk thread (Settings dialog) and a connect worker
# (recent partners) both save, and they share the temporary file's name.
_SAVE_LOCK = threading.Lock()


def default_config_dir(environ=None) -> Path:
    """%APPDATA%\\TagIO on Windows, ~/.config/tagio elsewhere; TAGIO_CONFIG_DIR overrides both."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_CONFIG_DIR):
        return Path(environ[ENV_CONFIG_DIR]).expanduser()
    if sys.platform == "win32" and environ.get("APPDATA"):
        return Path(environ["APPDATA"]) / "TagIO"
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tagio"


def resolve_relay_text(flag=None, settings=None, environ=None) -> str:
    """Which relay to use, as typed: --relay, then TAGIO_RELAY, then settings, then the default."""
    environ = os.environ if environ is None else environ
    for candidate in (flag, environ.get(ENV_RELAY), getattr(settings, "relay", None), DEFAULT_RELAY):
        if candidate:
            return str(candidate).strip()
    raise ConfigError("no relay configured")  # unreachable: DEFAULT_RELAY is set


def resolve_relay(flag=None, settings=None, environ=None) -> tuple:
    """The relay to use as (host, port) (see resolve_relay_text for the order)."""
    return parse_relay(resolve_relay_text(flag, settings, environ)).address


# ---------------------------------------------------------------- field validation (a table, not ifs)

def _text_or_none(value):
    if value is None or (isinstance(value, str) and 0 < len(value) <= MAX_TEXT):
        return value
    raise ValueError("expected a short string or null")


def _relay(value):
    if value is None:
        return None
    parse_relay(value)
    return str(value)


def _hex_secret(value):
    if value is None:
        return None
    raw = bytes.fromhex(value)
    if not 16 <= len(raw) <= 64:
        raise ValueError("secret has a wrong length")
    return raw


def _bool(value):
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


def _int_range(low, high):
    def check(value):
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        raise ValueError(f"expected an integer {low}-{high}")
    return check


def _recent(value):
    if not isinstance(value, list):
        raise ValueError("expected a list")
    out = []
    for item in value[:MAX_RECENT]:
        if isinstance(item, str) and len(item) == 9 and item.isdigit():
            out.append(item)
    return out


# A remembered session-window view per partner (tagio/ui/viewer_window.py view_prefs): key -> check.
MAX_PARTNER_VIEWS = 32
VIEW_ZOOMS = ("fit", "1.0", "0.5", "0.75", "1.5", "2.0")
VIEW_QUALITIES = ("sharpest", "balanced", "fastest")
_GEOMETRY = re.compile(r"^\d{2,5}x\d{2,5}([+-]-?\d{1,5}[+-]-?\d{1,5})?$")
VIEW_FIELDS = {
    "geometry": lambda v: isinstance(v, str) and bool(_GEOMETRY.match(v)),
    "zoom": lambda v: v in VIEW_ZOOMS,
    "monitor": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 16,
    "quality": lambda v: v in VIEW_QUALITIES,
    "fullscreen": lambda v: isinstance(v, bool),
    "toolbar_collapsed": lambda v: isinstance(v, bool),
    "show_both": lambda v: isinstance(v, bool),
    "used": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,   # newer = larger
}


def clean_view(value) -> dict:
    """One partner's remembered view with only the valid fields (a bad field is dropped alone)."""
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return {k: v for k, v in value.items() if k in VIEW_FIELDS and VIEW_FIELDS[k](v)}


def _partner_views(value):
    """partner ID -> view; the MAX_PARTNER_VIEWS most recently used (the file is written with
    sorted keys, so recency is the views' own "used" number), oldest first."""
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    views = [(partner, clean_view(view)) for partner, view in value.items()
             if isinstance(partner, str) and len(partner) == 9 and partner.isdigit() and isinstance(view, dict)]
    views.sort(key=lambda item: item[1].get("used", 0))
    return dict(views[-MAX_PARTNER_VIEWS:])


# field -> (validator applied to JSON values, default, to-JSON converter)
FIELDS = {
    "relay": (_relay, None, None),
    "relay_secret": (_text_or_none, None, None),
    "permanent_secret": (_hex_secret, None, lambda v: None if v is None else v.hex()),
    "ask_before_accept": (_bool, True, None),
    "fps_cap": (_int_range(1, 60), 30, None),
    "quality": (_int_range(10, 95), 75, None),
    "view_only": (_bool, False, None),
    "clipboard": (_bool, True, None),       # share the clipboard with partners (both ways)
    "allow_reconnect": (_bool, True, None),  # a viewer whose path broke may come back for 60 s
    "recent_partners": (_recent, [], list),
    "partner_views": (_partner_views, {}, dict),
}


class Settings:
    """The user's client settings; attributes are the FIELDS above plus `config_dir` and `warning`."""

    def __init__(self, config_dir=None, **values):
        self.config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
        self.warning = None
        for name, (_check, default, _to_json) in FIELDS.items():
            setattr(self, name, type(default)(default) if isinstance(default, (list, dict)) else default)
        for name, value in values.items():
            if name not in FIELDS:
                raise ConfigError(f"unknown setting {name!r}")
            setattr(self, name, value)

    @property
    def path(self) -> Path:
        return self.config_dir / SETTINGS_FILE

    @classmethod
    def load(cls, config_dir=None) -> "Settings":
        """Read settings from config_dir (defaults when there is no file). Raises ConfigError only
        when the file exists but cannot be read at all (permissions, a directory in its place)."""
        settings = cls(config_dir)
        data = settings._read_json()
        if data is not None:
            settings._apply(data)
        return settings

    def _read_json(self):
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read settings {self.path}: {exc.strerror or exc}") from exc
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError("file too large")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        except ValueError as exc:
            self._set_aside(exc)
            return None

    def _set_aside(self, reason):
        """Keep a damaged file for the user to inspect, and start from defaults."""
        bad = self.path.with_name(SETTINGS_FILE + ".bad")
        try:
            os.replace(self.path, bad)
            self.warning = f"settings file was damaged ({reason}); kept as {bad.name}, using defaults"
        except OSError:
            self.warning = f"settings file was damaged ({reason}); using defaults"

    def _apply(self, data):
        bad = []
        for name, (check, _default, _to_json) in FIELDS.items():
            if name not in data:
                continue
            try:
                setattr(self, name, check(data[name]))
            except (ValueError, TypeError, ConfigError):
                bad.append(name)
        if bad:
            self.warning = "ignored invalid setting(s): " + ", ".join(bad)

    def to_json(self) -> dict:
        out = {}
        for name, (_check, _default, to_json) in FIELDS.items():
            value = getattr(self, name)
            out[name] = to_json(value) if to_json else value
        return out

    def save(self) -> None:
        """Write atomically (temp file + rename), owner-only. Raises ConfigError on failure."""
        with _SAVE_LOCK:
            self._write(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    def _write(self, text):
        try:
            self.config_dir.mkdir(parents=True, exist_ok=True)
            _restrict(self.config_dir, 0o700)
            atomic_write(self.path, text.encode("utf-8"), 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot save settings {self.path}: {exc.strerror or exc}") from exc

    # ------------------------------------------------------------ helpers used by the UI and the CLI

    def set_permanent_password(self, password, host_id) -> None:
        """Store the derived secret of `password` (None or "" clears it). The password is not kept."""
        if not password:
            self.permanent_secret = None
            return
        if len(password) < 6 or len(password) > MAX_TEXT:
            raise ConfigError("a permanent password needs 6 to 256 characters")
        from tagio.crypto.kdf import password_secret   # imported late: scrypt is only needed here
        self.permanent_secret = password_secret(password, host_id)

    def add_recent(self, partner_id) -> None:
        """Move partner_id to the front of the recent list, keeping at most MAX_RECENT."""
        rest = [p for p in self.recent_partners if p != partner_id]
        self.recent_partners = ([partner_id] + rest)[:MAX_RECENT]

    def remember_view(self, partner_id, view) -> None:
        """Keep the session window's view for `partner_id` (the newest last, at most
        MAX_PARTNER_VIEWS partners). Saved by the next save()."""
        views = {p: v for p, v in self.partner_views.items() if p != partner_id}
        used = max((v.get("used", 0) for v in views.values()), default=0) + 1
        views[partner_id] = dict(clean_view(view), used=used)
        self.partner_views = dict(list(views.items())[-MAX_PARTNER_VIEWS:])

    def __repr__(self):
        # Never show secrets, not even in a debugger or a log line that formats the object.
        shown = {k: v for k, v in self.to_json().items() if k not in ("relay_secret", "permanent_secret")}
        return f"Settings({self.config_dir}, {shown})"


def _restrict(path, mode):
    if os.name == "posix":     # Windows: %APPDATA% is already per-user; chmod only toggles read-only
        try:
            os.chmod(path, mode)
        except OSError:
            pass

