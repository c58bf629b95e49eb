"""Reconnect's pieces: the channel's key exporter, the resumption secret (bound to both IDs), the
host's tickets (single use, 60 s after the path broke, refused by Disconnect or the setting), the
viewer's retry loop, and a resumption secret through the real handshake over a socketpair."""

import os
import threading
import unittest

from tagio.client.refusal import PartnerRefused
from tagio.client.resume import (
    RESUME_TTL, ResumeTickets, lost_path, reconnect, resume_secret, retryable,
)
from tagio.crypto.channel import SecureChannel
from tagio.crypto import kdf
from tagio.crypto.handshake import HostKeys, Kind, host_handshake, viewer_handshake_secret
from tagio.errors import (
    ConfigError, ConnectionClosed, LocalProtocolError, RelayError, RemoteProtocolError,
    SecureChannelError, TransportError, TransportTimeout, WrongPasswordError,
)
from tests.test_handshake import Background, stream_pair

VIEWER_ID, HOST_ID, OTHER_ID = "444555666", "111222333", "777888999"
KEYS = {"v2h": (b"\x01" * 32, b"\x0a" * 4), "h2v": (b"\x02" * 32, b"\x0b" * 4)}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def channel_pair(keys=KEYS):
    """(viewer side, host side) SecureChannels over no stream: only the exporter is used."""
    (vk, vp), (hk, hp) = keys["v2h"], keys["h2v"]
    viewer = SecureChannel(None, send_key=vk, send_prefix=vp, recv_key=hk, recv_prefix=hp, path="x")
    host = SecureChannel(None, send_key=hk, send_prefix=hp, recv_key=vk, recv_prefix=vp, path="x")
    return viewer, host


class ExporterTest(unittest.TestCase):
    LAYER = "unit"

    def test_both_ends_export_the_same_bytes_per_label(self):
        viewer, host = channel_pair()
        self.assertEqual(viewer.export(b"a"), host.export(b"a"))
        self.assertNotEqual(viewer.export(b"a"), viewer.export(b"b"))
        self.assertEqual(len(viewer.export(b"a", 16)), 16)

    def test_the_export_reveals_no_record_key(self):
        viewer, _ = channel_pair()
        exported = viewer.export(b"a", 64)
        for key, prefix in KEYS.values():
            self.assertNotIn(key, exported)

    def test_another_channel_exports_other_bytes(self):
        other = {"v2h": (b"\x03" * 32, b"\x0a" * 4), "h2v": (b"\x02" * 32, b"\x0b" * 4)}
        self.assertNotEqual(channel_pair()[0].export(b"a"), channel_pair(other)[0].export(b"a"))

    def test_bad_length_is_our_bug(self):
        with self.assertRaises(LocalProtocolError):
            channel_pair()[0].export(b"a", 0)


class ResumeSecretTest(unittest.TestCase):
    LAYER = "unit"

    def test_alike_on_both_ends_and_bound_to_both_ids(self):
        viewer, host = channel_pair()
        mine = resume_secret(viewer, VIEWER_ID, HOST_ID)
        self.assertEqual(mine, resume_secret(host, VIEWER_ID, HOST_ID))
        self.assertEqual(len(mine), 32)
        self.assertNotEqual(mine, resume_secret(viewer, OTHER_ID, HOST_ID))
        self.assertNotEqual(mine, resume_secret(viewer, VIEWER_ID, OTHER_ID))
        self.assertNotEqual(mine, resume_secret(viewer, HOST_ID, VIEWER_ID))

    def test_what_counts_as_a_broken_path(self):
        for exc in (ConnectionClosed("x"), TransportTimeout("x"), SecureChannelError("x")):
            self.assertTrue(lost_path(exc), exc)
        for exc in (None, RemoteProtocolError("x"), ConfigError("x"), ValueError("x"),
                    ConnectionClosed("the peer closed the secure channel")):
            self.assertFalse(lost_path(exc), exc)


