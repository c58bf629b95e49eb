"""No logging call in tagio/ is handed a password, a one-time password or a secret.

A static check over every module (the end-to-end side is tests/test_e2e_no_secret_logs.py): each call
of a logger method (`log.info(...)`, `logging.getLogger(...).debug(...)`, ...) is looked at, and no
argument may mention a name or attribute that holds a secret (`password`, `otp`, `secret`, `token`,
...). The message text itself may talk about passwords; only the values handed to it count.
"""

import ast
import unittest
from pathlib import Path

LAYER = "unit"  # reads source files only

ROOT = Path(__file__).resolve().parent.parent / "tagio"
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
SECRET_WORDS = ("password", "otp", "secret", "token", "passphrase")


def logging_calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in LOG_METHODS and _looks_like_logger(node.func.value):
            yield node


def _looks_like_logger(value) -> bool:
    text = ast.unparse(value).lower()
    return "log" in text


def secret_names(node) -> list:
    """Names and attributes in the call's arguments (not its string constants) that sound secret."""
    found = []
    for arg in list(node.args[1:]) + [kw.value for kw in node.keywords]:
        for part in ast.walk(arg):
            name = part.id if isinstance(part, ast.Name) else part.attr if isinstance(part, ast.Attribute) else ""
            if any(word in name.lower() for word in SECRET_WORDS):
                found.append(name)
    return found


class NoSecretInLogsTest(unittest.TestCase):
    def test_no_logging_call_is_handed_a_secret(self):
        offenders, calls = [], 0
        for path in sorted(ROOT.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for call in logging_calls(tree):
                calls += 1
                names = secret_names(call)
                if names:
                    offenders.append(f"{path.relative_to(ROOT.parent)}:{call.lineno}: {names}")
        self.assertGreater(calls, 50)           # the scan found the logging calls it is about
        self.assertEqual(offenders, [])

    def test_the_scan_catches_one(self):
        tree = ast.parse('log.info("new one-time password %s", self._otp)\nlog.debug("x %s", secret)\n'
                         'log.info("a password was wrong for %s", peer_id)')
        self.assertEqual([secret_names(call) for call in logging_calls(tree)], [["_otp"], ["secret"], []])


if __name__ == "__main__":
    unittest.main()
