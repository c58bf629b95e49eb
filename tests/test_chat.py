"""Chat helpers (tagio.session.chat): cutting long lines between characters, the bounded log."""

import unittest

from tagio.protocol import session as m
from tagio.session.chat import MAX_LINE, ChatLog, chat_pieces

LAYER = "unit"


class Pieces(unittest.TestCase):
    def test_short_line_is_one_piece(self):
        self.assertEqual(list(chat_pieces("héllo ✓")), ["héllo ✓"])

    def test_long_line_cut_between_characters(self):
        text = "é" * m.MAX_CHAT          # 2 bytes each: twice the limit
        pieces = list(chat_pieces(text))
        self.assertEqual("".join(pieces), text)
        self.assertTrue(all(len(p.encode("utf-8")) <= m.MAX_CHAT for p in pieces))
        for piece in pieces:
            m.encode(m.Chat(piece))

    def test_empty_and_huge_refused(self):
        for bad in ("", "   ", "x" * (MAX_LINE + 1)):
            with self.assertRaises(ValueError):
                list(chat_pieces(bad))


class Log(unittest.TestCase):
    def test_bounded_and_ordered(self):
        log = ChatLog(limit=3, clock=lambda: 1.0)
        for i in range(5):
            log.add("me", str(i))
        self.assertEqual([t for _, _, t in log.lines()], ["2", "3", "4"])
        self.assertEqual(([t for _, _, t in log.since(3)[0]], log.since(3)[1]), (["3", "4"], 5))
        self.assertEqual([t for _, _, t in log.since(0)[0]], ["2", "3", "4"])
        self.assertEqual(log.since(5), ([], 5))


if __name__ == "__main__":
    unittest.main()
