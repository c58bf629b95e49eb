"""Who is online, and which key owns which ID. Pure: no sockets, injected clock.

Theory of operation
-------------------
`BindingStore` remembers ID -> Ed25519 public key on first use (TOFU) and
persists it to a small JSON file, written atomically (temp file + os.replace)
so a crash never leaves half a file. The server coalesces writes (at most one
per Limits.state_save_interval, plus one at stop), so a crash loses at most
the bindings of that last interval; `snapshot()` is a cheap dict copy on the
loop thread and `save()` encodes it on a worker. An ID is derived from its key, but only
30 bits of it, so a collision could be searched for: the binding, not the
derivation alone, decides who owns an ID.

A binding remembers when its ID last registered (a wall-clock time, rounded
to the day so that a client's every registration does not dirty the file);
`expire(now, ttl)` forgets bindings unused for longer than `ttl` (the relay
uses Limits.binding_ttl, 180 days), so the table does not grow for ever with
IDs nobody uses. The file keeps {"bindings": {id: key hex}, "last_used": {id:
unix seconds}}; a binding without a time (a version-1 file) counts as used at load.

`Registry` holds one `Registration` per online ID, found by ID, by the opaque
connection handle the server gives it, and by the random UDP token handed out
in `Registered`. A registration is touched by every frame from its
connection; `expire()` returns those silent for longer than the heartbeat
timeout so the server can close them. An online ID is never taken over by a
different key; the same key (the owner, e.g. restarted after a crash) replaces
its own stale registration.
"""

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from tagio.crypto.identity import PUBLIC_KEY_LEN
from tagio.errors import ConfigError, IdentityError, RelayError
from tagio.platform import atomic_write as write_atomic

UDP_TOKEN_LEN = 16
DAY = 86400.0


@dataclass
class Registration:
    client_id: str
    public_key: bytes
    conn: object
    observed_addr: tuple
    local_candidates: list = field(default_factory=list)
    nat_hint: str = ""
    udp_token: bytes = b""
    udp_addr: object = None
    last_seen: float = 0.0


class BindingStore:
    """ID -> public key, trust on first use, optionally persisted to `path`."""

    def __init__(self, path=None, max_bindings: int = 1_000_000, wall_clock=time.time):
        self.path = Path(path) if path else None
        self.max_bindings = max_bindings
        self.wall_clock = wall_clock
        self._keys = {}
        self._used = {}  # ID -> wall-clock seconds of its last registration (to the day)
        self.dirty = False

    def load(self) -> bool:
        """Read the file; False when there is none. Raises ConfigError when it is unreadable or corrupt."""
        if not self.path or not self.path.exists():
            return False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            keys = {str(k): bytes.fromhex(v) for k, v in data.get("bindings", {}).items()}
            used = {str(k): float(v) for k, v in data.get("last_used", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError) as exc:  # TypeError: a non-string key value
            raise ConfigError(f"cannot read relay state file {self.path}: {exc}") from exc
        bad = next((k for k, v in keys.items() if len(v) != PUBLIC_KEY_LEN), None)
        if bad is not None:
            raise ConfigError(f"cannot read relay state file {self.path}: the key bound to {bad} is not "
                              f"{PUBLIC_KEY_LEN} bytes")
        self._keys = keys
        now = self.wall_clock()
        self._used = {k: used.get(k, now) for k in keys}
        return True

    def check(self, client_id: str, public_key: bytes) -> None:
        """Raise IdentityError if `client_id` is bound to another key, RelayError if full."""
        bound = self._keys.get(client_id)
        if bound is not None and bound != public_key:
            raise IdentityError(f"ID {client_id} belongs to a different key")
        if bound is None and len(self._keys) >= self.max_bindings:
            raise RelayError("relay_full", "this relay cannot accept new IDs right now")

    def bind(self, client_id: str, public_key: bytes) -> None:
        self.check(client_id, public_key)
        if client_id not in self._keys:
            self._keys[client_id] = public_key
            self.dirty = True
        now = self.wall_clock()
        if now - self._used.get(client_id, -DAY) >= DAY:  # at most one file change per ID and day
            self._used[client_id] = now
            self.dirty = True

    def expire(self, ttl: float) -> int:
        """Forget bindings whose ID has not registered for `ttl` seconds; returns how many."""
        cutoff = self.wall_clock() - ttl
        old = [k for k, used in self._used.items() if used < cutoff]
        for k in old:
            del self._keys[k], self._used[k]
        if old:
            self.dirty = True
        return len(old)

    def get(self, client_id: str):
        return self._keys.get(client_id)

    def __len__(self):
        return len(self._keys)

    def snapshot(self) -> dict:
        """A copy of the bindings (cheap: dict copies, no encoding) for save(); clears `dirty`."""
        self.dirty = False
        return _Snapshot(self._keys, last_used=dict(self._used))

    def save(self, snapshot=None) -> None:
        """Write atomically; a snapshot taken in the owning thread may be saved from another."""
        if not self.path:
            return
        snapshot = snapshot if snapshot is not None else self.snapshot()
        used = getattr(snapshot, "last_used", {})
        data = {"version": 2, "bindings": {k: v.hex() for k, v in snapshot.items()},
                "last_used": {k: int(used[k]) for k in snapshot if k in used}}
        write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode("utf-8"))


class _Snapshot(dict):
    """ID -> key, with the last-used times alongside (a dict, so len() and iteration read as before)."""

    def __init__(self, keys, last_used):
        super().__init__(keys)
        self.last_used = last_used


class Registry:
    def __init__(self, clock, heartbeat_timeout: float, bindings: BindingStore = None,
                 random_bytes=secrets.token_bytes):
        self.clock = clock
        self.random_bytes = random_bytes
        self.heartbeat_timeout = heartbeat_timeout
        self.bindings = bindings if bindings is not None else BindingStore()
        self._by_id = {}
        self._by_conn = {}
        self._by_udp = {}

    def add(self, reg: Registration):
        """Bind and register; returns the owner's replaced registration (or None).

        Raises IdentityError when the ID is bound to another key.
        """
        self.bindings.bind(reg.client_id, reg.public_key)
        old = self._by_id.get(reg.client_id)
        if old is not None:
            self.remove(old.conn)
        reg.udp_token = self.random_bytes(UDP_TOKEN_LEN)
        reg.last_seen = self.clock()
        self._by_id[reg.client_id] = reg
        self._by_conn[reg.conn] = reg
        self._by_udp[reg.udp_token] = reg
        return old

    def remove(self, conn):
        reg = self._by_conn.pop(conn, None)
        if reg is not None:
            self._by_id.pop(reg.client_id, None)
            self._by_udp.pop(reg.udp_token, None)
        return reg

    def touch(self, conn) -> None:
        reg = self._by_conn.get(conn)
        if reg is not None:
            reg.last_seen = self.clock()

    def get(self, client_id: str):
        return self._by_id.get(client_id)

    def for_conn(self, conn):
        return self._by_conn.get(conn)

    def record_udp(self, udp_token: bytes, addr: tuple) -> bool:
        reg = self._by_udp.get(udp_token)
        if reg is None:
            return False
        reg.udp_addr = addr
        return True

    def expire(self) -> list:
        """Remove and return registrations silent for longer than the heartbeat timeout."""
        deadline = self.clock() - self.heartbeat_timeout
        dead = [reg for reg in self._by_id.values() if reg.last_seen < deadline]
        for reg in dead:
            self.remove(reg.conn)
        return dead

    def __len__(self):
        return len(self._by_id)