class TicketsTest(unittest.TestCase):
    LAYER = "unit"

    def setUp(self):
        self.clock = FakeClock()
        self.allowed = True
        self.tickets = ResumeTickets(clock=self.clock, allowed=lambda: self.allowed)

    def lost_session(self, viewer_id=VIEWER_ID, secret=b"s" * 32):
        ticket = self.tickets.issue(viewer_id, secret, {"view_only": True}, session=object())
        self.tickets.ended(ticket, lost=True)
        return ticket

    def test_kept_for_60_s_after_the_path_broke_then_gone(self):
        self.lost_session()
        self.clock.now += RESUME_TTL - 0.01
        self.assertEqual(self.tickets.secret_for(VIEWER_ID), b"s" * 32)
        self.clock.now += 0.01
        self.assertIsNone(self.tickets.secret_for(VIEWER_ID))
        self.assertIsNone(self.tickets.take(VIEWER_ID, b"s" * 32))
        self.assertEqual(len(self.tickets), 0)

    def test_single_use_with_the_same_rights(self):
        self.lost_session()
        ticket = self.tickets.take(VIEWER_ID, b"s" * 32)
        self.assertEqual(ticket.options, {"view_only": True})
        self.assertIsNone(ticket.session)
        self.assertIsNone(self.tickets.take(VIEWER_ID, b"s" * 32))
        self.assertIsNone(self.tickets.secret_for(VIEWER_ID))

    def test_bound_to_the_viewer_id(self):
        self.lost_session()
        self.assertIsNone(self.tickets.secret_for(OTHER_ID))
        self.assertIsNone(self.tickets.take(OTHER_ID, b"s" * 32))
        self.assertIsNone(self.tickets.take(VIEWER_ID, b"t" * 32))
        self.assertIsNotNone(self.tickets.take(VIEWER_ID, b"s" * 32))

    def test_a_session_that_ended_with_a_goodbye_leaves_no_ticket(self):
        ticket = self.tickets.issue(VIEWER_ID, b"s" * 32, {})
        self.tickets.ended(ticket, lost=False)
        self.assertIsNone(self.tickets.secret_for(VIEWER_ID))

    def test_a_live_session_can_be_taken_over_by_its_viewer(self):
        session = object()
        self.tickets.issue(VIEWER_ID, b"s" * 32, {}, session=session)
        self.clock.now += 10 * RESUME_TTL           # no expiry while it runs
        self.assertIs(self.tickets.take(VIEWER_ID, b"s" * 32).session, session)

    def test_disconnect_and_the_setting_refuse(self):
        self.lost_session()
        self.tickets.refuse_all()
        self.assertIsNone(self.tickets.secret_for(VIEWER_ID))
        self.lost_session()
        self.allowed = False
        self.assertIsNone(self.tickets.secret_for(VIEWER_ID))
        self.allowed = True
        self.assertIsNone(self.tickets.secret_for(VIEWER_ID))    # dropped, not just hidden
        self.allowed = False
        self.lost_session()
        self.allowed = True
        self.assertIsNone(self.tickets.secret_for(VIEWER_ID))    # never kept while off

    def test_an_old_sessions_end_does_not_touch_the_newer_ticket(self):
        old = self.tickets.issue(VIEWER_ID, b"s" * 32, {})
        self.tickets.take(VIEWER_ID, b"s" * 32)
        self.tickets.issue(VIEWER_ID, b"n" * 32, {})
        self.tickets.ended(old, lost=True)
        self.assertEqual(self.tickets.secret_for(VIEWER_ID), b"n" * 32)

    def test_bounded(self):
        for index in range(100):
            self.lost_session(viewer_id=f"{index:09d}")
        self.assertLessEqual(len(self.tickets), 16)
        self.assertIsNotNone(self.tickets.secret_for(f"{99:09d}"))


class ReconnectLoopTest(unittest.TestCase):
    LAYER = "unit"

    def run_loop(self, outcomes, deadline=60.0):
        clock, stop, calls = FakeClock(), threading.Event(), []
        stop.wait = lambda seconds: clock.__setattr__("now", clock.now + seconds)  # no real waiting

        def attempt(timeout):
            calls.append((clock.now, timeout))
            outcome = outcomes.pop(0) if outcomes else TransportError("down")
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        start = clock.now
        try:
            return reconnect(attempt, stop=stop, deadline=start + deadline, clock=clock), calls
        except Exception as exc:
            return exc, calls

    def test_retries_path_and_relay_failures_with_short_backoff(self):
        result, calls = self.run_loop([RelayError("unreachable", "x"), RelayError("offline", "x"),
                                       TransportTimeout("x"), SecureChannelError("x"),
                                       RelayError("unknown_id", "x"), "conn"])
        self.assertEqual(result, "conn")
        gaps = [b[0] - a[0] for a, b in zip(calls, calls[1:])]
        self.assertEqual(gaps, [0.25, 0.5, 1.0, 1.0, 1.0])  # never more than 1 s between tries

    def test_a_refusal_ends_it_at_once(self):
        for refusal in (WrongPasswordError("x"), RelayError("identity", "x"), ConfigError("x"),
                        PartnerRefused("declined")):
            result, calls = self.run_loop([refusal])
            self.assertIs(result, refusal)
            self.assertEqual(len(calls), 1)

    def test_gives_up_after_the_deadline(self):
        result, calls = self.run_loop([], deadline=RESUME_TTL)
        self.assertIsInstance(result, TransportError)
        self.assertLessEqual(calls[-1][0] - calls[0][0], RESUME_TTL)
        self.assertGreater(len(calls), 50)

    def test_busy_is_worth_another_try(self):
        self.assertTrue(retryable(PartnerRefused("busy")))
        self.assertFalse(retryable(PartnerRefused("rate_limited")))


