"""Wait on a condition, never for a fixed time.

Theory of operation: a test that sleeps a fixed time for something to happen is slow when the box
is idle and flaky when it is loaded. `wait_until` instead polls a predicate every few milliseconds
and returns as soon as it holds; its timeout is only the bound for a broken run, so it can be
generous without slowing a passing one. When the bound passes it fails the test with a message
that says what was awaited and the predicate's last value.

    state = wait_until(lambda: window.state() if window.state() != "busy" else None,
                       timeout=10, what="the window to settle")

`poll` is the hook for a loop that must do work while it waits (a Tk test pumps `root.update()`).
`in_thread` runs a blocking call beside the test, whose result (or error) it then waits for.
"""

import threading
import time

INTERVAL = 0.01


def wait_until(predicate, timeout=10.0, what="the condition", poll=None, interval=INTERVAL):
    """Call `predicate` until it returns a true value and return that value.

    `poll`, if given, runs before each check (e.g. `root.update`). Raises AssertionError naming
    `what` when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if poll is not None:
            poll()
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def in_thread(test, body):
    """(thread, result): `body(result)` in a started thread, joined by `test`'s cleanups; whatever it
    raises is kept as result["error"] for the test to check."""
    result = {}

    def run():
        try:
            body(result)
        except Exception as exc:        # checked by the test
            result["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    test.addCleanup(thread.join, 10)
    return thread, result
