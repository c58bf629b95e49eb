"""First run, as Windows users meet it: a host keeps the direct port it chose first (a firewall or
forwarding rule made for it stays right), a pure viewer opens no TCP listener (no firewall prompt for
nothing), and the home window's one-time notice explains the prompt before it appears. Real sockets
on 127.0.0.1; the notice's decision is pure."""

import socket
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from tagio.client.paths import UdpOnlyListener, make_listener
from tagio.client.settings import Settings
from tagio.ui import firstrun


class KeptPortTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)

    def listener(self, settings, bind=("127.0.0.1", 0)):
        listener = make_listener(bind, settings=settings)
        self.addCleanup(listener.close)
        return listener

    def test_first_port_is_kept_and_used_again(self):
        settings = Settings.load(self.dir)
        first = self.listener(settings)
        kept = first.port
        self.assertEqual(Settings.load(self.dir).direct_port, kept)
        first.close()
        again = self.listener(Settings.load(self.dir))
        self.assertEqual(again.port, kept)

    def test_a_taken_port_gives_another_one_this_time_and_keeps_the_old(self):
        settings = Settings.load(self.dir)
        first = self.listener(settings)
        other = self.listener(Settings.load(self.dir))     # `first` still holds the kept port
        self.assertNotEqual(other.port, first.port)
        self.assertEqual(Settings.load(self.dir).direct_port, first.port)

    def test_only_the_port_is_written(self):
        settings = Settings.load(self.dir)
        settings.relay_secret = "for-this-run-only"          # what TAGIO_RELAY_SECRET does
        self.listener(settings)
        text = (self.dir / "settings.json").read_text()
        self.assertNotIn("for-this-run-only", text)
        self.assertIn('"direct_port"', text)

    def test_an_explicit_port_is_not_kept(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = Settings.load(self.dir)
        self.listener(settings, ("127.0.0.1", port))
        self.assertEqual(Settings.load(self.dir).direct_port, 0)


class PureViewerTest(unittest.TestCase):
    def test_udp_only_no_tcp_listener(self):
        listener = make_listener(("127.0.0.1", 0), tcp=False)
        self.addCleanup(listener.close)
        self.assertIsInstance(listener, UdpOnlyListener)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()
        self.assertIn(("127.0.0.1", listener.port), listener.candidates())
        self.assertIsNone(listener.take(b"s" * 16, timeout=0.01))

    def test_the_command_line_viewer_asks_for_no_tcp_listener(self):
        from tagio.cli import connect
        from tagio.entry import build_parser
        args = build_parser().parse_args(["--cli", "connect", "123456789", "--password", "pw"])
        seen = {}

        class Stop(Exception):
            pass

        def make_client(_args, _out, **kwargs):
            seen.update(kwargs)
            raise Stop
        with mock.patch.object(connect, "make_client", make_client), self.assertRaises(Stop):
            connect.run_connect(args, mock.Mock(), None)
        self.assertIs(seen["listen_tcp"], False)


class FirewallNoticeTest(unittest.TestCase):
    LAYER = "unit"

    def test_once_and_only_on_windows(self):
        settings = Settings(Path("unused"))
        self.assertIsNone(firstrun.firewall_notice(settings, windows=False))
        self.assertIn("Allow access", firstrun.firewall_notice(settings, windows=True))
        settings.firewall_notice_shown = True
        self.assertIsNone(firstrun.firewall_notice(settings, windows=True))


if __name__ == "__main__":
    unittest.main()
