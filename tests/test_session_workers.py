"""Workers: the first error is kept and re-raised, everyone stops together, join() is bounded."""

import threading
import time
import unittest

from tagio.session.workers import Workers

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
