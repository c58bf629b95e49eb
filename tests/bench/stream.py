"""Stream benchmark: a real host session on a 1920x1080 Xvfb, streamed to a headless viewer.

    python -m tests.bench.stream [--seconds 10] [--scene small|full|both] [--fps 60] [--window]

Scenes (a program on the Xvfb display, driven by its own timer):
  small  a 200x100 region changes at 60 Hz (a moving bar and a counter), the rest is still (Tk)
  full   the whole screen changes at 60 Hz (cycling through photo-like full-screen pictures, copied
         from server-side pixmaps so the scene itself can keep up; see SCENE_FULL)

The host runs in its own process (HostSession, real mss capture) and the viewer in this one
(ViewerSession, decoding into its framebuffer), joined by a real SPAKE2 SecureChannel over
127.0.0.1 TCP. Both use CLOCK_MONOTONIC, which is system-wide on Linux, so capture-to-display
latency is the time from the host's capture to the moment this process has the decoded update in
hand (where a Tk window would draw it), or with --window the moment a real ViewerWindow on a
second Xvfb has copied it into its photo image. CPU is read from /proc for each process (Linux only).
Prints one JSON object per scene: frames_per_s counts frames the viewer session decoded and
acknowledged, shown_per_s the distinct frames that reached the display (a window that falls behind
skips frames: it draws the newest screen, not every one).
"""

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.xvfb import Xvfb, xvfb_available  # noqa: E402

PASSWORD = "bench-password"
HOST_ID, VIEWER_ID = "111111111", "222222222"
WIDTH, HEIGHT = 1920, 1080

SCENE = r"""
import sys, tkinter as tk
from PIL import Image, ImageChops, ImageDraw, ImageTk
mode, W, H = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = tk.Tk()
root.geometry(f"{W}x{H}+0+0")
root.overrideredirect(True)
canvas = tk.Canvas(root, width=W, height=H, highlightthickness=0, bg="#3a6ea5")
canvas.pack()
# A desktop-like still background: panels and text
for i in range(12):
    canvas.create_rectangle(40 + i * 150, 40, 170 + i * 150, 160, fill="#%02x%02x%02x" % (200 - i * 9, 210, 230))
    canvas.create_text(105 + i * 150, 100, text=f"Icon {i}", font=("Helvetica", 12))
canvas.create_text(W // 2, H - 60, text="TagIO stream benchmark", font=("Helvetica", 28), fill="white")
if mode == "small":
    bar = canvas.create_rectangle(800, 500, 1000, 600, fill="#202020", outline="")
    dot = canvas.create_rectangle(800, 540, 820, 560, fill="#ff8000", outline="")
    label = canvas.create_text(900, 520, text="0", fill="white", font=("Helvetica", 16))
    state = {"n": 0}
    def tick():
        n = state["n"] = state["n"] + 1
        x = 800 + (n * 3) % 180
        canvas.coords(dot, x, 540, x + 20, 560)
        canvas.itemconfigure(label, text=str(n))
        root.after(16, tick)
else:
    base = Image.merge("RGB", [Image.linear_gradient("L").resize((W, H)),
                               Image.radial_gradient("L").resize((W, H)),
                               Image.linear_gradient("L").rotate(90).resize((W, H))])
    frames = []
    for k in range(6):
        noise = Image.effect_noise((W, H), 24 + k * 4).convert("RGB")
        shifted = ImageChops.offset(base, k * 97, k * 53)
        img = Image.blend(shifted, noise, 0.25)
        ImageDraw.Draw(img).ellipse((200 + k * 180, 300, 600 + k * 180, 700), fill=(40 * k, 120, 200 - 30 * k))
        frames.append(ImageTk.PhotoImage(img))
    item = canvas.create_image(0, 0, anchor="nw", image=frames[0])
    state = {"n": 0}
    def tick():
        state["n"] += 1
        canvas.itemconfigure(item, image=frames[state["n"] % len(frames)])
        root.after(16, tick)
def report():
    sys.stdout.write(f"ticks {state['n']}\n"); sys.stdout.flush()
    root.after(250, report)
def ready():
    sys.stdout.write("ready\n"); sys.stdout.flush()
    tick()
    report()
root.after(200, ready)
root.mainloop()
"""


