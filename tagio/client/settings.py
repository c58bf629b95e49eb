"""Client settings: one small JSON file in the user's config folder.

Theory of operation: `Settings.load(config_dir)` reads `settings.json` (bounded in size), checks every
field against the FIELDS table (its JSON type first, then range or form; default) and keeps only valid
values, so a hand-edited or damaged file degrades to defaults field by field instead of stopping the
program: one warning names the fields that fell back ("relay": 12 is refused, never read as "12").
A file that is not JSON at all is moved aside to `settings.json.bad` (nothing is lost) and defaults
are used; `warning` says so. `save()` writes a temporary file with owner-only permissions and renames
it over the old one, so a crash mid-write never leaves half a file. `partner_views` remembers the
session window per partner (size and position, zoom, monitor, quality, full screen), bounded to
MAX_PARTNER_VIEWS partners.

Files: partners may send and fetch files only when `allow_files` is on (off by default), and only in
one folder, `files_dir` (default: DEFAULT_FILES_DIR, "TagIO Files" in the home folder, rather than
the home folder itself, so a partner does not see the user's keys and configuration unless the user
chooses a wider folder). `host_files_dir()` gives what a host session gets (None: no files).

`desk_name` ("name this desk") is shown to partners inside sessions only. The address book and the
always-allowed desks (`partners`, client/partners.py) and the host's session history (`history`,
client/history.py) live in their own files in the same folder, loaded on first use.

The permanent password is never stored, nor anything that works as one: only its SPAKE2+ verifier
(`tagio.crypto.kdf.permanent_verifier(password, host_id)`, w0 || L, RFC 9383), so a stolen settings file
lets nobody in. Files from before kept a password-equivalent `permanent_secret`: it is dropped on load
(a log line, and `warning` tells the user to set the permanent password again) and the file is rewritten
without it. Which relay to use is decided by `resolve_relay`: the `--relay` flag,
then `TAGIO_RELAY`, then the settings file, then `tagio.DEFAULT_RELAY`.
"""

import json
import logging
import os
import re
import sys
import threading
from pathlib import Path

from tagio import DEFAULT_RELAY
from tagio.errors import ConfigError
from tagio.platform import atomic_write
from tagio.protocol.address import RelayTarget, format_address, parse_address, parse_relay  # noqa: F401

log = logging.getLogger("tagio.client")

SETTINGS_FILE = "settings.json"
MAX_FILE_BYTES = 64 * 1024          # a settings file is a few hundred bytes; refuse anything silly
MAX_RECENT = 10
MAX_TEXT = 256
# A permanent password lets partners in without the accept prompt and does not rotate: it must
# stand up to online guessing for a long time (the CLI's --password and the Settings dialog).
MIN_PERMANENT_PASSWORD = 10
DEFAULT_PORT = 443
ENV_CONFIG_DIR = "TAGIO_CONFIG_DIR"
ENV_RELAY = "TAGIO_RELAY"
# One save at a time in this process: the Tk thread (Settings dialog) and a connect worker
# (recent partners) both save, and they share the temporary file's name.
_SAVE_LOCK = threading.Lock()
_BOOK_LOCK = threading.Lock()       # the partner book and the history are loaded once, by any thread


