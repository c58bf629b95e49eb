"""Tests for tagio.ui.partners' pure parts: the address book's rows, the history's lines, and when
the relay is asked who is online (OnlineRounds, with an injected clock and a recording relay)."""

import time
import unittest

from tagio.client.history import HistoryEntry
from tagio.client.partners import Partner
from tagio.errors import RelayError
from tagio.ui import partners as ui

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

NOW = time.mktime((2026, 12, 5, 15, 0, 0, 0, 0, -1))


class RowsTest(unittest.TestCase):
    def test_partner_rows_show_dot_id_name_time_and_path(self):
        today = Partner("111222333", "", "Anna", NOW - 3600, "relay")
        older = Partner("444555666", "Mum", "Anna", time.mktime((2026, 3, 1, 9, 5, 0, 0, 0, -1)), "direct-tcp")
        never = Partner("777888999", "", "", 0, "")
        rows = ui.partner_rows([today, older, never], {"111222333": "online", "444555666": "offline"}, NOW)
        self.assertEqual(rows, [
            ("111222333", "\u25cf 111 222 333   Anna   14:00 \u00b7 Relayed", "online"),
            ("444555666", "\u25cb 444 555 666   Mum   1 Mar 09:05 \u00b7 Direct", "offline"),
            ("777888999", "\u00b7 777 888 999", None)])

    def test_history_lines(self):
        entry = HistoryEntry("111222333", "Bob", NOW - 60, 125.0, "relay", True)
        self.assertEqual(ui.history_line(entry, NOW), "14:59   111 222 333 (Bob)   2 min 05 s   Relayed   view only")
        entry = HistoryEntry("111222333", "", time.mktime((2025, 1, 2, 3, 4, 0, 0, 0, -1)), 7300, "lan", False)
        self.assertEqual(ui.history_line(entry, NOW), "2 Jan 2025   111 222 333   2 h 01 min   LAN   control")


class Relay:
    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def lookup(self, pid, timeout):
        self.asked.append(pid)
        answer = self.answers[pid]
        if isinstance(answer, Exception):
            raise answer
        return answer


class OnlineRoundsTest(unittest.TestCase):
    def test_one_round_per_30_s_only_while_shown_and_online(self):
        clock = [100.0]
        rounds = ui.OnlineRounds(clock=lambda: clock[0])
        self.assertFalse(rounds.due(shown=False, relay_online=True))
        self.assertFalse(rounds.due(shown=True, relay_online=False))
        self.assertTrue(rounds.due(shown=True, relay_online=True))
        rounds.started()
        self.assertFalse(rounds.due(True, True))           # one round at a time
        rounds.finished({"111111111": "online"})
        clock[0] += 29.9
        self.assertFalse(rounds.due(True, True))
        clock[0] += 0.2
        self.assertTrue(rounds.due(True, True))
        self.assertEqual(rounds.states, {"111111111": "online"})

    def test_a_round_asks_a_few_and_stops_at_the_rate_limit(self):
        ids = [f"{100000000 + n}" for n in range(20)]
        relay = Relay({pid: "offline" for pid in ids})
        relay.answers[ids[0]] = "online"
        relay.answers[ids[1]] = "unknown"
        found = ui.OnlineRounds().ask(relay, ids)      # no stop Event: no pacing (a unit test)
        self.assertEqual(len(relay.asked), ui.ROUND_SIZE)
        self.assertEqual((found[ids[0]], found[ids[1]], found[ids[2]]), ("online", "offline", "offline"))
        relay.answers[ids[3]] = RelayError("rate_limited", "slow down")
        relay.asked.clear()
        found = ui.OnlineRounds().ask(relay, ids)
        self.assertEqual(relay.asked, ids[:4])
        self.assertEqual(sorted(found), sorted(ids[:3]))

    def test_a_round_is_paced_and_stops_when_the_app_closes(self):
        class Stop:
            def __init__(self):
                self.waits = []

            def wait(self, seconds):
                self.waits.append(seconds)
                return len(self.waits) == 3        # the app closes during the third pause
        ids = [f"{100000000 + n}" for n in range(20)]
        relay, stop = Relay({pid: "online" for pid in ids}), Stop()
        found = ui.OnlineRounds().ask(relay, ids, stop=stop)
        self.assertEqual(stop.waits, [ui.PACE_S] * 3)
        self.assertEqual(relay.asked, ids[:3])
        self.assertEqual(len(found), 3)


if __name__ == "__main__":
    unittest.main()
