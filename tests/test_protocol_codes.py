"""Error codes: every code the relay or the client raises is in protocol/codes.py's one table.

The relay and the client still spell some codes as string literals; this test reads their source
(ast, no import side effects) so a new code cannot appear on the wire without an entry here.
"""

import ast
import unittest
from pathlib import Path

from tagio.protocol import codes

LAYER = "unit"
ROOT = Path(__file__).resolve().parent.parent / "tagio"


def _literal_codes():
    """{(file, code)} for RelayError("code", ...) and Error("code", ...) calls in tagio/."""
    found = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("RelayError", "Error") and isinstance(node.args[0].value, str):
                found.add((path.relative_to(ROOT).as_posix(), node.args[0].value))
    return found


class CodesTest(unittest.TestCase):
    def test_every_raised_code_is_in_the_table(self):
        found = _literal_codes()
        self.assertGreater(len(found), 10)       # the scan does see the relay's codes
        unknown = sorted(f"{code} ({where})" for where, code in found if code not in codes.ALL_CODES)
        self.assertEqual(unknown, [])

    def test_constants_match_the_table(self):
        constants = {value for name, value in vars(codes).items() if name.isupper() and isinstance(value, str)}
        self.assertEqual(constants, set(codes.ALL_CODES))
        self.assertFalse(set(codes.RELAY_CODES) & set(codes.CLIENT_CODES))

    def test_relay_error_mapping_uses_known_codes(self):
        from tagio.relay.logic import ERROR_CODES
        self.assertTrue(all(code is None or code in codes.RELAY_CODES for _cls, code in ERROR_CODES))


if __name__ == "__main__":
    unittest.main()
