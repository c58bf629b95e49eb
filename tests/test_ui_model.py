"""Pure presentation logic of the client windows (tagio/ui/model.py), without Tk."""

import unittest

from tagio.errors import (ConfigError, ConnectionClosed, LocalProtocolError, RelayError,
                          RemoteProtocolError, TransportError, TransportTimeout, WrongPasswordError)
from tagio.ui import model
from tagio.ui.model import AcceptDecision, HomeEvent, HomeMachine, HomeState, SettingsForm

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class IdTest(unittest.TestCase):
    def test_display_id_groups_digits(self):
        self.assertEqual(model.display_id("123456789"), "123 456 789")

    def test_display_id_of_garbage_is_placeholder(self):
        for bad in (None, "", "12", "abcdefghi"):
            self.assertEqual(model.display_id(bad), "\u2014", bad)

    def test_partner_id_accepts_spaces_and_dashes(self):
        for text in ("123 456 789", " 123-456-789 ", "123456789"):
            self.assertEqual(model.validate_partner_id(text), ("123456789", None))

    def test_partner_id_problems_have_messages(self):
        cases = {"": "Enter", "12345": "9 digits", "012345678": "9 digits", "12345678x": "9 digits"}
        for text, expected in cases.items():
            digits, message = model.validate_partner_id(text)
            self.assertIsNone(digits)
            self.assertIn(expected, message)

    def test_own_id_is_refused(self):
        digits, message = model.validate_partner_id("111 222 333", own_id="111222333")
        self.assertIsNone(digits)
        self.assertIn("own ID", message)


class RelayStatusTest(unittest.TestCase):
    def test_forms_of_status_are_normalised(self):
        self.assertEqual(model.parse_relay_status("online"), ("online", ""))
        self.assertEqual(model.parse_relay_status("unreachable: connection refused"),
                         ("unreachable", "connection refused"))
        self.assertEqual(model.parse_relay_status(("offline", "dns")), ("offline", "dns"))
        self.assertEqual(model.parse_relay_status({"state": "ONLINE"}), ("online", ""))
        self.assertEqual(model.parse_relay_status(None), ("connecting", ""))

    def test_online_shows_address_in_green(self):
        text, colour = model.relay_status_text("online", "relay.example:443")
        self.assertEqual(colour, "ok")
        self.assertIn("relay.example:443", text)

    def test_unreachable_shows_reason_and_lan_hint_only_with_lan(self):
        text, colour = model.relay_status_text("unreachable: connection refused", lan_available=True)
        self.assertEqual(colour, "error")
        self.assertIn("connection refused", text)
        self.assertIn("LAN", text)
        self.assertNotIn("LAN", model.relay_status_text("unreachable: connection refused")[0])

    def test_connecting_is_busy(self):
        self.assertEqual(model.relay_status_text("connecting")[1], "busy")


class ErrorMessageTest(unittest.TestCase):
    def test_relay_codes_become_sentences_with_the_id(self):
        title, text = model.error_message(RelayError("unknown_id", "no such id"), "123456789")
        self.assertEqual(title, "Cannot connect")
        self.assertIn("123 456 789", text)
        self.assertIn("No desk", text)
        _t, text = model.error_message(RelayError("offline", "x"), "123456789")
        self.assertIn("not online", text)

    def test_unreachable_relay_keeps_the_reason_once(self):
        _t, text = model.error_message(RelayError(
            "unreachable", "relay h:1 is unreachable: cannot reach relay h:1: Connection refused"))
        self.assertIn("(Connection refused)", text)
        self.assertNotIn("h:1", text)

    def test_short_reason(self):
        self.assertEqual(model.short_reason("cannot reach relay 127.0.0.1:5: timed out"), "timed out")
        self.assertEqual(model.short_reason("relay refused: bad secret"), "relay refused: bad secret")
        text, _colour = model.relay_status_text("unreachable: cannot reach relay r:1: Connection refused")
        self.assertEqual(text, "Relay unreachable: Connection refused")

    def test_unknown_relay_code_shows_relay_text(self):
        _t, text = model.error_message(RelayError("weird", "the relay said so"))
        self.assertIn("the relay said so", text)

    def test_classes_map_along_the_mro(self):
        cases = {WrongPasswordError("x"): "Wrong password", TransportTimeout("t"): "No answer",
                 ConnectionClosed("c"): "Partner gone", TransportError("refused"): "Relay unreachable",
                 RemoteProtocolError("bad"): "Connection broken", ConfigError("own ID"): "Cannot connect"}
        for exc, title in cases.items():
            self.assertEqual(model.error_message(exc, "123456789")[0], title, type(exc))

    def test_cut_stream_reads_as_lost_connection_not_tampering(self):
        from tagio.crypto.records import channel_error
        title, text = model.error_message(channel_error("truncation", "the stream ended"), "123456789")
        self.assertEqual(title, "Connection lost")
        self.assertIn("123 456 789", text)
        self.assertEqual(model.error_message(channel_error("tamper", "x"))[0], "Connection broken")

    def test_wrong_password_never_echoes_anything(self):
        _t, text = model.error_message(WrongPasswordError("secret-ish detail"))
        self.assertNotIn("secret-ish", text)

    def test_unexpected_exception_is_generic(self):
        title, text = model.error_message(ZeroDivisionError("boom"))
        self.assertEqual(title, "Unexpected error")
        self.assertIn("ZeroDivisionError", text)