# The full-screen scene bypasses Tk: a Tk canvas redraws a 1080p picture through an off-screen
# pixmap, which made Xvfb itself the limit (~35-44 changes/s). Here the pictures are uploaded
# once as server-side pixmaps and each change is one server-side CopyArea on a fixed 60 Hz grid.
SCENE_FULL = r"""
import sys, time
from PIL import Image, ImageChops, ImageDraw
from Xlib import X, display as xdisplay
W, H, RATE = int(sys.argv[2]), int(sys.argv[3]), 60.0
conn = xdisplay.Display()
screen = conn.screen()
win = screen.root.create_window(0, 0, W, H, 0, screen.root_depth, override_redirect=True,
                                background_pixel=screen.black_pixel)
gc = win.create_gc()
base = Image.merge("RGB", [Image.linear_gradient("L").resize((W, H)),
                           Image.radial_gradient("L").resize((W, H)),
                           Image.linear_gradient("L").rotate(90).resize((W, H))])
step = max(1, ((conn.display.info.max_request_length << 2) - 64) // (W * 4))    # rows per PutImage request
pixmaps = []
for k in range(6):
    noise = Image.effect_noise((W, H), 24 + k * 4).convert("RGB")
    img = Image.blend(ImageChops.offset(base, k * 97, k * 53), noise, 0.25)
    ImageDraw.Draw(img).ellipse((200 + k * 180, 300, 600 + k * 180, 700), fill=(40 * k, 120, 200 - 30 * k))
    pm = win.create_pixmap(W, H, screen.root_depth)
    data = img.tobytes("raw", "BGRX")
    for y in range(0, H, step):
        h = min(step, H - y)
        pm.put_image(gc, 0, y, W, h, X.ZPixmap, screen.root_depth, 0, data[y * W * 4:(y + h) * W * 4])
    pixmaps.append(pm)
win.map()
win.copy_area(gc, pixmaps[0], 0, 0, W, H, 0, 0)
conn.sync()
sys.stdout.write("ready\n"); sys.stdout.flush()
n, start, reported = 0, time.monotonic(), 0.0
while True:
    due = start + (n + 1) / RATE
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    elif now - due > 1.0 / RATE:
        start, n = now - (n + 1) / RATE, n      # fell a whole frame behind: no burst to catch up
    n += 1
    win.copy_area(gc, pixmaps[n % len(pixmaps)], 0, 0, W, H, 0, 0)
    conn.sync()         # one change at a time: the next starts once the server has drawn this one
    if time.monotonic() - reported > 0.25:
        reported = time.monotonic()
        sys.stdout.write(f"ticks {n}\n"); sys.stdout.flush()
"""


def cpu_seconds(pid):
    """utime + stime of a process in seconds (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- host child process -------------------------------------------------------------------------
def host_child(port, fps):
    from tagio.crypto import handshake, kdf
    from tagio.net.stream import SocketStream
    from tagio.session.host import HostSession
    sock = socket.create_connection(("127.0.0.1", port))
    session_id = sock.recv(16, socket.MSG_WAITALL)
    channel = handshake.host_handshake(SocketStream(sock, "direct-tcp"), [kdf.password_secret(PASSWORD, HOST_ID)],
                                       viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id)
    host = HostSession(channel, fps_cap=fps, view_only=True)
    host.start()
    try:
        host.join()
    except Exception as exc:        # the viewer hanging up ends the run; anything else is reported
        if "closed" not in str(exc).lower():
            print(f"host: {exc}", file=sys.stderr)


# -- viewer / driver ----------------------------------------------------------------------------
def connect_viewer(fps, env):
    from tagio.crypto import handshake
    from tagio.net.stream import SocketStream
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    host = subprocess.Popen([sys.executable, "-m", "tests.bench.stream", "--host-child", str(port),
                             "--fps", str(fps)], env=env, cwd=ROOT)
    listener.settimeout(30)
    sock, _ = listener.accept()
    listener.close()
    session_id = os.urandom(16)
    sock.sendall(session_id)
    channel = handshake.viewer_handshake(SocketStream(sock, "direct-tcp"), PASSWORD, viewer_id=VIEWER_ID,
                                         host_id=HOST_ID, session_id=session_id)
    return host, channel


class SceneTicks:
    """Follows the scene's "ticks N" lines: how many changes it really made (Tk timers slip)."""

    def __init__(self, stream):
        self.count = 0
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            if line.startswith("ticks "):
                self.count = int(line.split()[1])


def shown(update):
    """(frame_id, capture_time, shown_at) of a Rects update taken off the viewer's queue now."""
    return update.frame_id, update.capture_time, time.monotonic()


class Headless:
    """Takes display updates straight off the queue (what a Tk window would draw)."""

    def __init__(self, viewer):
        self.viewer = viewer

    def pump(self):
        """[(frame_id, capture_time, shown_at)] for updates handled in about 0.1 s."""
        try:
            update = self.viewer.updates.get(timeout=0.1)
        except queue.Empty:
            return []
        return [shown(update)] if update.name == "rects" else []

    def close(self):
        pass


