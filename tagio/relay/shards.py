"""A selector for more sockets than one select() call takes: the relay's answer to Windows.

Theory of operation
-------------------
On Windows the standard library's only readiness call is select(), and CPython
builds it with FD_SETSIZE 512 (Modules/selectmodule.c): selectors.DefaultSelector
is SelectSelector there, and once a set holds a 513th socket every select() call
raises ValueError("too many file descriptors in select()"). The relay loop would
die at about 510 connections and the forwarder at about 255 relayed pairs.

`ShardedSelector` keeps the selectors.BaseSelector interface and splits the
registrations into shards of at most `cap - 1` sockets (the last slot is the
shard's own wake-up socket), each one plain selector from `factory`:

- One shard (every relay below the cap, and every Linux relay, which uses epoll
  and never gets here): select() is that shard's select(). Nothing else runs.
- More shards: select() is a round. Each shard has a helper thread that blocks in
  its shard's select() when asked; the first answer (or the timeout) ends the
  round: the caller wakes the other helpers through their wake-up sockets and
  waits until every helper has answered, then returns all the events at once.
  So a helper is never inside select() while its shard changes:
  register/unregister/modify/close run between rounds, on the caller's thread,
  as with a plain selector. A helper's exception is re-raised by select().

`make_selector()` gives a ShardedSelector where select() is capped (Windows)
and selectors.DefaultSelector elsewhere. Tests pass a `factory` that refuses
more than 512 registrations, as Windows would, to run the sharded path on Linux.
"""

import queue
import selectors
import socket
import sys
import threading
from collections.abc import Mapping

SELECT_CAP = 512          # FD_SETSIZE of CPython's select() on Windows (per set)
_WAKE = object()          # the data of each shard's wake-up socket
_STOP = object()          # asks a helper thread to end


def select_is_capped() -> bool:
    """True where DefaultSelector is select() with a small fixed set size (Windows)."""
    return sys.platform == "win32" and selectors.DefaultSelector is selectors.SelectSelector


def make_selector():
    """The selector the relay's loop and forwarder use: sharded where select() is capped."""
    return ShardedSelector() if select_is_capped() else selectors.DefaultSelector()


class _Shard:
    """One plain selector, its wake-up socket pair and (once there are several) its helper thread."""

    def __init__(self, selector):
        self.sel = selector
        self.count = 0  # registrations, not counting the wake-up socket
        self.wake_r, self.wake_w = socket.socketpair()
        for sock in (self.wake_r, self.wake_w):
            sock.setblocking(False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, _WAKE)
        self.requests = queue.SimpleQueue()
        self.thread = None

    def ask(self, timeout, results):
        """Start this shard's part of a round (its answer goes to `results`)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._serve, args=(results,), name="relay-select-shard",
                                           daemon=True)
            self.thread.start()
        self.requests.put(timeout)

    def _serve(self, results):
        while True:
            timeout = self.requests.get()
            if timeout is _STOP:
                return
            try:
                results.put((self, self.sel.select(timeout)))
            except BaseException as exc:  # noqa: B036 - handed to the caller's thread, re-raised there
                results.put((self, exc))

    def wake(self):
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass  # already has a byte waiting (buffer full): it is awake anyway

    def drain(self):
        try:
            while self.wake_r.recv(4096):
                pass
        except OSError:
            pass  # BlockingIOError: empty

    def close(self):
        if self.thread is not None:
            self.requests.put(_STOP)
            self.thread.join(timeout=5)
        self.sel.close()
        self.wake_r.close()
        self.wake_w.close()


class _Keys(Mapping):
    """get_map(): every registered file object -> its SelectorKey, across shards."""

    def __init__(self, owner):
        self._owner = owner

    def __len__(self):
        return len(self._owner._where)

    def __getitem__(self, fileobj):
        shard = self._owner._shard_of(fileobj)
        return shard.sel.get_key(fileobj)

    def __iter__(self):
        return iter(list(self._owner._where))


class ShardedSelector(selectors.BaseSelector):
    def __init__(self, cap=SELECT_CAP, factory=selectors.DefaultSelector):
        if cap < 2:
            raise ValueError("a shard needs room for its wake-up socket and one more")
        self.cap = cap
        self._factory = factory
        self._shards = []
        self._where = {}  # registered file object -> its shard
        self._results = queue.SimpleQueue()
        self._keys = _Keys(self)

    @property
    def shards(self) -> int:
        return len(self._shards)

    # -- registrations (the caller's thread, between rounds) ---------------------------------
    def register(self, fileobj, events, data=None):
        if fileobj in self._where:
            raise KeyError(f"{fileobj!r} is already registered")
        shard = next((s for s in self._shards if s.count < self.cap - 1), None) or self._new_shard()
        key = shard.sel.register(fileobj, events, data)
        shard.count += 1
        self._where[fileobj] = shard
        return key

    def unregister(self, fileobj):
        shard = self._shard_of(fileobj)
        key = shard.sel.unregister(fileobj)
        shard.count -= 1
        del self._where[fileobj]
        return key

    def modify(self, fileobj, events, data=None):
        return self._shard_of(fileobj).sel.modify(fileobj, events, data)

    def get_map(self):
        return self._keys

    def _shard_of(self, fileobj):
        try:
            return self._where[fileobj]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def _new_shard(self):
        shard = _Shard(self._factory())
        self._shards.append(shard)
        return shard

    # -- readiness -----------------------------------------------------------------------------
    def select(self, timeout=None):
        busy = [s for s in self._shards if s.count]
        if len(busy) <= 1:
            shard = busy[0] if busy else (self._shards[0] if self._shards else self._new_shard())
            return _without_wake(shard.sel.select(timeout))
        return self._round(busy, None if timeout is None else max(0.0, timeout))

    def _round(self, shards, timeout):
        for shard in shards:
            shard.ask(timeout, self._results)
        answers = {}
        try:
            shard, events = self._results.get(timeout=timeout)
            answers[shard] = events
        except queue.Empty:
            pass  # nobody was ready within the timeout
        woken = [s for s in shards if s not in answers]
        for shard in woken:
            shard.wake()
        while len(answers) < len(shards):
            shard, events = self._results.get()
            answers[shard] = events
        for shard in woken:
            shard.drain()
        ready = []
        for events in answers.values():
            if isinstance(events, BaseException):
                raise events
            ready += _without_wake(events)
        return ready

    def close(self):
        for shard in self._shards:
            shard.close()
        self._shards = []
        self._where.clear()


def _without_wake(events):
    return [(key, mask) for key, mask in events if key.data is not _WAKE]