class ResumeHandshakeTest(unittest.TestCase):
    """The resumption secret through the real PAKE, as the handshake's "resume" kind: it opens a
    channel next to the host's passwords and is reported as the one that matched; without a ticket,
    or with a wrong secret, it is one wrong guess, counted as any other."""

    def handshake(self, viewer_secret, host_keys, kind=Kind.ONE_TIME, viewer_id=VIEWER_ID,
                  host_id=HOST_ID, guesses=None):
        """(viewer outcome, host outcome): a channel or the exception raised."""
        session_id = os.urandom(16)
        v_stream, h_stream = stream_pair()
        host = Background(host_handshake, h_stream, host_keys, viewer_id=viewer_id,
                          host_id=HOST_ID, session_id=session_id, timeout=5, guesses=guesses)
        try:
            viewer = viewer_handshake_secret(v_stream, viewer_secret, viewer_id=viewer_id,
                                             host_id=host_id, session_id=session_id, timeout=5,
                                             kind=kind)
        except Exception as exc:
            viewer = exc
        try:
            return viewer, host.result()
        except Exception as exc:
            return viewer, exc

    def finished_session_secret(self):
        viewer, host = self.handshake(b"p" * 32, [b"p" * 32])
        self.addCleanup(viewer.close)
        self.addCleanup(host.close)
        secret = resume_secret(viewer, VIEWER_ID, HOST_ID)
        self.assertEqual(secret, resume_secret(host, VIEWER_ID, HOST_ID))
        return secret

    def host_keys(self, resume=None):
        return HostKeys(b"otp" * 8, kdf.verifier_from_secret(b"perm" * 8), resume=resume)

    def test_the_secret_opens_a_channel_and_is_the_one_that_matched(self):
        secret = self.finished_session_secret()
        viewer, host = self.handshake(secret, self.host_keys(secret), Kind.RESUME)
        self.addCleanup(viewer.close)
        self.addCleanup(host.close)
        self.assertEqual((host.matched_secret, host.password_kind), (2, Kind.RESUME))
        self.assertNotEqual(resume_secret(viewer, VIEWER_ID, HOST_ID), secret)   # a new one each time

    def test_a_host_without_a_ticket_refuses_the_secret(self):
        secret = self.finished_session_secret()
        viewer, host = self.handshake(secret, self.host_keys(None), Kind.RESUME)
        self.assertIsInstance(viewer, WrongPasswordError)
        self.assertIsInstance(host, WrongPasswordError)

    def test_the_secret_opens_nothing_but_the_resume_kind(self):
        secret = self.finished_session_secret()
        for kind in (Kind.ONE_TIME, Kind.PERMANENT):
            with self.subTest(kind=kind):
                viewer, host = self.handshake(secret, self.host_keys(secret), kind)
                self.assertIsInstance(viewer, WrongPasswordError)
                self.assertIsInstance(host, WrongPasswordError)
        viewer, host = self.handshake(b"otp" * 8, self.host_keys(secret), Kind.RESUME)   # the OTP's
        self.assertIsInstance(viewer, WrongPasswordError)

    def test_a_wrong_secret_is_a_counted_guess(self):
        secret = self.finished_session_secret()
        guesses = RecordingGuesses()
        viewer, host = self.handshake(os.urandom(32), self.host_keys(secret), Kind.RESUME,
                                      guesses=guesses)
        self.assertIsInstance(host, WrongPasswordError)
        self.assertEqual(guesses.calls, [("start", False)])     # started, never taken back
        guesses = RecordingGuesses()
        viewer, host = self.handshake(secret, self.host_keys(secret), Kind.RESUME, guesses=guesses)
        self.addCleanup(viewer.close)
        self.addCleanup(host.close)
        self.assertEqual(guesses.calls, [("start", False), ("succeeded",)])


class RecordingGuesses:
    """The host handshake's `guesses` object, recording what it was told."""

    def __init__(self):
        self.calls = []

    def start(self, one_time=True):
        self.calls.append(("start", one_time))

    def succeeded(self):
        self.calls.append(("succeeded",))


if __name__ == "__main__":
    unittest.main()
