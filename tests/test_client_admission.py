"""client/admission.py and client/refusal.py with an in-memory channel pair (no sockets): the
accept step on both sides, the hand-over of the watcher's last read, and the refusal bytes."""

import queue
import threading
import time
import unittest

from tagio.client import admission as adm
from tagio.client.refusal import (REFUSAL_MAGIC, PartnerRefused, RefusalAware, decode_refusal,
                                  encode_refusal, send_refusal)
from tagio.errors import ConnectionClosed, RemoteProtocolError, TagioError
from tagio.protocol import session as m
from tests.waiting import in_thread

LAYER = "unit"
_CLOSED = object()


class End:
    """One end of an in-memory channel: whole messages, close() ends the other side's recv()."""

    def __init__(self):
        self.inbox, self.peer, self.closed = queue.Queue(), None, False

    def send(self, data):
        if self.closed:
            raise ConnectionClosed("closed")
        self.peer.inbox.put(bytes(data))

    def recv(self):
        item = self.inbox.get(timeout=10)
        if item is _CLOSED:
            self.inbox.put(_CLOSED)
            raise ConnectionClosed("the peer closed the secure channel")
        return item

    def close(self):
        if not self.closed:
            self.closed = True
            self.peer.inbox.put(_CLOSED)
            self.inbox.put(_CLOSED)


def pair():
    a, b = End(), End()
    a.peer, b.peer = b, a
    return a, b


class HostAdmissionTest(unittest.TestCase):
    def setUp(self):
        self.host, self.viewer = pair()

    def run_viewer(self, **kwargs):
        return in_thread(self, lambda result: result.update(
            host_name=adm.await_admission(self.viewer, **kwargs), ok=True))

    def test_accepted_viewer_waits_then_gets_in_and_the_first_message_is_handed_over(self):
        waiting = threading.Event()
        thread, result = self.run_viewer(on_waiting=waiting.set)
        admission = adm.HostAdmission(self.host)
        # As hosting does: the names first. Without it the watcher may not have read the viewer's
        # Introduce before admit(), and it was handed over as the session's first message.
        self.assertEqual(admission.introduce(""), "")
        self.assertTrue(admission.ask(lambda peer, cancelled: waiting.wait(5), "123456789"))
        channel = admission.admit()
        thread.join(5)
        self.assertEqual(result, {"ok": True, "host_name": ""})
        self.viewer.send(m.encode(m.FrameAck(7)))       # the viewer's first session message
        self.assertEqual(m.decode(channel.recv()), m.FrameAck(7))
        self.viewer.send(m.encode(m.FrameAck(8)))
        self.assertEqual(m.decode(channel.recv()), m.FrameAck(8))

    def test_names_cross_before_the_question_and_reach_the_callback(self):
        thread, result = self.run_viewer(name="Bob's\x1b[2J desk")
        admission = adm.HostAdmission(self.host)
        self.assertEqual(admission.introduce("Anna\u202e"), "Bob's[2J desk")   # cleaned for display
        asked = {}

        def ask(peer, name, files):          # takes no `cancelled`: it is not given one
            asked.update(peer=peer, name=name, files=files)
            return "rights"
        self.assertEqual(admission.ask(ask, "123456789", name="Bob", files=True), "rights")
        self.assertEqual(asked, {"peer": "123456789", "name": "Bob", "files": True})
        admission.admit()
        thread.join(5)
        self.assertEqual(result, {"ok": True, "host_name": "Anna"})
        self.host.close()           # ends the watcher's last read

    def test_a_viewer_that_never_introduces_itself_loses_its_channel(self):
        admission = adm.HostAdmission(self.host)
        started = time.monotonic()
        with self.assertRaises(TagioError):
            admission.introduce("Anna", timeout=0.3)
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertEqual(m.decode(self.viewer.recv()), m.Introduce("Anna"))   # ours went out first

    def test_anything_but_an_introduce_first_is_the_viewers_fault(self):
        admission = adm.HostAdmission(self.host)
        self.viewer.send(m.encode(m.FrameAck(1)))
        with self.assertRaises(RemoteProtocolError):
            admission.introduce("")

    def test_deny_is_partner_refused_declined(self):
        thread, result = self.run_viewer()
        admission = adm.HostAdmission(self.host)
        self.assertFalse(admission.ask(lambda peer: False, "123456789"))
        self.host.send(m.encode(m.Bye(adm.DECLINED)))
        thread.join(5)
        self.assertIsInstance(result["error"], PartnerRefused)
        self.assertEqual(result["error"].code, "declined")

    def test_viewer_cancel_withdraws_the_question_at_once(self):
        cancel = threading.Event()
        thread, result = self.run_viewer(on_waiting=cancel.set, cancelled=cancel)
        admission = adm.HostAdmission(self.host)
        seen = {}

        def ask(peer, cancelled):
            seen["withdrawn"] = cancelled.wait(5)
            seen["at"] = time.monotonic()
            return True                      # a late Accept
        started = time.monotonic()
        self.assertFalse(admission.ask(ask, "123456789"))
        self.assertTrue(seen["withdrawn"])
        self.assertLess(seen["at"] - started, 2.0)
        thread.join(5)
        self.assertIsInstance(result["error"], adm.ConnectCancelled)

    def test_silent_host_while_asking_is_a_timeout(self):
        class Clock:
            now = 0.0

            def __call__(self):
                return Clock.now
        clock, waiting = Clock(), threading.Event()
        thread, result = self.run_viewer(clock=clock, on_waiting=waiting.set)
        self.host.send(m.encode(m.Admission(m.ADMISSION_PENDING)))
        self.assertTrue(waiting.wait(5))
        Clock.now = 11.0                     # the host said nothing for 11 s
        thread.join(5)
        self.assertIn("connection lost", str(result["error"]))

    def test_failing_callback_declines(self):
        self.run_viewer()
        admission = adm.HostAdmission(self.host)
        self.assertFalse(admission.ask(lambda peer: 1 / 0, "123456789"))
        self.host.close()

    def test_out_of_place_message_is_a_protocol_error(self):
        thread, result = self.run_viewer()
        self.host.send(m.encode(m.FrameAck(1)))
        thread.join(5)
        self.assertIsInstance(result["error"], RemoteProtocolError)