class AcceptPolicyTest(unittest.TestCase):
    def test_table(self):
        self.assertIs(model.decide_accept(True, False), AcceptDecision.ASK)
        self.assertIs(model.decide_accept(True, True), AcceptDecision.ACCEPT)
        self.assertIs(model.decide_accept(False, False), AcceptDecision.ACCEPT)

    def test_texts_name_the_partner(self):
        self.assertIn("123 456 789", model.countdown_text("123456789", 7))
        self.assertIn("7 s", model.countdown_text("123456789", 7))
        self.assertIn("0 s", model.countdown_text("123456789", -3))
        self.assertEqual(model.countdown_text("123456789", 9, "Bob"),
                         "Desk 123 456 789 (Bob) wants to connect to this computer.\nDenied automatically in 9 s.")
        self.assertEqual(model.controlled_text("123456789"), "Being controlled by 123 456 789")
        self.assertEqual(model.controlled_text("123456789", "Bob"), "Being controlled by 123 456 789 (Bob)")


class HomeMachineTest(unittest.TestCase):
    def run_events(self, *events):
        machine = HomeMachine()
        for event in events:
            machine.handle(event)
        return machine

    def test_happy_path_returns_home(self):
        m = self.run_events(HomeEvent.CONNECT_CLICKED, HomeEvent.PASSWORD_GIVEN, HomeEvent.CONNECTED)
        self.assertIs(m.state, HomeState.IN_SESSION)
        self.assertFalse(m.connect_enabled)
        m.handle(HomeEvent.SESSION_ENDED)
        self.assertTrue(m.connect_enabled)

    def test_failure_goes_through_error_dialog(self):
        m = self.run_events(HomeEvent.CONNECT_CLICKED, HomeEvent.PASSWORD_GIVEN, HomeEvent.FAILED)
        self.assertIs(m.state, HomeState.ERROR_SHOWN)
        m.handle(HomeEvent.ERROR_DISMISSED)
        self.assertIs(m.state, HomeState.IDLE)

    def test_cancel_password(self):
        m = self.run_events(HomeEvent.CONNECT_CLICKED, HomeEvent.PASSWORD_CANCELLED)
        self.assertIs(m.state, HomeState.IDLE)

    def test_missing_pair_raises(self):
        m = HomeMachine()
        self.assertFalse(m.can(HomeEvent.CONNECTED))
        with self.assertRaises(LocalProtocolError):
            m.handle(HomeEvent.CONNECTED)
        m.handle(HomeEvent.CONNECT_CLICKED)
        with self.assertRaises(LocalProtocolError):     # no second connect while asking
            m.handle(HomeEvent.CONNECT_CLICKED)


