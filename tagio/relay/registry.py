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
from dataclasses import dataclass, field
from pathlib import Path

from tagio.crypto.identity import PUBLIC_KEY_LEN
from tagio.errors import ConfigError, IdentityError, RelayError
from tagio.platform import atomic_write as write_atomic

UDP_TOKEN_LEN = 16


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

    def __init__(self, path=None, max_bindings: int = 1_000_000):
        self.path = Path(path) if path else None
        self.max_bindings = max_bindings
        self._keys = {}
        self.dirty = False

    def load(self) -> None:
        """Read the file if it exists; raises ConfigError when it is unreadable or corrupt."""
        if not self.path or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            keys = {str(k): bytes.fromhex(v) for k, v in data.get("bindings", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError) as exc:  # TypeError: a non-string key value
            raise ConfigError(f"cannot read relay state file {self.path}: {exc}") from exc
        bad = next((k for k, v in keys.items() if len(v) != PUBLIC_KEY_LEN), None)
        if bad is not None:
            raise ConfigError(f"cannot read relay state file {self.path}: the key bound to {bad} is not "
                              f"{PUBLIC_KEY_LEN} bytes")
        self._keys = keys

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

    def get(self, client_id: str):
        return self._keys.get(client_id)

    def __len__(self):
        return len(self._keys)

    def snapshot(self) -> dict:
        """A copy of the bindings (cheap: a dict copy, no encoding) for save(); clears `dirty`."""
        self.dirty = False
        return dict(self._keys)

    def save(self, snapshot=None) -> None:
        """Write atomically; a snapshot taken in the owning thread may be saved from another."""
        if not self.path:
            return
        snapshot = snapshot if snapshot is not None else self.snapshot()
        data = {"version": 1, "bindings": {k: v.hex() for k, v in snapshot.items()}}
        write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode("utf-8"))


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
