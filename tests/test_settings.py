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
from tagio.crypto.kdf import password_secret, verifier_from_secret
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
        s.permanent_verifier = verifier_from_secret(bytes(range(32)))
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
                "permanent_verifier": "zz", "recent_partners": ["123456789", 5, "x"]}
        (self.dir / "settings.json").write_text(json.dumps(data))
        s = Settings.load(self.dir)
        self.assertEqual((s.fps_cap, s.quality, s.relay, s.permanent_verifier), (30, 75, None, None))
        self.assertTrue(s.view_only)
        self.assertEqual(s.recent_partners, ["123456789"])
        for name in ("fps_cap", "quality", "relay", "permanent_verifier"):
            self.assertIn(name, s.warning)

    def test_every_field_is_type_checked_alone(self):
        """A value of the wrong JSON type falls back to the field's default (never converted:
        "relay": 12 is not the relay "12"), one warning names it, and the other fields are kept."""
        wrong = {"relay": 12, "relay_secret": 7, "permanent_verifier": 1.5, "ask_before_accept": 1,
                 "fps_cap": True, "quality": "75", "view_only": "yes", "clipboard": None,
                 "allow_files": 0, "files_dir": ["x"], "allow_reconnect": "true",
                 "recent_partners": "123456789", "partner_views": [], "direct_port": 4.0,
                 "firewall_notice_shown": {}, "desk_name": None}
        self.assertEqual(set(wrong), set(settings_mod.FIELDS))      # a new field needs a case here
        defaults = Settings(self.dir).to_json()
        self.dir.mkdir(parents=True)
        for name, value in wrong.items():
            good = {k: v for k, v in {"fps_cap": 12, "desk_name": "Front desk", "quality": 40}.items()
                    if k != name}
            (self.dir / "settings.json").write_text(json.dumps({**good, name: value}))
            s = Settings.load(self.dir)
            self.assertEqual(s.to_json()[name], defaults[name], name)
            self.assertEqual(s.warning, "Some settings were not valid and are back to their "
                                        f"defaults: {name}.")
            for kept, value in good.items():
                self.assertEqual(getattr(s, kept), value, (name, kept))

    def test_damaged_verifier_is_dropped(self):
        """A verifier whose L is off the curve (or w0 zero) would fail every handshake: drop it."""
        good = verifier_from_secret(b"v" * 32)
        for bad in (good[:-1] + bytes([good[-1] ^ 1]), bytes(32) + good[32:], good[:-1]):
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "settings.json").write_text(json.dumps({"permanent_verifier": bad.hex()}))
            s = Settings.load(self.dir)
            self.assertIsNone(s.permanent_verifier)
            self.assertIn("permanent_verifier", s.warning)

    def test_oversized_file(self):
        self.dir.mkdir(parents=True)
        (self.dir / "settings.json").write_text(" " * (settings_mod.MAX_FILE_BYTES + 10) + "{}")
        s = Settings.load(self.dir)
        self.assertIn("too large", s.warning)

    def test_repr_hides_secrets(self):
        verifier = verifier_from_secret(b"\xab" * 32)
        s = Settings(self.dir, relay_secret="topsecretvalue", permanent_verifier=verifier)
        self.assertNotIn("topsecretvalue", repr(s))
        self.assertNotIn(verifier[:8].hex(), repr(s))

    def test_unknown_setting(self):
        with self.assertRaises(ConfigError):
            Settings(self.dir, colour="blue")

    def test_permanent_password_stores_only_the_verifier(self):
        s = Settings(self.dir)
        s.set_permanent_password("correct horse", "123456789")
        secret = password_secret("correct horse", "123456789")
        self.assertEqual(s.permanent_verifier, verifier_from_secret(secret))
        s.save()
        text = (self.dir / "settings.json").read_text()
        self.assertNotIn("correct horse", text)
        self.assertNotIn(secret.hex(), text)           # nothing password-equivalent on disk
        self.assertNotIn("permanent_secret", text)
        for bad in ("abc", "abcd2345"):                # too short; shaped as a one-time password
            with self.assertRaises(ConfigError):
                s.set_permanent_password(bad, "123456789")
        s.set_permanent_password("", "123456789")
        self.assertIsNone(s.permanent_verifier)

    def test_old_stored_secret_is_dropped_and_erased(self):
        self.dir.mkdir(parents=True)
        old = {"permanent_secret": (b"\x11" * 32).hex(), "fps_cap": 20}
        (self.dir / "settings.json").write_text(json.dumps(old))
        with self.assertLogs("tagio.client", "WARNING") as logged:
            s = Settings.load(self.dir)
        self.assertIsNone(s.permanent_verifier)
        self.assertFalse(hasattr(s, "permanent_secret"))
        self.assertEqual(s.fps_cap, 20)                # the rest of the file is kept
        self.assertIn("permanent password must be set again", s.warning)
        self.assertIn("permanent_secret", "".join(logged.output))
        self.assertNotIn("11" * 32, "".join(logged.output))
        text = (self.dir / "settings.json").read_text()
        self.assertNotIn("11" * 32, text)             # the password-equivalent is gone from disk
        self.assertIsNone(Settings.load(self.dir).warning)


class FilesOptionTest(unittest.TestCase):
    """allow_files (off by default) and files_dir; what host sessions get as files_dir."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="tagio-files-opt-"))
        self.addCleanup(__import__("shutil").rmtree, self.tmp, True)
        old_home = os.environ.get("HOME")
        os.environ["HOME"] = str(self.tmp / "home")
        self.addCleanup(lambda: os.environ.__setitem__("HOME", old_home) if old_home is not None
                        else os.environ.pop("HOME", None))

    def test_off_by_default_and_nothing_made(self):
        settings = Settings(self.tmp / "cfg")
        self.assertFalse(settings.allow_files)
        self.assertIsNone(settings.host_files_dir())
        self.assertEqual(settings.files_folder(), self.tmp / "home" / "TagIO Files")
        self.assertFalse((self.tmp / "home").exists())

    def test_allowed_makes_the_default_folder_in_home(self):
        settings = Settings(self.tmp / "cfg", allow_files=True)
        self.assertEqual(settings.host_files_dir(), str(self.tmp / "home" / "TagIO Files"))
        self.assertTrue((self.tmp / "home" / "TagIO Files").is_dir())

    def test_chosen_folder_round_trip_and_bad_values(self):
        settings = Settings(self.tmp / "cfg", allow_files=True, files_dir=str(self.tmp / "shared"))
        settings.save()
        loaded = Settings.load(self.tmp / "cfg")
        self.assertEqual((loaded.allow_files, loaded.host_files_dir()), (True, str(self.tmp / "shared")))
        (self.tmp / "cfg" / "settings.json").write_text(json.dumps({"allow_files": "yes", "files_dir": 5}))
        loaded = Settings.load(self.tmp / "cfg")
        self.assertEqual((loaded.allow_files, loaded.files_dir), (False, None))
        self.assertIn("allow_files", loaded.warning)

    def test_a_folder_that_cannot_be_made_is_a_config_error_and_files_stay_off(self):
        (self.tmp / "a-file").write_text("x")
        settings = Settings(self.tmp / "cfg", allow_files=True, files_dir=str(self.tmp / "a-file" / "sub"))
        with self.assertRaises(ConfigError):
            settings.host_files_dir()
        from tagio.client.core import host_files_dir
        with self.assertLogs("tagio.client", "WARNING"):
            self.assertIsNone(host_files_dir(settings))



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
