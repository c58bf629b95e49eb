"""Worker-thread -> Tk-thread hand-over (tagio/ui/bridge.py), with real threads and no Tk."""

import threading
import time
import unittest

from tagio.ui import bridge
from tagio.ui.bridge import AcceptBridge, EventBridge

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class Policy:
    def __init__(self, ask_before_accept=True):
        self.ask_before_accept = ask_before_accept


class EventBridgeTest(unittest.TestCase):
    def test_events_cross_threads_in_order(self):
        events = EventBridge()
        worker = threading.Thread(target=lambda: [events.post("tick", n=i) for i in range(10)])
        worker.start()
        worker.join(5)
        drained = events.drain()
        self.assertEqual([fields["n"] for _name, fields in drained], list(range(10)))
        self.assertEqual(events.drain(), [])

    def test_drain_is_limited_per_poll(self):
        events = EventBridge()
        for i in range(bridge.DRAIN_LIMIT + 5):
            events.post("e", n=i)
        self.assertEqual(len(events.drain()), bridge.DRAIN_LIMIT)
        self.assertEqual(len(events.drain()), 5)

    def test_full_queue_drops_instead_of_blocking_forever(self):
        events = EventBridge(maxsize=2)
        self.assertTrue(events.post("a"))
        self.assertTrue(events.post("b"))
        started = time.monotonic()
        self.assertFalse(events.post("c"))
        self.assertLess(time.monotonic() - started, bridge.PUT_TIMEOUT + 1.0)
        self.assertEqual(events.dropped, 1)

    def test_closed_bridge_refuses(self):
        events = EventBridge()
        events.close()
        self.assertFalse(events.post("late"))
        self.assertEqual(events.drain(), [])


class AcceptBridgeTest(unittest.TestCase):
    def ask_in_thread(self, accepts, peer="123456789", **kw):
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("answer", accepts.ask(peer, **kw)))
        thread.start()
        return thread, result

    def wait_request(self, events, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, fields in events.drain():
                if name == "accept_request":
                    return fields["request"]
            time.sleep(0.01)
        self.fail("no accept_request posted")

    def test_answer_from_ui_thread_reaches_worker(self):
        for answer in (True, False):
            events = EventBridge()
            accepts = AcceptBridge(events, Policy(), timeout=10)
            thread, result = self.ask_in_thread(accepts)
            request = self.wait_request(events)
            self.assertEqual(request.peer_id, "123456789")
            request.resolve(answer)
            thread.join(5)
            self.assertEqual(result["answer"], answer)

    def test_no_answer_denies(self):
        events = EventBridge()
        accepts = AcceptBridge(events, Policy(), timeout=0.1)
        bridge_grace, bridge.ASK_GRACE_S = bridge.ASK_GRACE_S, 0.1
        try:
            started = time.monotonic()
            self.assertFalse(accepts.ask("123456789"))
            self.assertLess(time.monotonic() - started, 3)
        finally:
            bridge.ASK_GRACE_S = bridge_grace

    def test_close_denies_pending(self):
        events = EventBridge()
        accepts = AcceptBridge(events, Policy(), timeout=30)
        thread, result = self.ask_in_thread(accepts)
        self.wait_request(events)
        accepts.close()
        thread.join(5)
        self.assertFalse(thread.is_alive())
        self.assertFalse(result["answer"])

    def test_policy_accepts_without_prompt(self):
        events = EventBridge()
        self.assertTrue(AcceptBridge(events, Policy(ask_before_accept=False)).ask("123456789"))
        self.assertTrue(AcceptBridge(events, Policy()).ask("123456789", unattended=True))
        self.assertEqual(events.drain(), [])

    def test_closed_events_deny_at_once(self):
        events = EventBridge()
        events.close()
        self.assertFalse(AcceptBridge(events, Policy()).ask("123456789"))

    def test_resolve_is_once(self):
        request = bridge.AcceptRequest("123456789", 1)
        request.resolve(True)
        request.resolve(False)
        self.assertTrue(request.wait(0))


if __name__ == "__main__":
    unittest.main()
