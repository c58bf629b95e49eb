"""Bounded fuzz pass over every parser (tests/fuzz/): about 30 s in all, fixed seed.

Each parser gets an equal share of the budget. A decoder may raise only its allowed errors
(ProtocolError; see tests/fuzz/targets.py), and whatever it decodes must round-trip. The long run
is `python3 -m tests.fuzz --seconds N`.
"""

import unittest

from tests.fuzz.runner import run
from tests.fuzz.targets import TARGETS

LAYER = "e2e"  # pure, but it spends its 30 s budget: the full run has it, not the inner loop
TOTAL_SECONDS = 30.0
SEED = 20261205
MIN_INPUTS = 200        # per parser: it ran (a run beside two other test workers and more managed 490/s)


class FuzzTest(unittest.TestCase):
    def test_every_parser(self):
        share = TOTAL_SECONDS / len(TARGETS)
        for target in TARGETS:
            with self.subTest(parser=target.name):
                result = run(target, share, SEED)
                print(f"\n  fuzz {result.line()}", end="")
                self.assertEqual(result.failures[:3], [], f"{target.name}: {len(result.failures)} failures")
                self.assertGreater(result.inputs, MIN_INPUTS)
                self.assertGreater(result.accepted, 0, "no mutated input decoded: the round trip went untested")
                self.assertGreater(result.rejected, 0, "nothing refused: the mutations do not reach the checks")

    def test_a_decoder_bug_is_caught(self):
        """The harness itself: an exception that is not a ProtocolError counts as a failure."""
        from tests.fuzz.targets import Target

        def buggy(data):
            if len(data) > 3 and data[3] == 0xFF:
                raise IndexError("a decoder bug")
            return []
        target = Target("buggy", lambda: [bytes(8)], buggy, lambda item: None)
        result = run(target, 5.0, SEED, max_inputs=3000)
        self.assertTrue(result.failures)
        self.assertIn("IndexError: a decoder bug", result.failures[0][1])


if __name__ == "__main__":
    unittest.main()
