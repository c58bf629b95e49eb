"""The host's session history: who was let in, when, for how long, over which path, with what rights.

Theory of operation. `HostHistory` keeps the last MAX_ENTRIES host sessions in `history.json` in
the settings folder. The host records a session when it ends (`record`), from the thread that ran
it; the home window reads `entries()` on the Tk thread. One lock guards the list and one writer at
a time writes the whole file with `atomic_write` (temporary file renamed over the old one,
owner-only). Loading keeps only well-formed entries, so a damaged file costs only what is damaged.
A desk's name is the one it sent (Introduce), stripped of control characters before it is kept.
"""

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from tagio.platform import atomic_write
from tagio.protocol.session import clean_name

log = logging.getLogger("tagio.client")

HISTORY_FILE = "history.json"
MAX_ENTRIES = 500
MAX_FILE_BYTES = 512 * 1024


@dataclass(frozen=True)
class HistoryEntry:
    """One host session. `started` is unix time; `seconds` how long it ran."""
    peer_id: str
    name: str
    started: float
    seconds: float
    path: str
    view_only: bool

    @classmethod
    def from_json(cls, value) -> "HistoryEntry":
        if not isinstance(value, dict):
            raise ValueError("expected an object")
        entry = cls(value.get("peer_id"), clean_name(value.get("name") or ""), value.get("started"),
                    value.get("seconds"), value.get("path") or "", value.get("view_only"))
        entry.check()
        return entry

    def check(self):
        if not (isinstance(self.peer_id, str) and len(self.peer_id) == 9 and self.peer_id.isdigit()):
            raise ValueError("bad ID")
        numbers = (self.started, self.seconds)
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise ValueError("bad time")
        if not isinstance(self.path, str) or len(self.path) > 16 or not isinstance(self.view_only, bool):
            raise ValueError("bad path or view_only")


class HostHistory:
    """history.json in `config_dir`; safe to call from any thread."""

    def __init__(self, config_dir):
        self.path = Path(config_dir) / HISTORY_FILE
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._entries = self._load()

    def entries(self) -> list:
        """The sessions, the newest first."""
        with self._lock:
            return list(reversed(self._entries))

    def record(self, peer_id, started, seconds, path="", view_only=False, name=""):
        """One host session ended; keep it (the oldest goes beyond MAX_ENTRIES) and save."""
        entry = HistoryEntry(peer_id, clean_name(name), float(started), max(0.0, float(seconds)),
                             str(path or "")[:16], bool(view_only))
        entry.check()
        with self._lock:
            self._entries = (self._entries + [entry])[-MAX_ENTRIES:]
        self._save()

    def clear(self):
        with self._lock:
            self._entries = []
        self._save()

    def _load(self) -> list:
        try:
            raw = _read_bounded(self.path)
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError("file too large")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, list):
                raise ValueError("not a list")
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("%s could not be read (%s); starting an empty history", HISTORY_FILE, exc)
            return []
        entries = []
        for item in data[-MAX_ENTRIES:]:
            try:
                entries.append(HistoryEntry.from_json(item))
            except (ValueError, TypeError):
                continue
        return entries

    def _save(self):
        with self._save_lock:
            with self._lock:
                text = json.dumps([asdict(e) for e in self._entries], indent=0) + "\n"
            try:
                atomic_write(self.path, text.encode("utf-8"), 0o600)
            except OSError as exc:
                log.warning("cannot save %s: %s", self.path, exc.strerror or exc)


def _read_bounded(path) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes: a huge file is refused without reading it all."""
    with open(path, "rb") as f:
        return f.read(MAX_FILE_BYTES + 1)
