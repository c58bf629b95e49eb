"""Tests for tagio.client.words: one plain sentence for every error, relay code and session ending.

Pure logic, no sockets. The relay's codes are read from its source (every `RelayError("code", ...)`
and the error_code table), so a code added to the relay without words fails here.
"""

import ast
import unittest
from pathlib import Path

from tagio import errors
from tagio.client import words
from tagio.crypto.records import channel_error
from tagio.errors import (ConfigError, ConnectionClosed, RelayError, TagioError, TransportTimeout,
                          WrongPasswordError)

LAYER = "unit"
ROOT = Path(__file__).resolve().parent.parent
RELAY_SOURCES = sorted((ROOT / "tagio" / "relay").glob("*.py")) + sorted((ROOT / "tagio" / "protocol").glob("*.py"))
CLIENT_SOURCES = [ROOT / "tagio" / "net" / "relay_client.py", ROOT / "tagio" / "client" / "relay_link.py"]
CODE_TABLES = ("ERROR_CODES",)          # relay/logic.py: class -> code for errors without their own
JARGON = ("secure channel", "truncation", "tamper", "stream ended", "record", "errno", "traceback")


def _strings(node):
    """The string constants a code expression can take ("a" if x else "b" gives both)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    return set()


def codes_in(paths):
    """Every code passed as the first argument of RelayError(...), and the strings of CODE_TABLES."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RelayError" and node.args:
                found |= _strings(node.args[0])
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in CODE_TABLES for t in node.targets):
                found |= {n.value for n in ast.walk(node.value)
                          if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return found


class RelayCodesTest(unittest.TestCase):
    def test_every_code_the_relay_can_send_has_a_sentence(self):
        codes = codes_in(RELAY_SOURCES)
        self.assertTrue({"unknown_id", "offline", "rate_limited", "auth_failed"} <= codes, codes)  # the scan works
        missing = sorted(codes - set(words.RELAY_CODES))
        self.assertEqual(missing, [], "relay error codes without words")

    def test_the_clients_own_codes_have_sentences_too(self):
        codes = codes_in(CLIENT_SOURCES)
        self.assertIn("unreachable", codes)            # the scan works
        self.assertEqual(sorted(codes - set(words.RELAY_CODES)), [])

    def test_every_code_of_the_one_table_has_a_sentence(self):
        from tagio.protocol import codes as wire_codes
        self.assertIn("auth_required", wire_codes.ALL_CODES)
        self.assertEqual(sorted(set(wire_codes.ALL_CODES) - set(words.RELAY_CODES)), [],
                         "codes in tagio/protocol/codes.py without words")

    def test_every_relay_sentence_is_plain_and_complete(self):
        for code in words.RELAY_CODES:
            with self.subTest(code=code):
                said = words.explain(RelayError(code, "relay text"), partner_id="123456789")
                self.assertEqual(said.title, "Cannot connect")
                self.assertNotIn("{", said.body)
                self.assertTrue(said.sentence.endswith("."), said.sentence)
                self.assertNotIn("\n", said.line)

    def test_unknown_code_keeps_the_relays_words_and_its_code_as_kind(self):
        said = words.explain(RelayError("brand_new", "the relay is moving house"))
        self.assertIn("the relay is moving house", said.body)
        self.assertEqual(said.kind, "brand_new")


class ErrorClassesTest(unittest.TestCase):
    def test_every_error_class_has_its_words(self):
        classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, TagioError)]
        self.assertGreater(len(classes), 10)
        for cls in classes:
            with self.subTest(cls=cls.__name__):
                exc = cls("code", "text") if cls is RelayError else cls("detail")
                self.assertIsNot(words.words_for(exc), words.UNEXPECTED)

    def test_detail_stays_out_of_the_sentence(self):
        said = words.explain(WrongPasswordError("key confirmation mac mismatch"))
        self.assertNotIn("mismatch", said.body + said.line)
        self.assertIn("mismatch", said.detail)          # for the log and --verbose

    def test_config_errors_are_written_for_people_and_shown(self):
        self.assertEqual(words.explain(ConfigError("'12' is not a TagIO ID")).line, "'12' is not a TagIO ID")

    def test_partner_named_when_known(self):
        self.assertIn("desk 123 456 789", words.explain(TransportTimeout("x"), partner_id="123456789").body)
        self.assertIn("your partner's desk", words.explain(TransportTimeout("x")).body)

    def test_a_bug_is_an_internal_error_without_its_message(self):
        said = words.explain(KeyError("secret-looking key"))
        self.assertEqual((said.kind, said.status), ("internal", words.EXIT_ERROR))
        self.assertNotIn("secret-looking", said.body)


class EndingsTest(unittest.TestCase):
    def test_a_relay_restart_reads_as_a_lost_connection(self):
        cut = channel_error("truncation", "the stream ended between records")
        for exc in (cut, ConnectionClosed(str(cut)), ConnectionClosed(f"connection lost ({cut})"),
                    ConnectionClosed("the relay closed the connection")):
            with self.subTest(exc=str(exc)):
                said = words.explain(exc, partner_id="123456789")
                text = (said.title + " " + said.body + " " + said.line).lower()
                self.assertIn("connection", text)
                self.assertIn("lost", text)
                for jargon in JARGON:
                    self.assertNotIn(jargon, text)

    def test_our_own_goodbyes_become_sentences(self):
        cases = {"host ended the session": words.PARTNER_ENDED,
                 "viewer closed the session": words.PARTNER_ENDED,
                 "the partner declined the connection": "Your partner declined.",
                 "connection lost": words.LOST,
                 "protocol error: unknown session message 0xee": words.PROTOCOL,
                 "host error: cannot capture": "Your partner's computer had a problem and ended the session."}
        for reason, sentence in cases.items():
            with self.subTest(reason=reason):
                self.assertEqual(words.ending(reason), sentence)

    def test_a_partners_own_words_are_kept(self):
        self.assertEqual(words.ending("going to lunch"), "Going to lunch.")
        self.assertEqual(words.explain(ConnectionClosed("going to lunch")).line, "partner gone: going to lunch")


if __name__ == "__main__":
    unittest.main()


class WrongGuessWordsTest(unittest.TestCase):
    LAYER = "unit"

    def test_tries_left_are_counted_in_plain_words(self):
        from tagio.client import words
        self.assertEqual(words.wrong_guess("123 456 789", 2),
                         "Desk 123 456 789 tried a wrong password (2 more tries with this password).")
        self.assertEqual(words.wrong_guess("123 456 789", 1),
                         "Desk 123 456 789 tried a wrong password (1 more try with this password).")
        self.assertIn("new one-time password", words.wrong_guess("123 456 789", 0))
        from tagio.errors import WrongPasswordError
        self.assertIn("three wrong tries", words.ERRORS[WrongPasswordError].advice)
