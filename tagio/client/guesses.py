"""Password guesses against this host: how many, from whom, and when the one-time password goes.

Theory of operation. A handshake that got far enough for the viewer to check its password (the host
has sent its reply and confirmation MAC) is one guess, whatever happens next: a guesser that checks
the MAC locally and hangs up has still guessed. So the host calls `start(source)` BEFORE it sends
anything a guess could be checked against; the guess counts as failed from that moment. Only mutual
success (`succeeded(guess)`, after the viewer's own confirmation verified) takes it back. Every
other ending goes through `ended(guess)`, which returns the Failure to tell the host's user about
(hang-up, timeout, error and wrong password alike). `ended` after `succeeded` returns None, so a
handler can call it in a `finally`.

Limits, each checked by `start` (a Refusal says which and for how long):

    host-wide     at most HOST_PER_WINDOW guesses per WINDOW from any number of sources; after that
                  many failures in a row, each further failure makes the host wait an exponentially
                  growing delay (BASE_DELAY, doubling, at most MAX_DELAY) before the next guess
    per source    SOURCE_PER_WINDOW per WINDOW and SOURCE_TOTAL in all, as RustDesk (6 per minute,
                  30 in total; a source at its total is refused until the process restarts)
    per password  the one-time password is checked at most TRIES_PER_PASSWORD times (guesses at the
                  permanent password, `start(source, one_time=False)`, do not count here): the
                  failure that uses the last try says rotate_password; `password_rotated()` starts over

A success takes back its own guess and ends the run of failures (the delay); earlier failures stay
in their source's total. Sources are what the host can tell apart (the relay-checked viewer ID; on
the LAN a claimed one), so the host-wide limit is the one a guesser cannot dodge. Pure logic: an
injected clock, no I/O, one lock so the relay link, the LAN thread and handler threads may call at
once; memory is bounded (MAX_SOURCES sources, the oldest forgotten first).
"""

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

WINDOW = 60.0
HOST_PER_WINDOW = 6
SOURCE_PER_WINDOW = 6
SOURCE_TOTAL = 30
TRIES_PER_PASSWORD = 3
BASE_DELAY = 60.0
MAX_DELAY = 3600.0
MAX_SOURCES = 1024


@dataclass(frozen=True)
class Refusal:
    """Why a guess may not start now; retry_after is None when it never may (until restart)."""
    reason: str
    retry_after: float | None


@dataclass(frozen=True)
class Failure:
    """A failed guess, for the host's user: who, how many failed in the window, what happens now."""
    source: str
    failures_in_window: int
    source_failures: int
    rotate_password: bool
    next_guess_in: float
    tries_left: int = 0          # tries the one-time password has left (0: it is being replaced)


class Guess:
    """One started guess (a ticket for succeeded/ended)."""

    __slots__ = ("source", "started", "one_time", "state")

    def __init__(self, source, started, one_time):
        self.source, self.started, self.one_time, self.state = source, started, one_time, "pending"


class _Source:
    __slots__ = ("recent", "total")

    def __init__(self, per_window):
        self.recent = deque(maxlen=per_window)
        self.total = 0


