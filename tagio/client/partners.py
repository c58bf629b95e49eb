"""The desks this machine knows: an address book of partners, and the desks it always lets in.

Theory of operation. `PartnerBook` keeps two bounded tables in `partners.json` in the settings
folder, next to settings.json:

    partners  ID -> {name (given here), their_name (the desk's own, from its Introduce),
                     last (unix time of the last session), path (direct / relay / lan)}
              the MAX_PARTNERS most recently used; the home window's list, newest first
    trusted   ID -> {control, clipboard, files, name}: "always allow this desk": the host lets
              this ID in without asking, with these rights; revoked from Settings

Every change goes through one lock (the Tk thread renames, a connect worker records a session,
a host thread reads the trusted table) and is written at once with `atomic_write` (a temporary
file renamed over the old one, owner-only), so a crash never leaves half a file. Loading checks
every entry field by field and drops what is invalid, so a hand-edited file degrades gracefully.

Names are shown to people: each passes `clean_name` (control characters stripped, bounded) on
the way in, whether typed here or sent by the partner.
"""

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tagio.errors import ConfigError
from tagio.platform import atomic_write
from tagio.protocol.session import clean_name

log = logging.getLogger("tagio.client")

PARTNERS_FILE = "partners.json"
MAX_PARTNERS = 200
MAX_TRUSTED = 100
MAX_FILE_BYTES = 256 * 1024
MAX_PATH_TEXT = 16     # a path's name: "direct-tcp", "direct-udp", "relay" (net streams' .path)


