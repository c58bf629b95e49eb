"""Run the whole test suite: `python -m tests [pattern ...]`.

Discovers tests/test_*.py with unittest and ends with the plain line
`N passed, N failed, N skipped`; exits non-zero on any failure or error.
Extra arguments filter test ids by substring.
"""

import sys
import time
import unittest
from pathlib import Path


def _iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


def main(argv):
    root = Path(__file__).resolve().parent.parent
    loader = unittest.TestLoader()
    discovered = loader.discover(str(root / "tests"), pattern="test_*.py", top_level_dir=str(root))
    tests = list(_iter_tests(discovered))
    if argv:
        tests = [t for t in tests if any(a in t.id() for a in argv)]
    suite = unittest.TestSuite(tests)
    started = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print(f"ran in {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