def default_config_dir(environ=None) -> Path:
    """%LOCALAPPDATA%\\TagIO on Windows, ~/.config/tagio elsewhere; TAGIO_CONFIG_DIR overrides both.

    Not the roaming %APPDATA%: a roaming profile copies it to every PC the user logs on to, and two
    PCs with one identity key would have one TagIO ID. A folder an older TagIO left in %APPDATA% is
    moved over once (migrate_roaming_config)."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_CONFIG_DIR):
        return Path(environ[ENV_CONFIG_DIR]).expanduser()
    if sys.platform == "win32" and environ.get("LOCALAPPDATA"):
        local = Path(environ["LOCALAPPDATA"]) / "TagIO"
        if environ.get("APPDATA"):
            migrate_roaming_config(Path(environ["APPDATA"]) / "TagIO", local)
        return local
    if sys.platform == "win32" and environ.get("APPDATA"):
        return Path(environ["APPDATA"]) / "TagIO"
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tagio"


ROAMING_NOTE = "MOVED.txt"
_ROAMING_FILES = ("identity.pem", SETTINGS_FILE, "identity.registered")


def migrate_roaming_config(roaming: Path, local: Path) -> bool:
    """Move an older TagIO's files from the roaming folder to the local one, once: only when the
    local folder has no identity yet and the roaming one has. The roaming key is removed (with a
    note left in its place), so another PC sharing the profile makes its own ID instead of taking
    this one. Returns True when it moved something; an OSError leaves the roaming files in use."""
    if (local / "identity.pem").exists() or not (roaming / "identity.pem").exists():
        return False
    try:
        for name in _ROAMING_FILES:
            if (roaming / name).exists() and not (local / name).exists():
                atomic_write(local / name, (roaming / name).read_bytes())
        (roaming / ROAMING_NOTE).write_text(f"TagIO keeps its files in {local} now (not roaming).\n")
        (roaming / "identity.pem").unlink()
    except OSError:
        return False
    return True


def resolve_relay_text(flag=None, settings=None, environ=None) -> str:
    """Which relay to use, as typed: --relay, then TAGIO_RELAY, then settings, then the default."""
    environ = os.environ if environ is None else environ
    for candidate in (flag, environ.get(ENV_RELAY), (settings.relay if settings is not None else None), DEFAULT_RELAY):
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


def _verifier(value):
    if value is None:
        return None
    from tagio.crypto.kdf import split_verifier
    from tagio.errors import LocalProtocolError
    raw = bytes.fromhex(value)
    try:
        split_verifier(raw)
    except LocalProtocolError as exc:
        raise ValueError(str(exc)) from None
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


DEFAULT_FILES_DIR = "TagIO Files"          # in the home folder
MAX_PATH_TEXT = 4096


def _folder_or_none(value):
    if value is None or (isinstance(value, str) and 0 < len(value) <= MAX_PATH_TEXT and "\0" not in value):
        return value
    raise ValueError("expected a folder path or null")


def default_files_dir() -> Path:
    return Path.home() / DEFAULT_FILES_DIR


# Fields of older files that are dropped on load, with what the user is told.
RETIRED = {
    "permanent_secret": "the permanent password must be set again (it is now stored in a form that "
                        "cannot be used as the password)",
}

def _desk_name(value):
    """"Name this desk": shown to partners (inside the session only), "" = none."""
    from tagio.protocol.session import clean_name
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return clean_name(value)


# What each field holds in the JSON file, checked before its validator so that a value of the wrong
# type ("relay": 12) is refused like any other bad value, never converted.
TEXT, TEXT_OR_NULL, BOOL, INT = (str,), (str, type(None)), (bool,), (int,)
LIST, OBJECT = (list,), (dict,)

# field -> (JSON types, validator applied to JSON values, default, to-JSON converter)
FIELDS = {
    "relay": (TEXT_OR_NULL, _relay, None, None),
    "relay_secret": (TEXT_OR_NULL, _text_or_none, None, None),
    "permanent_verifier": (TEXT_OR_NULL, _verifier, None, lambda v: None if v is None else v.hex()),
    "ask_before_accept": (BOOL, _bool, True, None),
    "fps_cap": (INT, _int_range(1, 60), 30, None),
    "quality": (INT, _int_range(10, 95), 75, None),
    "view_only": (BOOL, _bool, False, None),
    "clipboard": (BOOL, _bool, True, None),       # share the clipboard with partners (both ways)
    "allow_files": (BOOL, _bool, False, None),    # partners may send and fetch files (in files_dir)
    "files_dir": (TEXT_OR_NULL, _folder_or_none, None, None),     # None: default_files_dir()
    "allow_reconnect": (BOOL, _bool, True, None),  # a viewer whose path broke may come back for 60 s
    "recent_partners": (LIST, _recent, [], list),
    "partner_views": (OBJECT, _partner_views, {}, dict),
    # The host's direct port, chosen once (0: not yet) and kept, so that a firewall or port-forwarding
    # rule made for it keeps working (tagio.client.paths.make_listener).
    "direct_port": (INT, _int_range(0, 65535), 0, None),
    "firewall_notice_shown": (BOOL, _bool, False, None),   # Windows: the home window explained the prompt
    "desk_name": (TEXT, _desk_name, "", None),
}
TYPE_WORDS = {TEXT: "text", TEXT_OR_NULL: "text or null", BOOL: "true or false", INT: "a whole number",
              LIST: "a list", OBJECT: "an object"}


def check_field(name, value):
    """The value to keep for field `name` from the JSON value `value`. Raises ValueError when it
    has the wrong JSON type (a bool is not a number here) or fails the field's own check."""
    types, check, _default, _to_json = FIELDS[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ValueError(f"{name}: expected {TYPE_WORDS[types]}, not {type(value).__name__}")
    return check(value)


class Settings:
    """The user's client settings; attributes are the FIELDS above plus `config_dir` and `warning`."""

    def __init__(self, config_dir=None, **values):
        self.config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
        self.warning = None
        for name, (_types, _check, default, _to_json) in FIELDS.items():
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
            settings._retire(data)
        return settings

    def _retire(self, data):
        """Drop fields of older files; one that held a secret is erased from the disk at once."""
        retired = [name for name in RETIRED if data.get(name) is not None]
        if not retired:
            return
        for name in retired:
            log.warning("settings: dropped the old %s: %s", name, RETIRED[name])
        notes = [RETIRED[name] for name in retired] + ([self.warning] if self.warning else [])
        self.warning = "; ".join(notes)
        try:
            self.save()
        except ConfigError as exc:
            log.warning("%s", exc)

    def _read_json(self):
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            if self.config_dir.exists() and not self.config_dir.is_dir():   # Windows: "path not found"
                raise ConfigError(f"cannot read settings {self.path}: {self.config_dir} is not a folder") from None
            return None
        except OSError as exc:      # POSIX reports a file in the folder's place as ENOTDIR here
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
        """Keep a damaged file for the user to inspect, and start from defaults. The warning is for
        people (the window's notice, the command line's warning line): the parser's words ("Expecting
        ',' delimiter: line 2 column 1 (char 72)") go to the log only."""
        bad = self.path.with_name(SETTINGS_FILE + ".bad")
        what = "too large to be TagIO's" if "too large" in str(reason) else "damaged"
        log.warning("settings file %s is %s: %s", self.path, what, reason)
        try:
            os.replace(self.path, bad)
            self.warning = (f"The settings file was {what}, so TagIO started with its default settings; "
                            f"the old file is kept as {bad}.")
        except OSError:
            self.warning = f"The settings file {self.path} was {what}, so TagIO started with its default settings."

    def _apply(self, data):
        bad = []
        for name in FIELDS:
            if name not in data:
                continue
            try:
                setattr(self, name, check_field(name, data[name]))
            except (ValueError, TypeError, ConfigError) as exc:
                log.warning("settings: %s is not valid (%s); using its default", name, exc)
                bad.append(name)
        if bad:
            self.warning = "Some settings were not valid and are back to their defaults: " + ", ".join(bad) + "."

    def to_json(self) -> dict:
        out = {}
        for name, (_types, _check, _default, to_json) in FIELDS.items():
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
        """Store the SPAKE2+ verifier of `password` (None or "" clears it); the password and its
        scrypt secret are not kept. Raises ConfigError for a password that is too short or long,
        or that looks like a one-time password."""
        if not password:
            self.permanent_verifier = None
            return
        if len(password) < MIN_PERMANENT_PASSWORD or len(password) > MAX_TEXT:
            raise ConfigError(f"a permanent password needs {MIN_PERMANENT_PASSWORD} to {MAX_TEXT} characters")
        from tagio.crypto.kdf import permanent_verifier   # imported late: scrypt is only needed here
        self.permanent_verifier = permanent_verifier(password, host_id)

    def files_folder(self) -> Path:
        """The folder partners may use (whether or not files are allowed)."""
        return Path(self.files_dir).expanduser() if self.files_dir else default_files_dir()

    def host_files_dir(self):
        """What host sessions get as files_dir: None unless files are allowed; else the folder,
        made if missing. Raises ConfigError when it cannot be made or is not a folder."""
        if not self.allow_files:
            return None
        folder = self.files_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot use the files folder {folder}: {exc.strerror or exc}") from exc
        return str(folder)

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

    @property
    def partners(self):
        """The address book and the always-allowed desks (client/partners.py, partners.json in the
        same folder), loaded on first use and seeded from the old recent list."""
        with _BOOK_LOCK:
            if self.__dict__.get("_partner_book") is None:
                from tagio.client.partners import PartnerBook
                book = PartnerBook(self.config_dir)
                book.seed(self.recent_partners)
                self._partner_book = book
            return self._partner_book

    @property
    def history(self):
        """The host's session history (client/history.py, history.json), loaded on first use."""
        with _BOOK_LOCK:
            if self.__dict__.get("_history") is None:
                from tagio.client.history import HostHistory
                self._history = HostHistory(self.config_dir)
            return self._history

    def __repr__(self):
        # Never show secrets, not even in a debugger or a log line that formats the object.
        shown = {k: v for k, v in self.to_json().items() if k not in ("relay_secret", "permanent_verifier")}
        return f"Settings({self.config_dir}, {shown})"


def _restrict(path, mode):
    if os.name == "posix":     # Windows: %APPDATA% is already per-user; chmod only toggles read-only
        try:
            os.chmod(path, mode)
        except OSError:
            pass