@dataclass(frozen=True)
class Rights:
    """What a partner may do in a host session (the accept prompt's choices)."""
    control: bool = True
    clipboard: bool = True
    files: bool = False

    @classmethod
    def from_json(cls, value) -> "Rights":
        if not isinstance(value, dict):
            raise ValueError("expected an object")
        flags = {k: value.get(k, getattr(cls, k)) for k in ("control", "clipboard", "files")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise ValueError("expected true or false")
        return cls(**flags)

    def session_options(self, options: dict) -> dict:
        """HostSession keywords for one session: `options` (the host's settings) narrowed to these
        rights. A right is never widened: view-only in Settings stays view-only."""
        narrowed = dict(options)
        narrowed["view_only"] = bool(options.get("view_only")) or not self.control
        narrowed["clipboard"] = bool(options.get("clipboard", True)) and self.clipboard
        if not self.files:
            narrowed.pop("files_dir", None)
        return narrowed


def _is_id(value) -> bool:
    return isinstance(value, str) and len(value) == 9 and value.isdigit()


def _clean_partner(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return {"name": _name(value.get("name")), "their_name": _name(value.get("their_name")),
            "last": _time(value.get("last", 0)), "path": _path(value.get("path", ""))}


def _name(value) -> str:
    return clean_name(value) if isinstance(value, str) else ""


def _time(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0


def _path(value) -> str:
    return value if isinstance(value, str) and len(value) <= MAX_PATH_TEXT and value.isprintable() else ""


def _clean_trusted(value) -> dict:
    entry = asdict(Rights.from_json(value))
    entry["name"] = _name(value.get("name"))
    return entry


@dataclass(frozen=True)
class Partner:
    """One row of the address book, as the home window shows it."""
    id: str
    name: str
    their_name: str
    last: float
    path: str

    @property
    def shown_name(self) -> str:
        """The name given here wins over the one the desk gave itself."""
        return self.name or self.their_name


class PartnerBook:
    """partners.json in `config_dir`; every method may be called from any thread."""

    def __init__(self, config_dir, clock=time.time):
        self.path = Path(config_dir) / PARTNERS_FILE
        self._clock = clock
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()      # one writer at a time: the newest state lands last
        self._partners, self._trusted = {}, {}
        self.version = 0            # counts changes: a window redraws its list only when it moved
        self.warning = None
        self._load()

    # ------------------------------------------------------------------ reading

    def partners(self) -> list:
        """Every partner, the most recently used first."""
        with self._lock:
            rows = [Partner(pid, **entry) for pid, entry in self._partners.items()]
        return sorted(rows, key=lambda p: p.last, reverse=True)

    def get(self, partner_id):
        with self._lock:
            entry = self._partners.get(partner_id)
        return None if entry is None else Partner(partner_id, **entry)

    def trusted(self) -> dict:
        """ID -> (Rights, name) of the desks let in without asking."""
        with self._lock:
            return {pid: (Rights(e["control"], e["clipboard"], e["files"]), e["name"])
                    for pid, e in self._trusted.items()}

    def trusted_rights(self, partner_id):
        """The Rights remembered for `partner_id`, or None: ask as usual."""
        found = self.trusted().get(partner_id)
        return None if found is None else found[0]

    # ------------------------------------------------------------------ changes (each saved at once)

    def record_session(self, partner_id, path="", their_name=None):
        """A session with `partner_id` started now over `path`; `their_name` is what the desk
        calls itself (None: keep what we knew)."""
        with self._lock:
            entry = self._partners.pop(partner_id, None) or _clean_partner({})
            entry["last"] = self._clock()
            entry["path"] = _path(path)
            if their_name is not None:
                entry["their_name"] = clean_name(their_name)
            self._partners[partner_id] = entry
            self._bound(self._partners, MAX_PARTNERS)
        self._save()

    def rename(self, partner_id, name):
        """The name shown for `partner_id` here ("" shows the desk's own name again)."""
        with self._lock:
            if partner_id not in self._partners:
                return
            self._partners[partner_id]["name"] = clean_name(name)
        self._save()

    def remove(self, partner_id):
        with self._lock:
            self._partners.pop(partner_id, None)
        self._save()

    def trust(self, partner_id, rights: Rights, name=""):
        """"Always allow this desk": no prompt next time, with `rights`."""
        with self._lock:
            self._trusted.pop(partner_id, None)
            self._trusted[partner_id] = dict(asdict(rights), name=clean_name(name))
            self._bound(self._trusted, MAX_TRUSTED)
        self._save()

    def revoke(self, partner_id):
        with self._lock:
            self._trusted.pop(partner_id, None)
        self._save()

    def seed(self, partner_ids):
        """Start the book from the old recent list (bare IDs, newest first) when it is empty."""
        with self._lock:
            if self._partners:
                return
            for age, pid in enumerate(partner_ids):
                if _is_id(pid):
                    self._partners[pid] = dict(_clean_partner({}), last=max(0, len(partner_ids) - age))

    # ------------------------------------------------------------------ file

    @staticmethod
    def _bound(table, limit):
        """Keep the `limit` newest entries (dicts keep insertion order: the oldest come first)."""
        while len(table) > limit:
            del table[next(iter(table))]

    def _load(self):
        try:
            raw = _read_bounded(self.path)
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError("file too large")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.warning = f"{PARTNERS_FILE} could not be read ({exc}); starting an empty list"
            log.warning("%s", self.warning)
            return
        self._partners = _load_table(data.get("partners"), _clean_partner, MAX_PARTNERS,
                                     order=lambda e: e["last"])
        self._trusted = _load_table(data.get("trusted"), _clean_trusted, MAX_TRUSTED)

    def _save(self):
        """Write the whole book atomically; a failure is logged (the book stays in memory)."""
        with self._save_lock:
            with self._lock:
                self.version += 1
                text = json.dumps({"partners": self._partners, "trusted": self._trusted},
                                  indent=1) + "\n"
            self._write(text)

    def _write(self, text):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, text.encode("utf-8"), 0o600)
        except OSError as exc:
            log.warning("%s", ConfigError(f"cannot save {self.path}: {exc.strerror or exc}"))


def _load_table(value, clean, limit, order=None) -> dict:
    """ID -> cleaned entry for the valid items of a JSON object; the `limit` newest by `order`."""
    if not isinstance(value, dict):
        return {}
    table = []
    for pid, entry in value.items():
        try:
            if _is_id(pid):
                table.append((pid, clean(entry)))
        except (ValueError, TypeError, AttributeError):
            continue
    if order is not None:
        table.sort(key=lambda item: order(item[1]))
    return dict(table[-limit:])


def _read_bounded(path) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes: a huge file is refused without reading it all."""
    with open(path, "rb") as f:
        return f.read(MAX_FILE_BYTES + 1)
