"""X DAMAGE wake-up benchmark: how soon a capture waiting in DamageProbe.wait() wakes after drawing.
Prints figures.

Run: python -m tests.bench.damage_wake [--draws 50]   (needs Xvfb)

The host's capture thread waits for the X server's damage reports instead of polling, so a change
is picked up as soon as it is drawn. This draws a small rectangle through a second X connection
while a thread waits, and times from the moment the drawing request is sent (flushed) to wait()
returning, which includes the server's own work: the minimum, median and 95th percentile over the
draws. (The unit test of the same wake-up,
test_session_damage, only checks that it comes from the drawing and not from the timeout.)
"""

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.xvfb import Xvfb, xvfb_available  # noqa: E402


def one_wake(probe, painter, n):
    """Seconds from one drawing request to the waiting thread's wake-up (None: not reported).
    `painter` = (X connection, root window, graphics context)."""
    conn, root, gc = painter
    probe.collect()
    woke, waiting = [], threading.Event()

    def waiter():
        waiting.set()
        drawn = probe.wait(5.0)
        woke.append((drawn, time.monotonic()))

    thread = threading.Thread(target=waiter)
    thread.start()
    waiting.wait(5)
    time.sleep(0.002)       # let the waiter reach its select() (a benchmark, not a test)
    gc.change(foreground=0x333333 + n)
    root.fill_rectangle(gc, 600, 10 + n % 400, 4, 1)
    drawn_at = time.monotonic()
    conn.flush()
    thread.join(5)
    conn.sync()
    return woke[0][1] - drawn_at if woke and woke[0][0] else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=50)
    args = parser.parse_args()
    if not xvfb_available():
        sys.exit("Xvfb is not installed")
    from Xlib import display as xdisplay

    from tagio.session.damage import DamageProbe
    xvfb = Xvfb(width=640, height=480).start()
    try:
        probe = DamageProbe.open(xvfb.display)
        if probe is None:
            sys.exit("this X server has no DAMAGE extension")
        conn = xdisplay.Display(xvfb.display)
        try:
            root = conn.screen().root
            painter = (conn, root, root.create_gc(foreground=0))
            late = [one_wake(probe, painter, n) for n in range(args.draws)]
        finally:
            conn.close()
            probe.close()
    finally:
        xvfb.stop()
    seen = sorted(x * 1000 for x in late if x is not None)
    print(f"damage wake-up over {args.draws} draws ({args.draws - len(seen)} not reported): "
          f"min {seen[0]:.3f} ms, median {statistics.median(seen):.3f} ms, "
          f"p95 {seen[int(0.95 * (len(seen) - 1))]:.3f} ms")


if __name__ == "__main__":
    main()