class FakeStream:
    def __init__(self, incoming):
        self.incoming, self.sent, self.closed = list(incoming), [], False

    def recv(self, max_bytes=65536):
        if not self.incoming:
            return b""
        data = self.incoming.pop(0)
        head, rest = data[:max_bytes], data[max_bytes:]
        if rest:
            self.incoming.insert(0, rest)
        return head

    def send(self, data):
        self.sent.append(bytes(data))

    def close(self):
        self.closed = True


class RefusalTest(unittest.TestCase):
    def test_round_trip_and_golden_bytes(self):
        self.assertEqual(encode_refusal("busy"), REFUSAL_MAGIC + b"\x01")
        for code in ("busy", "rate_limited", "declined"):
            self.assertEqual(decode_refusal(encode_refusal(code)), code)

    def test_bad_refusals_are_the_peers_fault(self):
        for data in (b"\x00junk", REFUSAL_MAGIC + b"\x09", REFUSAL_MAGIC):
            with self.assertRaises(RemoteProtocolError):
                decode_refusal(data)

    def test_refusal_aware_stream_raises_on_a_refusal_split_in_pieces(self):
        data = encode_refusal("rate_limited")
        stream = RefusalAware(FakeStream([data[:1], data[1:5], data[5:]]))
        with self.assertRaises(PartnerRefused) as ctx:
            stream.recv(3)
        self.assertEqual(ctx.exception.code, "rate_limited")

    def test_refusal_aware_stream_passes_a_handshake_reply_through(self):
        inner = FakeStream([b"\x02\x00\x05hello"])
        stream = RefusalAware(inner)
        self.assertEqual(stream.recv(3), b"\x02\x00\x05")
        self.assertEqual(stream.recv(5), b"hello")
        stream.close()
        self.assertTrue(inner.closed)                   # attributes pass through

    def test_host_reads_the_hello_then_answers_and_closes(self):
        stream = FakeStream([b"\x01\x00\x10" + bytes(16)])
        send_refusal(stream, "busy")
        self.assertEqual(stream.sent, [encode_refusal("busy")])
        self.assertEqual(stream.incoming, [])
        self.assertTrue(stream.closed)


if __name__ == "__main__":
    unittest.main()
