"""Relay worker threads and coalesced bindings-file writes (real relay on 127.0.0.1, real files)."""

import json
import os
import tempfile
import threading
import unittest
from pathlib import Path

from tagio.crypto.identity import Identity
from tagio.errors import RelayError
from tagio.net.relay_client import RelayClient
from tagio.relay.workers import Workers
from tests.relay_fixture import start_relay, wait_for
from tests.test_relay import FakeClock



class Background:
    """Run fn() in a daemon thread, keeping its result or exception."""

    def __init__(self, fn):
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except Exception as exc:
            self.error = exc


class WorkersTest(unittest.TestCase):
    def setUp(self):
        self.posted = []
        self.lock = threading.Lock()

    def post(self, fn):
        with self.lock:
            self.posted.append(fn)

    def run_posted(self):
        with self.lock:
            batch, self.posted = self.posted, []
        for fn in batch:
            fn()

    def test_results_come_back_through_post(self):
        workers = Workers(2, self.post)
        results = []
        for i in range(20):
            workers.submit(lambda i=i: i * i, results.append)
        workers.close()  # finishes queued jobs first
        self.assertEqual(results, [])  # nothing ran done() behind the loop's back
        self.run_posted()
        self.assertEqual(sorted(results), [i * i for i in range(20)])
        self.assertFalse(any(t.is_alive() for t in workers.threads))

    def test_a_worker_that_cannot_start_is_a_config_error_and_leaves_no_thread_behind(self):
        from concurrent.futures import ThreadPoolExecutor
        from tagio.errors import ConfigError
        real_submit, calls = ThreadPoolExecutor.submit, []

        def second_thread_fails(pool, fn, *args):
            calls.append(fn)
            if len(calls) == 2:
                raise RuntimeError("can't start new thread")
            return real_submit(pool, fn, *args)
        ThreadPoolExecutor.submit = second_thread_fails
        try:
            outcome = Background(lambda: Workers(2, self.post))
            outcome.thread.join(10)
            self.assertFalse(outcome.thread.is_alive(), "Workers() hung waiting for a worker that never started")
        finally:
            ThreadPoolExecutor.submit = real_submit
        self.assertIsInstance(outcome.error, ConfigError)
        self.assertTrue(wait_for(lambda: not any(t.name.startswith("tagio-relay-work") and t.is_alive()
                                                 for t in threading.enumerate())))

    def test_a_failing_job_reports_instead_of_killing_the_worker(self):
        workers = Workers(1, self.post)
        results = []
        workers.submit(lambda: 1 / 0, results.append, on_error=lambda exc: f"refused: {type(exc).__name__}")
        workers.submit(lambda: {}["x"], results.append)
        workers.submit(lambda: "still serving", results.append)
        workers.close()
        self.run_posted()
        self.assertEqual(results[0], "refused: ZeroDivisionError")
        self.assertIsInstance(results[1], KeyError)
        self.assertEqual(results[2], "still serving")

    def test_an_error_that_ends_a_worker_is_reraised_by_close(self):
        def broken_post(fn):
            raise RuntimeError("post is broken")
        workers = Workers(1, broken_post)
        with self.assertLogs("tagio.relay", "ERROR") as logs:
            workers.submit(lambda: 1, print)
            with self.assertRaisesRegex(RuntimeError, "post is broken"):
                workers.close()
        self.assertIn("relay worker job failed", logs.output[0])


class CoalescedStateTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.state = Path(self.tmp.name) / "relay-bindings.json"

    def register(self, relay, identity):
        client = RelayClient(relay.address, identity)
        client.connect()
        self.addCleanup(client.close)
        return client

    def count_saves(self, relay):
        bindings = relay.server.logic.registry.bindings
        saves, original = [], bindings.save

        def counting(snapshot=None):
            saves.append(len(snapshot) if snapshot is not None else None)
            return original(snapshot)
        bindings.save = counting
        return saves

    def tick(self, relay, clock):
        """Move the relay's clock one timer period on and wait until its loop has run that tick."""
        done = relay.server.ticks + 1
        clock.advance(1.0)
        self.assertTrue(wait_for(lambda: relay.server.ticks >= done), "the relay loop did not tick")

    def test_a_burst_of_new_ids_is_one_write_per_interval_and_survives_a_restart(self):
        idents = [Identity.generate() for _ in range(6)]
        clock = FakeClock()
        relay = start_relay(state_file=self.state, state_save_interval=3600.0, clock=clock)
        try:
            saves = self.count_saves(relay)
            self.register(relay, idents[0])
            self.tick(relay, clock)
            self.assertTrue(wait_for(lambda: self.state.exists()), "the first new ID is written at the next tick")
            for ident in idents[1:]:
                self.register(relay, ident)
            for _ in range(2):  # two more ticks: the interval has not passed, nothing is rewritten
                self.tick(relay, clock)
            self.assertEqual(saves, [1])
            on_disk = json.loads(self.state.read_text())["bindings"]
            self.assertEqual(list(on_disk), [idents[0].id])
        finally:
            relay.stop()
        self.assertEqual(saves[-1], 6)  # stop() writes what the timer had not yet
        self.assertEqual(os.listdir(self.tmp.name), [self.state.name])  # no temp file left behind
        saved = json.loads(self.state.read_text())["bindings"]
        self.assertEqual(saved, {i.id: i.public_key.hex() for i in idents})
        with start_relay(state_file=self.state) as again:
            viewer = self.register(again, Identity.generate())
            with self.assertRaises(RelayError) as ctx:
                viewer.request_peer(idents[-1].id, os.urandom(16))
            self.assertEqual(ctx.exception.code, "offline")  # known after the restart, not "unknown_id"

    def test_writes_resume_after_the_interval(self):
        relay = start_relay(state_file=self.state, state_save_interval=0.5)
        self.addCleanup(relay.stop)
        first, second = Identity.generate(), Identity.generate()
        self.register(relay, first)
        self.assertTrue(wait_for(lambda: self.state.exists()))
        self.register(relay, second)
        self.assertTrue(wait_for(lambda: second.id in json.loads(self.state.read_text())["bindings"]))

    def test_an_unwritable_state_file_is_logged_and_retried_not_fatal(self):
        blocker = Path(self.tmp.name) / "not-a-dir"
        blocker.write_text("x")
        relay = start_relay(state_file=blocker / "state.json", state_save_interval=0.2)
        with self.assertLogs("tagio.relay", "ERROR") as logs:
            self.register(relay, Identity.generate())
            self.assertTrue(wait_for(lambda: len(logs.records) >= 2, timeout=8))  # retried, still failing
            self.register(relay, Identity.generate())  # and still serving
            relay.stop()
        self.assertIn("cannot write relay state file", logs.output[0])
        self.assertFalse(relay.server._pool.threads[0].is_alive())


if __name__ == "__main__":
    unittest.main()