class GuessLimiter:
    def __init__(self, *, clock=time.monotonic, window=WINDOW, host_per_window=HOST_PER_WINDOW,
                 source_per_window=SOURCE_PER_WINDOW, source_total=SOURCE_TOTAL,
                 tries_per_password=TRIES_PER_PASSWORD, base_delay=BASE_DELAY, max_delay=MAX_DELAY,
                 max_sources=MAX_SOURCES):
        self._clock = clock
        self.window, self.host_per_window = window, host_per_window
        self.source_per_window, self.source_total = source_per_window, source_total
        self.tries_per_password = tries_per_password
        self.base_delay, self.max_delay, self.max_sources = base_delay, max_delay, max_sources
        self._recent = deque()            # start times of guesses in the window (not taken back)
        self._sources = OrderedDict()     # source -> _Source, most recently used last
        self._tries = 0                   # guesses against the current one-time password
        self._run = 0                     # failures in a row, host-wide
        self._not_before = 0.0            # the exponential delay: no guess starts before this
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the three calls

    def start(self, source, one_time=True) -> "Guess | Refusal":
        """Count a guess by `source` now (as failed until succeeded()), or say why not.
        `one_time`: the guess is at the one-time password (else at the permanent one)."""
        with self._lock:
            now = self._clock()
            record = self._source(str(source), now)
            refusal = self._refusal(record, now, one_time)
            if refusal is not None:
                return refusal
            self._recent.append(now)
            record.recent.append(now)
            record.total += 1
            self._tries += 1 if one_time else 0
            return Guess(str(source), now, one_time)

    def succeeded(self, guess: Guess) -> None:
        """Mutual success: the guess was right, so it is taken back everywhere but the total."""
        with self._lock:
            if guess.state != "pending":
                return
            guess.state = "succeeded"
            _remove(self._recent, guess.started)
            record = self._sources.get(guess.source)
            if record is not None:
                _remove(record.recent, guess.started)
                record.total -= 1
            self._tries = max(0, self._tries - (1 if guess.one_time else 0))
            self._run, self._not_before = 0, 0.0

    def ended(self, guess: Guess) -> "Failure | None":
        """The handshake is over; unless it succeeded, the guess failed: the Failure to report."""
        with self._lock:
            if guess.state != "pending":
                return None
            guess.state = "failed"
            now = self._clock()
            self._run += 1
            if self._run >= self.host_per_window:
                extra = self._run - self.host_per_window
                self._not_before = now + min(self.max_delay, self.base_delay * 2 ** min(extra, 32))
            self._expire(self._recent, now)
            record = self._sources.get(guess.source)
            rotate = guess.one_time and self._tries >= self.tries_per_password
            return Failure(guess.source, len(self._recent), record.total if record else 0, rotate,
                           self._wait(now), max(0, self.tries_per_password - self._tries))

    def password_rotated(self) -> None:
        """The one-time password was replaced: it has all its tries again."""
        with self._lock:
            self._tries = 0

    # ------------------------------------------------------------------ helpers (lock held)

    def _refusal(self, record, now, one_time):
        self._expire(self._recent, now)
        self._expire(record.recent, now)
        if record.total >= self.source_total:
            return Refusal("this source has used up its guesses", None)
        if len(record.recent) >= self.source_per_window:
            return Refusal("too many guesses from this source", self.window - (now - record.recent[0]))
        wait = self._wait(now)
        if wait > 0:
            return Refusal("too many wrong passwords", wait)
        if one_time and self._tries >= self.tries_per_password:
            return Refusal("the one-time password is being replaced", 0.0)
        return None

    def _wait(self, now) -> float:
        """Seconds until the host takes a guess again (0: now)."""
        window_wait = 0.0
        if len(self._recent) >= self.host_per_window:
            window_wait = self.window - (now - self._recent[-self.host_per_window])
        return max(0.0, window_wait, self._not_before - now)

    def _source(self, source, now):
        record = self._sources.pop(source, None) or _Source(self.source_per_window)
        self._sources[source] = record
        while len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)
        return record

    def _expire(self, marks, now):
        while marks and now - marks[0] >= self.window:
            marks.popleft()


def _remove(marks, stamp):
    try:
        marks.remove(stamp)
    except ValueError:
        pass           # already out of the window


class SessionGuesses:
    """The one guess of one incoming session, for the host handshake's `guesses` hook.

    The viewer's paths (direct TCP both ways, UDP, the relay) each run a handshake, and each REPLY
    would let the viewer check a password: so only the first handshake of a session to get that
    far sends one (start() succeeds once); any other is closed before its REPLY (taken_error, a
    path failure the viewer's race just drops). A typo then costs one guess, not four. close()
    takes the guess back if the handshake succeeded (succeeded()), otherwise ends it as failed and
    returns the Failure to report. Thread-safe: a session's paths run their handshakes at once.
    """

    def __init__(self, limiter: GuessLimiter, source, refused_error, taken_error):
        self._limiter, self._source = limiter, str(source)
        self._refused_error, self._taken_error = refused_error, taken_error
        self._guesses, self._success, self._closed = [], False, False
        self._lock = threading.Lock()

    def start(self, one_time=True) -> None:
        """Count this session's guess now. Raises taken_error when another path of the session has
        it (or the session is over), refused_error(reason) when the limiter refuses it."""
        with self._lock:
            if self._closed or self._guesses:
                raise self._taken_error("another path of this session has its password check")
            guess = self._limiter.start(self._source, one_time)
            if isinstance(guess, Refusal):
                raise self._refused_error(_refusal_text(guess))
            self._guesses.append(guess)

    def succeeded(self) -> None:
        with self._lock:
            self._success = True

    def close(self) -> list:
        """End the session's guesses; the Failures to tell the host's user about (in order)."""
        with self._lock:
            self._closed = True
            guesses, self._guesses = self._guesses, []
            success = self._success
        if success:
            for guess in guesses:
                self._limiter.succeeded(guess)
            return []
        return [f for f in (self._limiter.ended(guess) for guess in guesses) if f is not None]


def _refusal_text(refusal: Refusal) -> str:
    if refusal.retry_after is None:
        return refusal.reason
    return f"{refusal.reason}; next guess in {refusal.retry_after:.0f} s"
