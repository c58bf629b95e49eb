"""The partners' keys this desk has seen: pinned after the first session, checked on every connect.

Theory of operation. A partner's ID is derived from its Ed25519 key, but only ~30 bits of the
key's hash: an ID squatter can make a key with the same ID in hours and register it at a relay
that lost its bindings, and a malicious relay can answer for any ID. So the viewer does what SSH
does with known_hosts: after the first session with an ID it keeps the key the host proved
(client/proving.py) in `pins.json` in the settings folder, and on every later connect to that ID
it refuses a different key loudly (KeyChangedError), before any password is typed into it when
the relay already names the other key, and before any picture when the host proves it. A person
who knows why the key changed accepts the new one deliberately (the window's "Trust the new key",
`connect --accept-new-key`), and the key proven in that session replaces the pin.

    pins.json   {"version": 1, "pins": {ID: {"key": hex, "first_seen": unix s, "last_seen": unix s}}}

The file is bounded (MAX_PINS; the pins used longest ago go first) and read with a size bound; it
is written whole with `atomic_write` (a temporary file renamed over the old one, owner-only), so
a crash leaves the old or the new file, never half of one. A damaged file is not guessed around:
every operation raises PinFileError (a ConfigError whose text names the file and the way out), as
a desk that cannot read its pins cannot check a partner. Every call reads the file again (it is
small), so a pin removed by hand counts at once; one lock orders the writers of this process.
"""

import binascii
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tagio.crypto.identity import PUBLIC_KEY_LEN, fingerprint, format_id
from tagio.errors import ConfigError, IdentityError
from tagio.platform import atomic_write
from tagio.protocol.ids import is_valid_id

PINS_FILE = "pins.json"
FORMAT_VERSION = 1
MAX_PINS = 500
MAX_FILE_BYTES = 256 * 1024     # 500 pins take about 70 KB


class PinFileError(ConfigError):
    """pins.json cannot be read or is damaged; str() names the file and what to do."""


class KeyChangedError(IdentityError):
    """A partner offered a key other than the one pinned for its ID. `proven`: the partner proved
    it inside the channel (else the relay named it before any handshake)."""

    def __init__(self, partner_id: str, pinned: bytes, offered: bytes, *, proven: bool):
        self.partner_id, self.pinned, self.offered, self.proven = partner_id, pinned, offered, proven
        source = "the partner proved" if proven else "the relay named"
        super().__init__(f"the key of desk {format_id(partner_id)} changed: this desk knew "
                         f"{fingerprint(pinned)}, {source} {fingerprint(offered)}")


@dataclass(frozen=True)
class Pin:
    key: bytes
    first_seen: int
    last_seen: int


def accepts(accept, key: bytes) -> bool:
    """Does the person's `accept_new_key` choice take `key`? True: any new key (the command line's
    flag); bytes: exactly that key (the one the window showed); False / None: none."""
    if accept is True:
        return True
    return isinstance(accept, (bytes, bytearray)) and bytes(accept) == bytes(key)


class PinStore:
    """Pinned partner keys in `config_dir`/pins.json (config_dir None: in memory only)."""

    def __init__(self, config_dir=None, *, clock=time.time, limit=MAX_PINS):
        self.path = None if config_dir is None else Path(config_dir) / PINS_FILE
        self._clock, self._limit = clock, limit
        self._memory = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what callers use

    def get(self, partner_id: str) -> "Pin | None":
        """The pin for `partner_id`, or None. Raises PinFileError."""
        with self._lock:
            return self._load().get(partner_id)

    def check(self, partner_id: str, key: bytes, *, accept=False, proven=True) -> "Pin | None":
        """Raise KeyChangedError when `partner_id` is pinned to another key than `key` and the
        person did not accept `key` (see accepts()); return the pin `key` replaces when they did,
        else None. Raises PinFileError."""
        pin = self.get(partner_id)
        if pin is None or pin.key == bytes(key):
            return None
        if not accepts(accept, key):
            raise KeyChangedError(partner_id, pin.key, bytes(key), proven=proven)
        return pin

    def remember(self, partner_id: str, key: bytes) -> bool:
        """Pin `key` for `partner_id` (a first pin, a refreshed one, or a replaced one); True when
        the pinned key changed. Raises PinFileError (damaged file, or it cannot be written)."""
        now = int(self._clock())
        with self._lock:
            pins = self._load()
            old = pins.get(partner_id)
            same = old is not None and old.key == bytes(key)
            pins[partner_id] = Pin(bytes(key), old.first_seen if same else now, now)
            self._save(_newest(pins, self._limit))
            return not same

    def forget(self, partner_id: str) -> bool:
        """Drop the pin of `partner_id`; True when there was one. Raises PinFileError."""
        with self._lock:
            pins = self._load()
            if pins.pop(partner_id, None) is None:
                return False
            self._save(pins)
            return True

    def pins(self) -> dict:
        """{ID: Pin} of every pinned partner. Raises PinFileError."""
        with self._lock:
            return self._load()

    # ------------------------------------------------------------------ the file

    def _load(self) -> dict:
        if self.path is None:
            return dict(self._memory)
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise PinFileError(f"cannot read the partners' keys in {self.path}: "
                               f"{exc.strerror or exc}") from None
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            return parse(raw)
        except ValueError as exc:
            raise PinFileError(damaged(self.path, exc)) from None

    def _save(self, pins: dict) -> None:
        if self.path is None:
            self._memory = dict(pins)
            return
        try:
            atomic_write(self.path, serialise(pins))
        except OSError as exc:
            raise PinFileError(f"cannot save the partners' keys in {self.path}: "
                               f"{exc.strerror or exc}") from None


def damaged(path, why) -> str:
    return (f"the file of partners' keys {path} is damaged ({why}), so TagIO cannot check that a "
            f"partner is the desk it was before. Move the file away to trust each partner's key "
            f"again on its next connect, or put back a good copy")


def parse(raw: bytes) -> dict:
    """{ID: Pin} from the file's bytes; ValueError saying what is wrong."""
    data = json.loads(raw.decode("utf-8"))          # JSONDecodeError and UnicodeError are ValueErrors
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} pin file")
    table = data.get("pins")
    if not isinstance(table, dict) or len(table) > MAX_PINS:
        raise ValueError(f"'pins' must be an object of at most {MAX_PINS} entries")
    return {partner: _pin(partner, entry) for partner, entry in table.items()}


def _pin(partner, entry) -> Pin:
    if not is_valid_id(partner) or not isinstance(entry, dict):
        raise ValueError(f"bad entry {str(partner)[:20]!r}")
    try:
        key = binascii.unhexlify(entry.get("key", ""))
    except (binascii.Error, TypeError):
        key = b""
    times = [entry.get("first_seen"), entry.get("last_seen")]
    if len(key) != PUBLIC_KEY_LEN or not all(isinstance(t, int) and t >= 0 for t in times):
        raise ValueError(f"bad entry for {partner}")
    return Pin(key, *times)


def serialise(pins: dict) -> bytes:
    table = {partner: {"key": pin.key.hex(), "first_seen": pin.first_seen, "last_seen": pin.last_seen}
             for partner, pin in pins.items()}
    return (json.dumps({"version": FORMAT_VERSION, "pins": table}, indent=1, sort_keys=True)
            + "\n").encode("utf-8")


def _newest(pins: dict, limit: int) -> dict:
    """At most `limit` pins: the ones used longest ago go first."""
    if len(pins) <= limit:
        return pins
    keep = sorted(pins.items(), key=lambda item: item[1].last_seen, reverse=True)[:limit]
    return dict(keep)