class SettingsFormTest(unittest.TestCase):
    def test_defaults_are_valid(self):
        values, errors = model.validate_settings(SettingsForm())
        self.assertEqual(errors, {})
        self.assertIsNone(values["relay"])
        self.assertIsNone(values["permanent_password"])
        self.assertEqual((values["fps_cap"], values["quality"]), (30, 75))

    def test_allow_reconnect_is_on_by_default_and_applied(self):
        from tagio.client.settings import Settings
        values, errors = model.validate_settings(SettingsForm())
        self.assertIs(values["allow_reconnect"], True)
        values, errors = model.validate_settings(SettingsForm(allow_reconnect=False))
        self.assertEqual(errors, {})
        settings = Settings("/nonexistent-config-dir")          # not saved: nothing is written
        self.assertTrue(settings.allow_reconnect)
        model.apply_settings(settings, values, "123456789")
        self.assertIs(settings.allow_reconnect, False)

    def test_relay_is_normalised(self):
        values, errors = model.validate_settings(SettingsForm(relay=" relay.example.org:8443 "))
        self.assertEqual(errors, {})
        self.assertEqual(values["relay"], "relay.example.org:8443")
        values, _ = model.validate_settings(SettingsForm(relay="[::1]:9000"))
        self.assertEqual(values["relay"], "[::1]:9000")
        values, _ = model.validate_settings(SettingsForm(relay="relay.example.org"))
        self.assertEqual(values["relay"], "relay.example.org:443")

    def test_relay_urls_are_accepted_and_bad_ones_refused(self):
        values, errors = model.validate_settings(SettingsForm(relay="wss://relay.example.org/tagio"))
        self.assertEqual(errors, {})
        self.assertEqual(values["relay"], "wss://relay.example.org/tagio")
        _values, errors = model.validate_settings(SettingsForm(relay="wss://relay.example.org:99999"))
        self.assertIn("relay", errors)

    def test_bad_values_each_get_a_message(self):
        form = SettingsForm(relay="host:99999", fps_cap="0", quality="abc", relay_secret="x" * 300,
                            new_password="abc", confirm_password="abc")
        _values, errors = model.validate_settings(form)
        self.assertEqual(set(errors), {"relay", "fps_cap", "quality", "relay_secret", "permanent_password"})
        self.assertIn("1 to 60", errors["fps_cap"])
        self.assertIn("at least", errors["permanent_password"])

    def test_password_must_match_and_clear_wins(self):
        _v, errors = model.validate_settings(SettingsForm(new_password="abcdefghij", confirm_password="abcdefghiX"))
        self.assertIn("do not match", errors["permanent_password"])
        values, errors = model.validate_settings(SettingsForm(new_password="abcdefghij",
                                                              confirm_password="abcdefghij"))
        self.assertEqual(values["permanent_password"], "abcdefghij")
        values, _ = model.validate_settings(SettingsForm(clear_password=True, new_password="zzz"))
        self.assertEqual(values["permanent_password"], "")

    def test_apply_settings_copies_values(self):
        from tagio.client.settings import Settings
        settings = Settings("/nonexistent-not-written")
        values, _ = model.validate_settings(SettingsForm(relay="r.example:1", fps_cap="12", quality="40",
                                                         ask_before_accept=False, view_only=True))
        model.apply_settings(settings, values, "123456789")
        self.assertEqual((settings.relay, settings.fps_cap, settings.quality), ("r.example:1", 12, 40))
        self.assertFalse(settings.ask_before_accept)
        self.assertTrue(settings.view_only)


class ListRowsTest(unittest.TestCase):
    def test_recent_rows_skip_garbage_and_cap(self):
        rows = model.recent_rows(["123456789", "bad", ("987654321", "office")] + ["111111111"] * 20)
        self.assertEqual(rows[0], ("123456789", "123 456 789"))
        self.assertEqual(rows[1], ("987654321", "987 654 321   office"))
        self.assertEqual(len(rows), model.MAX_RECENT_SHOWN - 1)

    def test_lan_rows_accept_dicts(self):
        rows = model.lan_rows([{"id": "123456789", "name": "desk-a"}, ("222333444", ("10.0.0.2", 1))])
        self.assertEqual(rows, [("123456789", "123 456 789   desk-a"), ("222333444", "222 333 444   10.0.0.2")])

    def test_lan_rows_accept_lan_peers(self):
        from tagio.net.lan import LanPeer
        rows = model.lan_rows([LanPeer("123456789", ("192.168.1.7", 21119), 0.0)])
        self.assertEqual(rows, [("123456789", "123 456 789   192.168.1.7")])


if __name__ == "__main__":
    unittest.main()
