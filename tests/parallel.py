"""Run the e2e layer's modules in several worker processes at once.

Theory of operation: most e2e tests wait (on a relay, a handshake, a window, a real minute of
guessing), so on a 2-core machine two or three modules running side by side finish in well under
the time they take one after another. The unit of work is a test module: its classes share
set-ups (an Xvfb, a relay) and its tests stay in order, exactly as in a serial run.

The parent starts `workers` copies of `python3 -m tests --worker PATTERN...`. Each worker reads a
module name on stdin, runs that module's e2e tests (discovered and filtered exactly as the parent
does), and answers with one JSON line on a private pipe: counts, per-test times, and the byte range
of its log file that this module wrote. A worker's stdout and stderr (file descriptors 1 and 2,
so subprocesses and faulthandler land there too) go to that log file, and the parent prints each
module's slice whole when it is done: the output reads as a serial run's, one module at a time.

Modules are handed out from one queue, heaviest first (MODULE_WEIGHTS: seconds measured in a full
run; a module missing from it counts as light), so a long module never starts last.
"""

import fcntl
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Seconds each heavy module took in a serial full run (only the order matters: heaviest first).
MODULE_WEIGHTS = {
    "tests.test_packaging": 130, "tests.test_e2e_flow": 95, "tests.test_ui_app": 75,
    "tests.test_guess_rate": 65, "tests.test_e2e": 55, "tests.test_e2e_clipboard": 55,
    "tests.test_e2e_files": 50, "tests.test_nat": 50, "tests.test_client_core": 50,
    "tests.test_e2e_reconnect": 40, "tests.test_fuzz": 30, "tests.test_e2e_keyboard": 25,
    "tests.test_ui_files_panel": 22, "tests.test_ui_session_window": 20, "tests.test_session_host": 18,
}


def worker_count() -> int:
    """TAGIO_TEST_WORKERS, else 3: on 2 cores the e2e layer mostly waits."""
    try:
        return max(1, int(os.environ.get("TAGIO_TEST_WORKERS", "3")))
    except ValueError:
        return 3


def module_of(test) -> str:
    return type(test).__module__


def modules_in_order(tests) -> list:
    names = list(dict.fromkeys(module_of(t) for t in tests))
    return sorted(names, key=lambda name: -MODULE_WEIGHTS.get(name, 0))


class Worker:
    """One `python3 -m tests --worker` process and the thread in the parent that feeds it."""

    def __init__(self, patterns):
        self.log = tempfile.TemporaryFile()
        # O_APPEND: the worker, its subprocesses and this reader share one file description, so
        # every write lands at the end whatever offset the others left.
        fcntl.fcntl(self.log.fileno(), fcntl.F_SETFL, fcntl.fcntl(self.log.fileno(), fcntl.F_GETFL)
                    | os.O_APPEND)
        read_fd, self._write_fd = os.pipe()
        self.answers = os.fdopen(read_fd, "r")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests", "--worker", str(self._write_fd), *patterns],
            cwd=str(ROOT), stdin=subprocess.PIPE, stdout=self.log, stderr=self.log, text=True,
            pass_fds=(self._write_fd,))
        os.close(self._write_fd)

    def run(self, module) -> dict:
        self.proc.stdin.write(module + "\n")
        self.proc.stdin.flush()
        line = self.answers.readline()
        if not line:
            return {"module": module, "ran": 1, "failed": 1, "skipped": 0, "durations": [],
                    "start": 0, "end": 0, "crashed": f"worker exited with {self.proc.wait()}"}
        return json.loads(line)

    def output(self, answer) -> str:
        self.log.seek(answer["start"])
        text = self.log.read(answer["end"] - answer["start"]).decode("utf-8", "replace")
        self.log.seek(0, os.SEEK_END)
        return text

    def close(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()
        self.answers.close()
        self.log.close()


def run_parallel(tests, patterns, workers):
    """Run `tests` (e2e) module by module in `workers` processes; returns (ran, failed, skipped,
    durations)."""
    todo = queue.Queue()
    for name in modules_in_order(tests):
        todo.put(name)
    totals = {"ran": 0, "failed": 0, "skipped": 0, "durations": []}
    lock = threading.Lock()

    def feed(worker):
        while True:
            try:
                name = todo.get_nowait()
            except queue.Empty:
                return
            answer = worker.run(name)
            with lock:
                sys.stdout.write(worker.output(answer))
                if "crashed" in answer:
                    print(f"ERROR: {name}: {answer['crashed']}")
                print(f"--- {name}: {answer['ran']} tests, {answer['failed']} failed, "
                      f"{answer.get('seconds', 0)}s", flush=True)
                for key in ("ran", "failed", "skipped"):
                    totals[key] += answer[key]
                totals["durations"].extend(tuple(d) for d in answer["durations"])
            if "crashed" in answer:
                return

    pool = [Worker(patterns) for _ in range(min(workers, todo.qsize()) or 1)]
    threads = [threading.Thread(target=feed, args=(w,), daemon=True) for w in pool]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in pool:
        worker.close()
    while not todo.empty():         # every worker crashed: what is left did not run, and says so
        name = todo.get_nowait()
        print(f"ERROR: {name}: not run, no worker left", flush=True)
        totals["ran"] += 1
        totals["failed"] += 1
    return totals["ran"], totals["failed"], totals["skipped"], totals["durations"]


def serve(answer_fd, tests, result_class):
    """The worker's loop: a module name per line on stdin, one JSON answer per module."""
    by_module = {}
    for test in tests:
        by_module.setdefault(module_of(test), []).append(test)
    with os.fdopen(answer_fd, "w") as answers:
        for line in sys.stdin:
            name = line.strip()
            sys.stdout.flush()
            start, began = os.lseek(1, 0, os.SEEK_END), time.monotonic()
            runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=result_class)
            result = runner.run(unittest.TestSuite(by_module.get(name, [])))
            sys.stdout.flush()
            sys.stderr.flush()
            failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
            answers.write(json.dumps({
                "module": name, "ran": result.testsRun, "failed": failed,
                "skipped": len(result.skipped), "durations": result.durations,
                "start": start, "end": os.lseek(1, 0, os.SEEK_END),
                "seconds": round(time.monotonic() - began, 1)}) + "\n")
            answers.flush()
