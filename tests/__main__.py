"""Run the test suite: `python3 -m tests [--unit] [pattern ...]`.

Theory of operation: the suite has two layers. The *unit* layer is pure logic: codecs, state
machines, policies, parsers; no sockets, no X display, no subprocesses, so it runs in seconds and is
the inner loop while editing. Everything else is the *e2e* layer: real sockets on loopback, real
Xvfb, real processes, network namespaces.

A test module joins the unit layer with a module-level `LAYER = "unit"`; a module that mixes both
marks its pure TestCase classes with a class attribute `LAYER = "unit"` instead (a class attribute
wins over the module's). Unmarked tests are e2e.

The runner enforces the unit layer instead of trusting the marks: while unit tests run, creating a
socket, spawning a process or opening the X display raises `LayerViolation`, so a mislabelled test
fails loudly instead of silently making the inner loop slow. `--unit` runs only that layer; without
it the unit layer runs first (still guarded), then the e2e layer unguarded. The time of each layer
is printed, and the last line is always `N passed, N failed, N skipped`; the exit status is non-zero
on any failure or error, or when no test ran. Other arguments filter test ids by substring.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path
from unittest import mock

UNIT = "unit"
E2E = "e2e"
SLOWEST = 12          # tests named with their time after each layer


class LayerViolation(AssertionError):
    """A test of the unit layer touched the outside world (a socket, a process, the display)."""


def _forbid(what):
    def refuse(*_args, **_kwargs):
        raise LayerViolation(f"a unit-layer test must not {what}: mark it e2e (remove LAYER = 'unit')")
    return refuse


# (object, attribute, what the unit layer must not do). socket.socket.__init__ covers every way a
# socket gets made (socketpair, create_connection, create_server and ssl all pass through it); the
# named functions are patched too so their error says what was called.
_GUARDS = (
    (socket.socket, "__init__", "create a socket"),
    (socket, "socketpair", "create a socket pair"),
    (socket, "create_connection", "open a connection"),
    (socket, "create_server", "open a listening socket"),
    (subprocess.Popen, "__init__", "start a subprocess"),
    (os, "system", "run a shell command"),
    (os, "fork", "fork"),
    (os, "posix_spawn", "spawn a process"),
    (os, "posix_spawnp", "spawn a process"),
)


@contextlib.contextmanager
def unit_guard():
    """Make sockets, subprocesses and the X display raise LayerViolation for the duration."""
    with contextlib.ExitStack() as stack:
        for owner, name, what in _GUARDS:
            if hasattr(owner, name):
                stack.enter_context(mock.patch.object(owner, name, _forbid(what)))
        stack.enter_context(mock.patch.dict(os.environ))
        os.environ.pop("DISPLAY", None)          # anything that would look for an X server finds none
        try:
            import tkinter
        except ImportError:
            tkinter = None
        if tkinter is not None:
            stack.enter_context(mock.patch.object(tkinter.Tk, "__init__", _forbid("open a Tk window")))
        yield


def layer_of(test) -> str:
    """The layer a test belongs to: its class's LAYER, else its module's, else e2e."""
    if isinstance(test, unittest.loader._FailedTest):
        return UNIT                              # an import error must show in every run
    marked = getattr(type(test), "LAYER", None)
    if marked is None:
        marked = getattr(sys.modules.get(type(test).__module__), "LAYER", E2E)
    if marked not in (UNIT, E2E):
        raise ValueError(f"{test.id()}: LAYER must be {UNIT!r} or {E2E!r}, not {marked!r}")
    return marked


def _iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


def discover(patterns):
    root = Path(__file__).resolve().parent.parent
    loader = unittest.TestLoader()
    discovered = loader.discover(str(root / "tests"), pattern="test_*.py", top_level_dir=str(root))
    tests = list(_iter_tests(discovered))
    if patterns:
        tests = [t for t in tests if any(p in t.id() for p in patterns)]
    return tests


class TimedResult(unittest.TextTestResult):
    """Keeps each test's wall time, so a run can name its slowest tests (the CI budget is time)."""

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.durations.append((time.monotonic() - self._started, test.id()))

    @property
    def durations(self):
        return self.__dict__.setdefault("_durations", [])


def print_slowest(durations, count=SLOWEST):
    for seconds, test_id in sorted(durations, reverse=True)[:count]:
        print(f"  {seconds:6.1f}s  {test_id}")


def run_layer(name, tests, guard):
    """Run one layer; returns (ran, failed, skipped)."""
    if not tests:
        return 0, 0, 0
    print(f"--- {name} layer: {len(tests)} tests", flush=True)
    started = time.monotonic()
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=TimedResult)
    with guard():
        result = runner.run(unittest.TestSuite(tests))
    print(f"{name} layer ran in {time.monotonic() - started:.1f}s; slowest:", flush=True)
    print_slowest(result.durations)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    return result.testsRun, failed, len(result.skipped)


def run_e2e_parallel(tests, patterns, workers):
    """The e2e layer in `workers` processes, module by module (tests/parallel.py)."""
    from tests import parallel
    if not tests:
        return 0, 0, 0
    print(f"--- {E2E} layer: {len(tests)} tests in {workers} workers", flush=True)
    started = time.monotonic()
    ran, failed, skipped, durations = parallel.run_parallel(tests, patterns, workers)
    print(f"{E2E} layer ran in {time.monotonic() - started:.1f}s; slowest:", flush=True)
    print_slowest(durations)
    return ran, failed, skipped


def worker(argv):
    """`--worker FD PATTERN...`: serve modules of the e2e layer to the parent (tests/parallel.py)."""
    from tests import parallel
    tests = [t for t in discover(argv[1:]) if layer_of(t) == E2E]
    parallel.serve(int(argv[0]), tests, TimedResult)
    return 0


def main(argv):
    if argv[:1] == ["--worker"]:
        return worker(argv[1:])
    from tests import parallel
    unit_only = "--unit" in argv
    patterns = [a for a in argv if a != "--unit"]
    tests = discover(patterns)
    layers = [(UNIT, [t for t in tests if layer_of(t) == UNIT], unit_guard)]
    e2e = [t for t in tests if layer_of(t) == E2E]
    workers = parallel.worker_count()
    started = time.monotonic()
    totals = [run_layer(*layer) for layer in layers]
    if not unit_only and workers > 1 and len({parallel.module_of(t) for t in e2e}) > 1:
        totals.append(run_e2e_parallel(e2e, patterns, workers))
    elif not unit_only:
        totals.append(run_layer(E2E, e2e, contextlib.nullcontext))
    ran, failed, skipped = (sum(column) for column in zip(*totals))
    print(f"ran in {time.monotonic() - started:.1f}s")
    print(f"{ran - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or ran == 0 else 0


if __name__ == "__main__":
    # Run the importable copy, so tests that import tests.__main__ share its LayerViolation.
    from tests.__main__ import main as importable_main
    sys.exit(importable_main(sys.argv[1:]))
