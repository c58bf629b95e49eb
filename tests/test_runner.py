"""The test runner's layers (tests/__main__.py) and the condition wait (tests/waiting.py)."""

import os
import socket
import re
import subprocess
import sys
import time
import unittest

from tests import waiting
from tests.__main__ import E2E, UNIT, LayerViolation, layer_of, unit_guard

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class UnitGuardTest(unittest.TestCase):
    def test_the_outside_world_raises_inside_the_guard(self):
        attempts = {
            "socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            "socketpair": lambda: socket.socketpair(),
            "connection": lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
            "server": lambda: socket.create_server(("127.0.0.1", 0)),
            "subprocess": lambda: subprocess.run([sys.executable, "-c", "pass"]),
            "system": lambda: os.system("true"),
        }
        with unit_guard():
            for name, attempt in attempts.items():
                with self.subTest(name), self.assertRaisesRegex(LayerViolation, "unit-layer test must not"):
                    attempt()
            self.assertNotIn("DISPLAY", os.environ)

    def test_tk_raises_inside_the_guard(self):
        try:
            import tkinter
        except ImportError:
            self.skipTest("Python has no tkinter")
        with unit_guard(), self.assertRaises(LayerViolation):
            tkinter.Tk()

    def test_everything_is_put_back(self):
        before = (socket.socket.__init__, socket.socketpair, subprocess.Popen.__init__, os.environ.get("DISPLAY"))
        with unit_guard():
            pass
        after = (socket.socket.__init__, socket.socketpair, subprocess.Popen.__init__, os.environ.get("DISPLAY"))
        self.assertEqual(after, before)


class LayerOfTest(unittest.TestCase):
    class Marked(unittest.TestCase):
        LAYER = E2E                 # a class mark wins over this module's "unit"

        def test_nothing(self):
            pass

    class Misspelled(unittest.TestCase):
        LAYER = "units"

        def test_nothing(self):
            pass

    def test_module_mark_class_mark_and_typo(self):
        self.assertEqual(layer_of(self), UNIT)                               # this module's LAYER
        self.assertEqual(layer_of(self.Marked("test_nothing")), E2E)
        with self.assertRaisesRegex(ValueError, "LAYER must be"):
            layer_of(self.Misspelled("test_nothing"))

    def test_unmarked_is_e2e(self):
        self.assertEqual(layer_of(unittest.FunctionTestCase(lambda: None)), E2E)


class WaitUntilTest(unittest.TestCase):
    def test_returns_the_first_true_value_and_polls_meanwhile(self):
        values, polls = iter([0, None, "ready"]), []
        self.assertEqual(waiting.wait_until(lambda: next(values), timeout=5, poll=lambda: polls.append(1),
                                            interval=0.001), "ready")
        self.assertEqual(len(polls), 3)

    def test_timeout_names_what_was_awaited(self):
        started = time.monotonic()
        with self.assertRaisesRegex(AssertionError, "waiting for the moon .*last value: 0"):
            waiting.wait_until(lambda: 0, timeout=0.05, what="the moon", interval=0.001)
        self.assertLess(time.monotonic() - started, 5)


if __name__ == "__main__":
    unittest.main()


class ParallelRunTest(unittest.TestCase):
    """The e2e layer split over worker processes (tests/parallel.py) counts and shows every module."""
    LAYER = E2E

    def test_two_workers_run_two_modules_and_count_them(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        run = subprocess.run([sys.executable, "-m", "tests", "tests.test_relay_forward.",
                              "tests.test_win_relay."], cwd=root, capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, TAGIO_TEST_WORKERS="2"))
        self.assertEqual(run.returncode, 0, run.stdout[-2000:])
        self.assertIn("in 2 workers", run.stdout)
        for module in ("tests.test_relay_forward", "tests.test_win_relay"):
            self.assertRegex(run.stdout, rf"--- {module}: [1-9]\d* tests, 0 failed")
        ran = sum(int(n) for n in re.findall(r"--- tests\.\S+: (\d+) tests", run.stdout))
        last = run.stdout.strip().splitlines()[-1]
        self.assertRegex(last, r"^\d+ passed, 0 failed, \d+ skipped$")
        passed, _, skipped = (int(n) for n in re.findall(r"\d+", last))
        self.assertEqual(passed + skipped, ran)
