"""Tests for tagio.cli.script: parsing (bounded, line-numbered errors) and playback."""

import threading
import unittest

from tagio.cli.script import MAX_STEPS, parse_script, run_script
from tagio.errors import ConfigError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name,) + args)


class ParseTest(unittest.TestCase):
    def test_commands(self):
        steps = parse_script("# demo\n\nmove 10 20\nclick\nclick 3\ndown 1\nup 1\nscroll 0 -2\n"
                             "key Return\ntype hello world \nwait 0.5\n")
        self.assertEqual(steps, [("move", (10, 20)), ("click", (1,)), ("click", (3,)),
                                 ("down", (1,)), ("up", (1,)), ("scroll", (0, -2)),
                                 ("key", ("Return",)), ("type", ("hello world ",)), ("wait", (0.5,))])

    def test_errors_name_the_line(self):
        cases = {"jump 1 2": "unknown command", "move 1": "line 1", "move -1 5": "out of range",
                 "click 12": "out of range", "wait 999": "wait", "key": "keysym", "type": "text",
                 "move a b": "line 1", "key two words": "keysym"}
        for text, needle in cases.items():
            with self.subTest(text=text), self.assertRaises(ConfigError) as ctx:
                parse_script(text)
            self.assertIn(needle, str(ctx.exception))
        with self.assertRaises(ConfigError) as ctx:
            parse_script("move 1 1\n\nbogus\n")
        self.assertIn("line 3", str(ctx.exception))

    def test_bounded(self):
        with self.assertRaises(ConfigError):
            parse_script("click\n" * (MAX_STEPS + 1))
        with self.assertRaises(ConfigError):
            parse_script("#" * 70000)


class PlayTest(unittest.TestCase):
    def test_plays_in_order(self):
        rec = Recorder()
        done = run_script(rec, parse_script("move 5 6\nclick 1\nkey a\ntype hi\nscroll 1 2"),
                          threading.Event(), step_delay=0)
        self.assertTrue(done)
        self.assertEqual(rec.calls, [("send_mouse_move", 5, 6), ("send_mouse_button", 1, True),
                                     ("send_mouse_button", 1, False), ("send_key", "a", True),
                                     ("send_key", "a", False), ("send_text", "hi"),
                                     ("send_scroll", 1, 2)])

    def test_stop_interrupts_wait(self):
        rec, stop = Recorder(), threading.Event()
        timer = threading.Timer(0.05, stop.set)
        timer.start()
        self.assertFalse(run_script(rec, parse_script("wait 30\nclick"), stop, step_delay=0))
        timer.join()
        self.assertEqual(rec.calls, [])


if __name__ == "__main__":
    unittest.main()
