"""Windows cancel their pending after() callbacks when they are destroyed.

Tkinter runs an after() callback through a Tcl command named after the widget's method; destroying
the widget deletes that command but not the timer. When the timer fires later (in any Tk event loop
of the thread, e.g. the next test's window), Tcl reports `invalid command name "...clear_notice"`
on stderr. Each case runs in a real Tk process on Xvfb: it opens a window, leaves a callback pending,
destroys the window, then keeps a second Tk root's event loop running until a marker timer set
*after* the pending one has fired (Tcl fires timers in deadline order), and checks stderr.
"""

import os
import subprocess
import sys
import unittest

from tests.xvfb import shared_xvfb, skip_unless_xvfb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# argv[1] names the case; each one builds its window on `root` with a callback pending before
# `marker_ms`. The root is then destroyed and `other` runs until the marker has fired.
SCRIPT = r"""
import sys, time, tkinter as tk
from tagio.client.settings import Settings
from tagio.ui import app, home, prompts, theme

def home_with_notice(root):
    home.NOTICE_MS = 100            # long enough to be pending when the root is destroyed
    window = home.HomeWindow(root, theme.apply(root), callbacks={})
    window.pack()
    window.set_notice("a passing remark")
    return 300, root.destroy

def accept_prompt(root):
    theme.apply(root)
    prompts.AcceptPrompt(root, "123456789", on_answer=lambda accepted: None, timeout=60)
    return 1200, root.destroy       # the countdown ticks every second

class NoClient:                     # just enough core for the window to show an ID and close
    id, one_time_password, relay_status = "123456789", "secret-1", "offline"
    def close(self):
        pass

def copied_feedback(root):
    window = app.App(root, lambda **_kw: NoClient(), Settings())
    window.copy_id()
    return app.COPIED_FEEDBACK_MS + 200, lambda: window.close(raise_errors=False)

CASES = {"home_with_notice": home_with_notice, "accept_prompt": accept_prompt,
         "copied_feedback": copied_feedback}
root = tk.Tk()
marker_ms, close = CASES[sys.argv[1]](root)
root.update_idletasks()             # idle work (ttk's theme change) only: timers stay pending
root.tk.call("after", marker_ms, "set ::marker_fired 1")
close()
other = tk.Tk()
deadline = time.monotonic() + 20
while not root.tk.call("info", "exists", "::marker_fired"):
    if time.monotonic() > deadline:
        sys.exit("the marker timer never fired")
    other.update()
    time.sleep(0.005)
other.destroy()
print("done")
"""


@skip_unless_xvfb
class PendingAfterTest(unittest.TestCase):
    def run_case(self, case):
        env = dict(shared_xvfb().env(), PYTHONPATH=ROOT)
        proc = subprocess.run([sys.executable, "-c", SCRIPT, case], env=env, capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        self.assertEqual((proc.returncode, proc.stdout.strip()), (0, "done"), proc.stderr)
        return proc.stderr

    def test_home_window_cancels_its_notice_timer(self):
        self.assertEqual(self.run_case("home_with_notice"), "")     # no Tcl noise at all

    def test_accept_prompt_cancels_its_countdown(self):
        self.assertEqual(self.run_case("accept_prompt"), "")     # no Tcl noise at all

    def test_copied_feedback_is_cancelled_by_close(self):
        self.assertEqual(self.run_case("copied_feedback"), "")     # no Tcl noise at all


if __name__ == "__main__":
    unittest.main()
