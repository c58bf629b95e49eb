"""Tests for tagio.client.settings: paths, round trip, permissions, damaged files, relay choice."""

import json
import os
import stat
import tempfile
import unittest
from pathlib import Path

from tagio import DEFAULT_RELAY
from tagio.client import settings as settings_mod
from tagio.client.settings import (MAX_RECENT, Settings, default_config_dir, format_address,
                                   parse_address, resolve_relay)
from tagio.errors import ConfigError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class ConfigDirTest(unittest.TestCase):
    def test_env_overrides(self):
        self.assertEqual(default_config_dir({"TAGIO_CONFIG_DIR": "/x/y"}), Path("/x/y"))

    def test_posix_default(self):
        if os.name != "posix":
            self.skipTest("POSIX layout")
        got = default_config_dir({"XDG_CONFIG_HOME": "/cfg"})
        self.assertEqual(got, Path("/cfg/tagio"))
        self.assertEqual(default_config_dir({}), Path.home() / ".config" / "tagio")

    def test_windows_default(self):
        real = settings_mod.sys.platform
        settings_mod.sys.platform = "win32"
        try:
            got = default_config_dir({"APPDATA": "C:/Users/a/AppData/Roaming"})
        finally:
            settings_mod.sys.platform = real
        self.assertEqual(got, Path("C:/Users/a/AppData/Roaming") / "TagIO")


class AddressTest(unittest.TestCase):
    def test_forms(self):
        self.assertEqual(parse_address("relay.example:7000"), ("relay.example", 7000))
        self.assertEqual(parse_address("relay.example"), ("relay.example", 443))
        self.assertEqual(parse_address("[::1]:9"), ("::1", 9))
        self.assertEqual(format_address(("::1", 9)), "[::1]:9")
        self.assertEqual(format_address(("127.0.0.1", 9)), "127.0.0.1:9")

    def test_bad(self):
        for text in ("", "host:", "host:0", "host:70000", "host:abc", "[::1", "[::1]x", "x" * 300):
            with self.subTest(text=text), self.assertRaises(ConfigError):
                parse_address(text)

    def test_relay_urls(self):
        from tagio.client.settings import parse_relay
        target = parse_relay("wss://relay.example/tunnel")
        self.assertEqual((target.address, target.tls, target.websocket, target.ws_path),
                         (("relay.example", 443), True, True, "/tunnel"))
        self.assertEqual(parse_relay("tls://r:7").address, ("r", 7))
        self.assertFalse(parse_relay("r:7").tls)
        for bad in ("ftp://r:1", "tls://r:99999", "wss://"):
            with self.subTest(bad=bad), self.assertRaises(ConfigError):
                parse_relay(bad)
        self.assertEqual(resolve_relay("wss://relay.example", None, {}), ("relay.example", 443))

    def test_precedence(self):
        s = Settings("/nonexistent", relay="from-settings:1")
        self.assertEqual(resolve_relay("flag:2", s, {"TAGIO_RELAY": "env:3"}), ("flag", 2))
        self.assertEqual(resolve_relay(None, s, {"TAGIO_RELAY": "env:3"}), ("env", 3))
        self.assertEqual(resolve_relay(None, s, {}), ("from-settings", 1))
        self.assertEqual(resolve_relay(None, None, {}), ("tagio-server.onrender.com", 443))
        self.assertTrue(DEFAULT_RELAY.startswith("wss://"))


class RoundTripTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name) / "cfg"

    def tearDown(self):
        self._tmp.cleanup()

    def test_saves_from_two_threads_at_once_all_succeed(self):
        # The window saves from the Tk thread while a connect worker saves the recent list:
        # both used one temporary file name, so one thread's rename could take the other's file.
        import threading
        s = Settings.load(self.dir)
        failures = []

        def save_many(partner):
            for _ in range(40):
                s.add_recent(partner)
                try:
                    s.save()
                except ConfigError as exc:
                    failures.append(exc)
        threads = [threading.Thread(target=save_many, args=(p,)) for p in ("111111111", "222222222")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(failures, [])
        self.assertEqual(sorted(Settings.load(self.dir).recent_partners), ["111111111", "222222222"])
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), ["settings.json"])

    def test_defaults_without_file(self):
        s = Settings.load(self.dir)
        self.assertIsNone(s.relay)
        self.assertTrue(s.ask_before_accept)
        self.assertEqual((s.fps_cap, s.quality, s.recent_partners), (30, 75, []))
        self.assertIsNone(s.warning)

    def test_round_trip(self):
        s = Settings.load(self.dir)
        s.relay, s.relay_secret = "relay.example:8443", "shh"
        s.permanent_secret = bytes(range(32))
        s.ask_before_accept, s.fps_cap, s.quality, s.view_only = False, 60, 50, True
        for pid in ("111111111", "222222222", "111111111"):
            s.add_recent(pid)
        s.save()
        t = Settings.load(self.dir)
        for name in settings_mod.FIELDS:
            self.assertEqual(getattr(t, name), getattr(s, name), name)
        self.assertEqual(t.recent_partners, ["111111111", "222222222"])

    def test_recent_is_bounded(self):
        s = Settings(self.dir)
        for i in range(MAX_RECENT + 5):
            s.add_recent(str(100000000 + i))
        self.assertEqual(len(s.recent_partners), MAX_RECENT)
        self.assertEqual(s.recent_partners[0], str(100000000 + MAX_RECENT + 4))

    @unittest.skipUnless(os.name == "posix", "POSIX permissions")
    def test_owner_only(self):
        Settings(self.dir, relay_secret="secret").save()
        mode = stat.S_IMODE(os.stat(self.dir / "settings.json").st_mode)
        self.assertEqual(mode, 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.dir).st_mode), 0o700)
        self.assertEqual([p.name for p in self.dir.iterdir()], ["settings.json"])  # no temp left

    def test_damaged_file_is_kept_aside(self):
        self.dir.mkdir(parents=True)
        (self.dir / "settings.json").write_text("{not json")
        s = Settings.load(self.dir)
        self.assertEqual(s.fps_cap, 30)
        self.assertIn("damaged", s.warning)
        self.assertEqual((self.dir / "settings.json.bad").read_text(), "{not json")

    def test_invalid_fields_fall_back(self):
        self.dir.mkdir(parents=True)
        data = {"fps_cap": 1000, "quality": "high", "relay": "bad:port", "view_only": True,
                "permanent_secret": "zz", "recent_partners": ["123456789", 5, "x"]}
        (self.dir / "settings.json").write_text(json.dumps(data))
        s = Settings.load(self.dir)
        self.assertEqual((s.fps_cap, s.quality, s.relay, s.permanent_secret), (30, 75, None, None))
        self.assertTrue(s.view_only)
        self.assertEqual(s.recent_partners, ["123456789"])
        for name in ("fps_cap", "quality", "relay", "permanent_secret"):
            self.assertIn(name, s.warning)

    def test_oversized_file(self):
        self.dir.mkdir(parents=True)
        (self.dir / "settings.json").write_text(" " * (settings_mod.MAX_FILE_BYTES + 10) + "{}")
        s = Settings.load(self.dir)
        self.assertIn("too large", s.warning)

    def test_repr_hides_secrets(self):
        s = Settings(self.dir, relay_secret="topsecretvalue", permanent_secret=b"\xab" * 32)
        self.assertNotIn("topsecretvalue", repr(s))
        self.assertNotIn("abab", repr(s))

    def test_unknown_setting(self):
        with self.assertRaises(ConfigError):
            Settings(self.dir, colour="blue")

    def test_permanent_password_stores_only_secret(self):
        try:
            from tagio.crypto.kdf import password_secret
        except ImportError:
            self.skipTest("tagio.crypto.kdf not available yet")
        s = Settings(self.dir)
        s.set_permanent_password("correct horse", "123456789")
        self.assertEqual(s.permanent_secret, password_secret("correct horse", "123456789"))
        s.save()
        self.assertNotIn("correct horse", (self.dir / "settings.json").read_text())
        with self.assertRaises(ConfigError):
            s.set_permanent_password("abc", "123456789")
        s.set_permanent_password("", "123456789")
        self.assertIsNone(s.permanent_secret)



class DeskNameTest(unittest.TestCase):
    def test_desk_name_is_cleaned_and_bounded_when_loaded(self):
        folder = tempfile.mkdtemp(prefix="tagio-desk-")
        self.addCleanup(__import__("shutil").rmtree, folder, True)
        Path(folder, "settings.json").write_text(json.dumps({"desk_name": "Anna\n\x1b]0;pwned\x07" + "x" * 90}))
        settings = Settings.load(folder)
        self.assertEqual(settings.desk_name, ("Anna ]0;pwned" + "x" * 90)[:64])   # newline: a space
        Path(folder, "settings.json").write_text(json.dumps({"desk_name": 7}))
        settings = Settings.load(folder)
        self.assertEqual(settings.desk_name, "")
        self.assertIn("desk_name", settings.warning)


if __name__ == "__main__":
    unittest.main()
