"""Workers: the first error is kept and re-raised, everyone stops together, join() is bounded."""

import queue
import threading
import time
import unittest

from tagio.session.workers import Workers
from tests.waiting import wait_until

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class WorkersTest(unittest.TestCase):
    def test_first_error_stops_the_group_and_is_reraised(self):
        seen = []
        workers = Workers("t", on_error=seen.append)
        workers.spawn("idle", lambda: workers.stopping.wait(10))
        workers.spawn("boom", lambda: (_ for _ in ()).throw(ValueError("first")))
        self.assertTrue(workers.stopping.wait(10))
        with self.assertRaises(ValueError) as ctx:
            workers.join(10)
        self.assertEqual(str(ctx.exception), "first")
        self.assertEqual([str(e) for e in seen], ["first"])
        self.assertFalse(workers.alive())

    def test_join_timeout_is_for_the_whole_group(self):
        release = threading.Event()
        self.addCleanup(release.set)
        workers = Workers("t")
        for n in range(4):
            workers.spawn(f"stuck{n}", lambda: release.wait(30))     # ignore `stopping`
        workers.stop()
        started = time.monotonic()
        workers.join(0.5)
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 1.5)       # per-thread timeouts would take 4 x 0.5 s
        self.assertTrue(workers.alive())
        release.set()
        workers.join(10)
        self.assertFalse(workers.alive())

    def test_a_thread_spawned_while_another_joins_is_joined_too(self):
        # The viewer spawns a "stalled" reporter from the Tk thread while a worker may be joining;
        # join() must neither trip over a thread not yet started nor return before it ends.
        workers, go, order = Workers("t"), threading.Event(), []

        def first():
            go.wait(10)
            workers.spawn("late", lambda: (time.sleep(0.05), order.append("late ended")))
        workers.spawn("first", first)
        joiner = threading.Thread(target=lambda: (workers.join(20), order.append("joined")))
        joiner.start()
        go.set()
        joiner.join(20)
        self.assertEqual(order, ["late ended", "joined"])

if __name__ == "__main__":
    unittest.main()


class IdleReaderTest(unittest.TestCase):
    """A thread waiting in get() on an empty queue looks at `stopping` only every IDLE_POLL
    seconds, yet stop() and fail() wake it at once."""
    LAYER = "unit"

    def blocked_reader(self, workers):
        q, got = queue.Queue(maxsize=2), []
        reader = threading.Thread(target=lambda: got.append(workers.get(q)), daemon=True)
        reader.start()
        wait_until(lambda: q in workers._waited, timeout=5)    # then it blocks in q.get
        return q, reader, got

    def test_stop_wakes_a_blocked_reader_at_once(self):
        from tagio.session.workers import IDLE_POLL, Workers
        for end in ("stop", "fail"):
            with self.subTest(end=end):
                workers = Workers("test")
                q, reader, got = self.blocked_reader(workers)
                started = time.monotonic()
                workers.stop() if end == "stop" else workers.fail(RuntimeError("boom"))
                reader.join(IDLE_POLL / 2)
                self.assertFalse(reader.is_alive(), "the reader slept through stop()")
                self.assertLess(time.monotonic() - started, IDLE_POLL / 2)
                self.assertEqual(got, [None])
                self.assertIsNone(workers.get(q), "the wake-up is never handed out as an item")

    def test_items_still_arrive_in_order(self):
        from tagio.session.workers import Workers
        workers = Workers("test")
        q, reader, got = self.blocked_reader(workers)
        q.put("first")
        reader.join(5)
        q.put("second")
        self.assertEqual(got + [workers.get(q)], ["first", "second"])
        workers.stop()
        self.assertIsNone(workers.get(q))
