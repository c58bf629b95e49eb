"""Worker threads for the relay's expensive, pure steps (Ed25519 checks, state-file writes).

Theory of operation
-------------------
The loop thread calls `submit(fn, done)`; a ThreadPoolExecutor worker runs
`fn()` and hands `done(result)` back through `post` (RelayServer._post: a
deque drained by the loop thread, plus one wake-up per batch), so `done`
always runs on the loop thread. No add_done_callback: the job itself posts
its result, which keeps the loop thread's cost per job to one submit.
A job that raises hands its exception (or on_error's verdict) to `done`.

The executor's queue is unbounded as a structure but bounded in use: the
relay has at most one signature check in flight per connection
(ConnState.VERIFYING) and at most one state-file write at a time. Anything
that escapes a job (a bug in `post` itself) is kept; close() shuts the pool
down, joining every worker, and re-raises it.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from tagio.errors import ConfigError

log = logging.getLogger("tagio.relay")
STARTUP_WAIT = 30.0  # seconds for every worker thread to start


class Workers:
    def __init__(self, count: int, post, name="tagio-relay-work"):
        self._post = post
        self.error = None
        count = max(1, count)
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix=name)
        # Start every worker now (the executor makes them lazily), so the first registrations do not
        # pay for thread creation and `threads` is complete from the start.
        started = threading.Barrier(count + 1, timeout=STARTUP_WAIT)
        try:
            for _ in range(count):
                self._pool.submit(started.wait)
            started.wait()
        except (RuntimeError, threading.BrokenBarrierError) as exc:  # "can't start new thread", or stuck
            started.abort()  # frees the workers already waiting, so the pool can shut down
            self._pool.shutdown(wait=True)
            raise ConfigError(f"cannot start the relay's worker threads: {exc}") from exc

    @property
    def threads(self) -> list:
        """The worker threads (for tests and the benchmark's CPU accounting)."""
        return list(self._pool._threads)

    def submit(self, fn, done, on_error=None) -> None:
        """Run fn() on a worker; done(result) then runs on the loop thread (via post).

        If fn raises, result is on_error(exc), or the exception itself when on_error is None.
        """
        self._pool.submit(self._run_one, fn, done, on_error)

    def close(self) -> None:
        """Finish queued jobs, join every worker; re-raise an error that escaped a job."""
        self._pool.shutdown(wait=True)
        if self.error is not None:
            raise self.error

    def _run_one(self, fn, done, on_error):
        try:
            try:
                result = fn()
            except Exception as exc:
                result = exc if on_error is None else on_error(exc)
            self._post(lambda: done(result))
        except BaseException as exc:  # kept for close(); the other jobs keep running
            self.error = exc
            log.error("relay worker job failed: %r", exc)
