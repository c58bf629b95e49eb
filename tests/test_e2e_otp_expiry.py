"""Issue 10 item 8: the one-time password expires with time, seen through the product.

The lifetime is an hour (tagio.client.hosting.OTP_LIFETIME); TAGIO_OTP_LIFETIME=SECONDS shortens it
for one process (never lengthens it), which is how these tests see an expiry in seconds:

- the command line: a real relay process and `tagio-gui.py --cli host` on a private Xvfb; the host
  prints a new ready line with a new password by itself, and a viewer (`--cli connect`) that
  types the expired one is refused as a wrong password (exit status 3) and the host reports the
  failed guess; a lifetime longer than the hour is refused at start (exit status 2);
- the window: a real App (tests/test_ui_app.py's UiCase) shows the new password by itself.

The rule and the expiry thread are unit-tested with an injected clock in test_client_otp_expiry.py.
"""

import os
import sys
import time
import unittest
from pathlib import Path

from tagio.client.core import ENV_OTP_LIFETIME
from tagio.crypto.identity import Identity
from tests.desk import scratch_and_xvfb
from tests.relay_fixture import run_relay_process
from tests.test_e2e import GUI, Proc
from tests.test_ui_app import UiCase, tk
from tests.xvfb import skip_unless_xvfb

LIFETIME = 2          # seconds (the expiry thread looks once a second)
EXIT_CONFIG, EXIT_AUTH = 2, 3


class LifetimeSettingTest(unittest.TestCase):
    LAYER = "unit"          # the setting's parser: pure

    def test_only_shorter_than_the_hour(self):
        from tagio.client.core import otp_lifetime
        from tagio.client.hosting import OTP_LIFETIME
        from tagio.errors import ConfigError
        for text, expected in (("", OTP_LIFETIME), ("  ", OTP_LIFETIME), ("2", 2.0), ("1.5", 1.5),
                               ("3600", OTP_LIFETIME)):
            with self.subTest(text=text):
                self.assertEqual(otp_lifetime({ENV_OTP_LIFETIME: text}), expected)
        self.assertEqual(otp_lifetime({}), OTP_LIFETIME)
        for text in ("3601", "0", "0.5", "-5", "nan", "inf", "an hour"):
            with self.subTest(text=text), self.assertRaisesRegex(ConfigError, ENV_OTP_LIFETIME):
                otp_lifetime({ENV_OTP_LIFETIME: text})


@skip_unless_xvfb
class CommandLineExpiryTest(unittest.TestCase):
    def setUp(self):
        self.tmp, self.xvfb = scratch_and_xvfb(self)
        self.relay, address = run_relay_process("--bind", "127.0.0.1:0")
        self.addCleanup(self.relay.wait, 10)
        self.addCleanup(self.relay.kill)
        self.relay_text = "%s:%d" % address

    def env(self, display=True, **extra):
        env = self.xvfb.env()
        env.update(PYTHONPATH=str(Path(GUI).parent), PYTHONUNBUFFERED="1", **extra)
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", ENV_OTP_LIFETIME) + (() if display else ("DISPLAY",)):
            if name not in extra:
                env.pop(name, None)
        return env

    def host(self, lifetime):
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", self.relay_text,
                     "--config-dir", str(self.tmp / "host"), "--direct-bind", "127.0.0.1"],
                    self.env(**{ENV_OTP_LIFETIME: str(lifetime)}))
        self.addCleanup(host.stop)
        return host

    def test_an_expired_password_is_a_wrong_password_and_the_host_shows_a_new_one(self):
        host = self.host(LIFETIME)
        first = host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        shown_at = time.monotonic()
        newer = host.wait_for(lambda e: e.get("event") == "ready" and e["password"] != first["password"],
                              timeout=LIFETIME + 15, what="a new password once the first expired")
        print(f"\n  one-time password replaced after {time.monotonic() - shown_at:.1f} s "
              f"({ENV_OTP_LIFETIME}={LIFETIME})", file=sys.stderr)
        self.assertEqual(newer["id"], first["id"])
        viewer_id = Identity.load_or_create(self.tmp / "viewer").id     # the key the viewer will use
        viewer = Proc([sys.executable, GUI, "--cli", "connect", first["id"], "--password", first["password"],
                       "--json", "--relay", self.relay_text, "--config-dir", str(self.tmp / "viewer"),
                       "--direct-bind", "127.0.0.1"], self.env(display=False))
        self.addCleanup(viewer.stop)
        self.assertEqual(viewer.finish(60), EXIT_AUTH, viewer.stderr)
        self.assertIn("wrong password", viewer.stderr.lower())
        host.wait_for(lambda e: e.get("event") == "auth_failed" and e["peer"] == viewer_id,
                      what="the host's line about the failed guess")
        self.assertNotIn(first["password"], [e["password"] for e in host.events("ready")[1:]])

    def test_a_lifetime_longer_than_the_hour_is_refused(self):
        host = self.host(7200)
        self.assertEqual(host.finish(30), EXIT_CONFIG, host.stderr)
        self.assertIn(ENV_OTP_LIFETIME, host.stderr)
        self.assertEqual(host.events("ready"), [])


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class WindowExpiryTest(UiCase):
    """The home window shows the new password when the old one expires, with nobody touching it."""

    def setUp(self):
        old = os.environ.get(ENV_OTP_LIFETIME)
        os.environ[ENV_OTP_LIFETIME] = str(LIFETIME)      # read when the App makes its Client
        self.addCleanup(restore, ENV_OTP_LIFETIME, old)
        super().setUp()

    def test_the_window_shows_the_new_password(self):
        home, client = self.app.home, self.app.client
        first = self.pump(lambda: client.one_time_password if home.password_var.get() == client.one_time_password
                          else None, "the first password shown")
        self.pump(lambda: home.password_var.get() not in (first, "\u2014"), "the new password shown",
                  timeout=LIFETIME + 15)
        self.assertEqual(home.password_var.get(), client.one_time_password)
        self.assertEqual(client.hosting.otp_lifetime, LIFETIME)


def restore(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


if __name__ == "__main__":
    unittest.main()
