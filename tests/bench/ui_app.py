"""Client window benchmark: start-up time, idle CPU and worker->Tk event latency of the real App.

    python -m tests.bench.ui_app [--seconds 5] [--events 200]

Runs tagio.ui.app.App with a real Client (relay: a closed port on 127.0.0.1, so nothing leaves
loopback) on a private Xvfb display and prints one JSON object:

  startup_ms          Tk root created -> home window mapped with the ID and password shown
  idle_cpu_percent    CPU of this process while the home window sits idle (poll + refresh)
  event_latency_ms    p50/p95/max from EventBridge.post() on a worker thread to the handler
                      running on the Tk thread (bounded by the after() poll interval)
  poll_ms             the poll interval those figures were measured with
"""

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.xvfb import Xvfb, xvfb_available  # noqa: E402


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pump(root, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        root.update()
        if predicate():
            return True
        time.sleep(0.002)
    raise RuntimeError("timed out")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(seconds, events):
    import tkinter as tk
    from tagio.client.core import Client
    from tagio.client.settings import Settings
    from tagio.crypto.identity import format_id
    from tagio.ui import app as app_module

    config = tempfile.mkdtemp(prefix="tagio-bench-ui-")
    try:
        settings = Settings.load(config)
        settings.relay = f"127.0.0.1:{closed_port()}"
        started = time.perf_counter()
        root = tk.Tk(className="TagIO")
        app = app_module.App(root, lambda **kw: Client(config, direct_bind=None, **kw), settings).start()
        pump(root, lambda: root.winfo_viewable() and app.home.id_var.get() == format_id(app.client.id))
        startup_ms = (time.perf_counter() - started) * 1000
        pump(root, lambda: "unreachable" in app.home.status_var.get())

        cpu0, wall0 = time.process_time(), time.monotonic()
        root.after(int(seconds * 1000), root.quit)         # idle in Tk's own main loop: only
        root.mainloop()                                    # the app's after() poll runs
        idle_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100

        latencies = []
        app_module.HANDLERS["bench_ping"] = lambda _app, sent: latencies.append(time.perf_counter() - sent)

        def worker():
            for _ in range(events):
                app.events.post("bench_ping", sent=time.perf_counter())
                time.sleep(0.013)                          # not in step with the poll interval
        thread = threading.Thread(target=worker)
        thread.start()
        pump(root, lambda: len(latencies) >= events, timeout=events * 0.1 + 10)
        thread.join()
        app.close()
        ms = [x * 1000 for x in latencies]
        return {"startup_ms": round(startup_ms, 1), "idle_cpu_percent": round(idle_cpu, 2),
                "event_latency_ms": {"p50": round(percentile(ms, 0.5), 1), "p95": round(percentile(ms, 0.95), 1),
                                     "max": round(max(ms), 1)},
                "events": len(ms), "poll_ms": app_module.POLL_MS}
    finally:
        shutil.rmtree(config, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="idle CPU measuring time")
    parser.add_argument("--events", type=int, default=200, help="events for the latency figure")
    args = parser.parse_args(argv)
    if not xvfb_available():
        print(json.dumps({"skipped": "needs Xvfb and xdotool"}))
        return 0
    with Xvfb(width=1024, height=768) as xvfb:
        os.environ["DISPLAY"] = xvfb.display
        print(json.dumps(measure(args.seconds, args.events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
