"""The one-time password expires with time even when nobody uses it (tagio.client.hosting).

The rule is a pure function (`otp_expired`); the Hosting's expiry thread applies it on an injected
clock, so an hour passes in a few milliseconds.
"""

import threading
import unittest
from types import SimpleNamespace

from tagio.client import hosting as hosting_module
from tagio.client.hosting import OTP_LIFETIME, Hosting, otp_expired
from tests.waiting import wait_until

LAYER = "unit"  # no sockets, no X: a recording stand-in for the Client


class FakeClient:
    id = "123456789"

    def __init__(self):
        self.settings = SimpleNamespace(permanent_secret=None, ask_before_accept=False)
        self.events = []
        self.listener = None

    def emit(self, name, **fields):
        self.events.append(name)

    def current_relay(self):
        return None


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            return self.now

    def advance(self, seconds):
        with self._lock:
            self.now += seconds


class OtpExpiredRuleTest(unittest.TestCase):
    def test_the_rule(self):
        cases = [  # (age in seconds, a host session running) -> replace it?
            (0, False, False), (OTP_LIFETIME - 1, False, False), (OTP_LIFETIME, False, True),
            (10 * OTP_LIFETIME, False, True), (10 * OTP_LIFETIME, True, False)]
        for age, running, expected in cases:
            with self.subTest(age=age, running=running):
                self.assertEqual(otp_expired(50.0, 50.0 + age, running), expected)

    def test_an_hour_by_default(self):
        self.assertEqual(OTP_LIFETIME, 3600.0)


class OtpExpiryThreadTest(unittest.TestCase):
    def setUp(self):
        original = hosting_module.OTP_EXPIRY_POLL
        hosting_module.OTP_EXPIRY_POLL = 0.005
        self.addCleanup(setattr, hosting_module, "OTP_EXPIRY_POLL", original)
        self.client, self.clock = FakeClient(), FakeClock()
        self.hosting = Hosting(self.client, options={})
        self.hosting.otp_clock = self.clock
        self.hosting.start(None)
        self.addCleanup(self.stop)

    def stop(self):
        self.hosting.stop()
        self.assertEqual(self.hosting.join(), [])
        self.assertFalse(self.hosting._expiry_thread.is_alive())

    def seen(self):
        """Wait until the expiry thread has gone round twice from now: it has acted on the clock
        as it is."""
        calls, clock = [], self.clock
        self.hosting.otp_clock = lambda: (calls.append(1), clock())[1]
        wait_until(lambda: len(calls) >= 2, 5, "the expiry thread to look")
        self.hosting.otp_clock = clock

    def test_an_unused_password_is_replaced_after_an_hour(self):
        first = self.hosting.one_time_password
        self.seen()
        self.clock.advance(OTP_LIFETIME - 5)
        self.seen()
        self.assertEqual(self.hosting.one_time_password, first)   # not yet
        before = self.client.events.count("password_changed")
        self.clock.advance(5)
        wait_until(lambda: self.hosting.one_time_password != first, 5, "a new one-time password")
        self.assertEqual(self.client.events.count("password_changed"), before + 1)  # the front ends show it
        second = self.hosting.one_time_password
        self.seen()
        self.clock.advance(OTP_LIFETIME - 1)                         # the new one lives its own hour
        self.seen()
        self.assertEqual(self.hosting.one_time_password, second)

    def test_not_replaced_while_a_host_session_runs(self):
        first = self.hosting.one_time_password
        self.hosting._sessions.append(object())
        self.seen()
        self.clock.advance(2 * OTP_LIFETIME)
        self.seen()
        self.assertEqual(self.hosting.one_time_password, first)
        self.hosting._sessions.clear()
        wait_until(lambda: self.hosting.one_time_password != first, 5, "the password to expire after the session")


if __name__ == "__main__":
    unittest.main()