class Window:
    """A real ViewerWindow (Tk) on its own Xvfb; a frame counts as shown once copied into the photo."""

    def __init__(self, viewer, display):
        import tkinter as tk
        from tagio.ui.viewer_window import ViewerWindow
        shown = self.shown = []

        def timed_rects(window, frame_id, pieces, capture_time):
            ViewerWindow._on_rects(window, frame_id, pieces, capture_time)
            shown.append((frame_id, capture_time, time.monotonic()))

        self.root = tk.Tk(screenName=display)
        self.root.withdraw()
        self.window = ViewerWindow(self.root, viewer, "bench", fit=False)
        self.window._UPDATES = dict(ViewerWindow._UPDATES, rects=timed_rects)    # instrument drawing
        self.window.geometry(f"{WIDTH}x{HEIGHT}+0+0")

    def pump(self):
        self.root.update()
        time.sleep(0.002)
        out, self.shown[:] = list(self.shown), []
        return out

    def close(self):
        self.window.close()
        self.root.destroy()


def measure(viewer, display, seconds, host_pid, scene_pid, ticks):
    """Pump the display for `seconds`; return figures for that window."""
    latencies, seen = [], set()
    ticks0 = ticks.count
    frames0, bytes0 = viewer.stats["frames"], viewer.stats["bytes"]
    cpu0 = (cpu_seconds(host_pid), os.times(), cpu_seconds(scene_pid))
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for frame_id, captured, shown_at in display.pump():
            if frame_id not in seen:
                seen.add(frame_id)
                latencies.append((shown_at - captured) * 1000)
    elapsed = time.monotonic() - start
    now = os.times()
    frames = viewer.stats["frames"] - frames0
    received = viewer.stats["bytes"] - bytes0
    return {
        "seconds": round(elapsed, 2),
        "frames": frames,
        "frames_per_s": round(frames / elapsed, 1),
        "shown_per_s": round(len(seen) / elapsed, 1),
        "scene_changes_per_s": round((ticks.count - ticks0) / elapsed, 1),
        "latency_ms_p50": round(percentile(latencies, 50) or 0, 1),
        "latency_ms_p95": round(percentile(latencies, 95) or 0, 1),
        "kb_per_frame": round(received / 1024 / max(frames, 1), 1),
        "host_cpu_pct": round(100 * (cpu_seconds(host_pid) - cpu0[0]) / elapsed, 1),
        "viewer_cpu_pct": round(100 * ((now.user + now.system) - (cpu0[1].user + cpu0[1].system)) / elapsed, 1),
        "scene_cpu_pct": round(100 * (cpu_seconds(scene_pid) - cpu0[2]) / elapsed, 1),
    }


def run_scene(mode, seconds, fps, window_display=None, warmup=2.0):
    from tagio.session.viewer import ViewerSession
    with Xvfb(width=WIDTH, height=HEIGHT) as xvfb:
        env = xvfb.env()
        script = SCENE_FULL if mode == "full" else SCENE
        scene = subprocess.Popen([sys.executable, "-c", script, mode, str(WIDTH), str(HEIGHT)], env=env,
                                 stdout=subprocess.PIPE, text=True)
        try:
            if scene.stdout.readline().strip() != "ready":
                raise RuntimeError("scene did not start")
            ticks = SceneTicks(scene.stdout)
            host, channel = connect_viewer(fps, env)
            viewer = ViewerSession(channel, max_updates=256)
            display = Window(viewer, window_display) if window_display else Headless(viewer)
            viewer.start()
            try:
                measure(viewer, display, warmup, host.pid, scene.pid, ticks)
                result = measure(viewer, display, seconds, host.pid, scene.pid, ticks)
            finally:
                display.close()
                viewer.stop()
                host.wait(10)
            return {"scene": mode, "viewer": "tk-window" if window_display else "headless", "fps_cap": fps,
                    **result}
        finally:
            scene.kill()
            scene.wait(5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--scene", choices=("small", "full", "both"), default="both")
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--window", action="store_true",
                        help="show the stream in a real Tk ViewerWindow (on a second Xvfb)")
    parser.add_argument("--host-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host_child:
        host_child(args.host_child, args.fps)
        return 0
    if not xvfb_available() or not os.path.exists("/proc/self/stat"):
        print(json.dumps({"skipped": "needs Linux with Xvfb and xdotool"}))
        return 0
    # Tk keeps its X connection until the process ends, so the window's display must outlive it.
    window_x = Xvfb(width=WIDTH, height=HEIGHT).start() if args.window else None
    try:
        for mode in (("small", "full") if args.scene == "both" else (args.scene,)):
            result = run_scene(mode, args.seconds, args.fps, window_x and window_x.display)
            print(json.dumps(result), flush=True)
    finally:
        if window_x is not None:
            window_x.stop()
            os._exit(0)     # Tk must not touch the display it just lost; output is already flushed
    return 0


if __name__ == "__main__":
    sys.exit(main())
