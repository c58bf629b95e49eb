"""WAN streaming benchmark: every scene over every emulated link, one table.

    python3 -m tests.bench.wan [--seconds 8] [--scenes small,full,scroll,type,idle,video,office]
                               [--profiles loopback,lan,home,far,lossy] [--no-damage] [--fps 60]
                               [--office-seconds 60] [--full-scale]

Runtime: about (seconds + 6) x scenes x profiles, the office scene (office-seconds + 6) per profile;
the defaults (6 x 5 runs of 8 s, 5 office runs of 60 s) take ~12 minutes. Prints one JSON object per
run on stderr as it goes, then a Markdown table on stdout, then one line per run on whether a queue
stood on the link. The standing-queue check of issue 14 is a long run on the far link:

    python3 -m tests.bench.wan --seconds 30 --scenes full,scroll --profiles far

Set-up (as tests/bench/stream.py, whose scenes and helpers it reuses): each run starts a 1920x1080
Xvfb, a scene program on it, the host in a child process (HostSession, real mss capture, X DAMAGE
unless --no-damage: then the host polls the whole screen as it does on Windows and macOS) and the
viewer in this process (ViewerSession, headless: a frame counts as shown when its decoded rectangles
are taken off the viewer's update queue), joined by a real SPAKE2 SecureChannel over TCP. Except for
`loopback`, the TCP connection runs through tests/wanlink.py in its own process (so its CPU is not
counted as the viewer's): RTT/2 of delay each way, a token-bucket rate cap per direction, a 100 ms
bottleneck buffer, and loss modelled as one extra RTT for a lost segment (see that module).

Profiles: loopback (direct TCP), lan 20 ms / 100 Mbit/s, home 60 ms / 20 Mbit/s, far 150 ms /
5 Mbit/s, lossy 60 ms / 20 Mbit/s + 2% loss.

--full-scale turns the host's CPU-aware scaling off (tagio.session.scaled.SpeedChoice: a host that
cannot encode sustained full-screen motion in time sends large moving photos at half resolution),
so the full-resolution path is measured too.

Scenes:
  small   a 200x100 region changes at 60 Hz (stream.py's scene)
  full    the whole screen changes at 60 Hz between photo-like pictures (stream.py's SCENE_FULL)
  scroll  a full-screen Tk Text appends a line at 30 Hz and keeps the end in view (a terminal, a log)
  type    a Tk Text with focus; the viewer sends one key (Key press + release through the link), waits
          until a frame captured after it reaches the viewer, then the next key. Latency here is
          key -> visible on the viewer, not capture -> decoded.
  idle    a still desktop
  video   a 640x360 moving picture at 30 Hz inside a still desktop
  office  office work for a minute: a page of text in an editor; someone types a sentence (about 6
          characters a second), then scrolls the page with the wheel (3 notches of 3 lines), and again
          (the scene drives itself). The figure that matters is the average Mbit/s.

Columns: fps = distinct frames shown per second; p50/p95 = capture -> decoded on the viewer (ms; both
processes use CLOCK_MONOTONIC); spread = p95 - p50 (a queue standing on the link shows as a spread
above one RTT); drift = p50 of the run's last third minus p50 of its first third (a queue that
grows shows as a drift); KB/frame and Mbit/s = session bytes the viewer received (before encryption
overhead); host/viewer CPU = % of one core. The machine is shared: treat figures as +-10%.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.bench import stream  # noqa: E402
from tests.bench.stream import HEIGHT, HOST_ID, PASSWORD, VIEWER_ID, WIDTH, cpu_seconds, percentile  # noqa: E402
from tests.xvfb import Xvfb, xvfb_available  # noqa: E402

PROFILES = {                # name -> (rtt ms, Mbit/s per direction, loss); None = direct loopback TCP
    "loopback": None,
    "lan": (20, 100, 0.0),
    "home": (60, 20, 0.0),
    "far": (150, 5, 0.0),
    "lossy": (60, 20, 0.02),
}
SCENES = ("small", "full", "scroll", "type", "idle", "video", "office")
WARMUP = 2.0
OFFICE_SECONDS = 60.0       # the office scene's own length (issue 14: "1 minute")
KEY_TIMEOUT = 2.0           # seconds to wait for a typed key to show before the next one
KEY_GAP = 0.05              # pause after a key showed, so frames of one key do not count for the next

# Scenes other than `small` and `full`; the desktop background is the same as stream.py's.
SCENE_TK = r"""
import sys, tkinter as tk
from PIL import Image, ImageChops, ImageTk
mode, W, H = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = tk.Tk()
root.geometry(f"{W}x{H}+0+0")
root.overrideredirect(True)
canvas = tk.Canvas(root, width=W, height=H, highlightthickness=0, bg="#3a6ea5")
canvas.place(x=0, y=0)
for i in range(12):
    canvas.create_rectangle(40 + i * 150, 40, 170 + i * 150, 160, fill="#%02x%02x%02x" % (200 - i * 9, 210, 230))
    canvas.create_text(105 + i * 150, 100, text=f"Icon {i}", font=("Helvetica", 12))
canvas.create_text(W // 2, H - 60, text="TagIO WAN benchmark", font=("Helvetica", 28), fill="white")
state = {"n": 0}
WORDS = "the quick brown fox jumps over the lazy dog while a log scrolls past at thirty lines a second".split()
if mode == "scroll":
    text = tk.Text(root, font=("Courier", 11), bg="white", fg="black", insertofftime=0, wrap="none")
    text.place(x=0, y=0, width=W, height=H)
    def tick():
        n = state["n"] = state["n"] + 1
        line = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(8 + n % 9))
        text.insert("end", f"{n:06d} INFO  worker[{n % 7}] {line}\n")
        text.see("end")
        root.after(33, tick)
elif mode == "type":
    text = tk.Text(root, font=("Courier", 14), bg="white", fg="black", insertofftime=0)
    text.place(x=300, y=250, width=1200, height=500)
    def tick():
        text.focus_force()      # Tk focus inside the window; the bench gives the window X focus
elif mode == "video":
    base = Image.merge("RGB", [Image.linear_gradient("L").resize((640, 360)),
                               Image.radial_gradient("L").resize((640, 360)),
                               Image.linear_gradient("L").rotate(90).resize((640, 360))])
    noise = Image.effect_noise((640, 360), 30).convert("RGB")
    frames = [ImageTk.PhotoImage(Image.blend(ImageChops.offset(base, k * 21, k * 7), noise, 0.2))
              for k in range(30)]
    item = canvas.create_image(640, 300, anchor="nw", image=frames[0])
    def tick():
        n = state["n"] = state["n"] + 1
        canvas.itemconfigure(item, image=frames[n % len(frames)])
        root.after(33, tick)
elif mode == "office":
    page = "\n\n".join(" ".join(WORDS[(p * 7 + k) % len(WORDS)] for k in range(60 + p % 5)) for p in range(80))
    text = tk.Text(root, font=("Helvetica", 12), bg="white", fg="black", wrap="word", insertofftime=0,
                   padx=40, pady=30)
    text.place(x=240, y=60, width=1440, height=960)
    text.insert("1.0", page)
    text.mark_set("insert", "3.0")
    SENTENCE = "Typing a sentence into the page, then scrolling on. "
    def tick():             # one step every 160 ms: a character, or a wheel notch between sentences
        n = state["n"] = state["n"] + 1
        k = n % (len(SENTENCE) + 3)
        if k < len(SENTENCE):
            text.insert("insert", SENTENCE[k])
        else:
            text.yview_scroll(3, "units")
            text.mark_set("insert", "@60,300")
        root.after(160, tick)
else:   # idle
    def tick():
        pass
def report():
    sys.stdout.write(f"ticks {state['n']}\n"); sys.stdout.flush()
    root.after(250, report)
def ready():
    sys.stdout.write(f"ready {int(root.wm_frame(), 16)}\n"); sys.stdout.flush()
    tick()
    report()
root.after(300, ready)
root.mainloop()
"""


# -- host child process -------------------------------------------------------------------------
def host_child(port, fps, damage, accept_input, speed_scale=True):
    from tagio.crypto import handshake, kdf
    from tagio.net.stream import SocketStream
    from tagio.session import host as host_module
    from tagio.session import scaled
    if not damage:      # the polling path: what a host without damage reports (Windows, macOS) runs
        host_module.DamageProbe.open = staticmethod(lambda display=None: None)
    if not speed_scale:     # --full-scale: moving photos at full resolution however slow the host is
        scaled.SPEED_SHARE = float("inf")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session_id = sock.recv(16, socket.MSG_WAITALL)
    channel = handshake.host_handshake(SocketStream(sock, "direct-tcp"), [kdf.password_secret(PASSWORD, HOST_ID)],
                                       viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id)
    host = host_module.HostSession(channel, fps_cap=fps, view_only=not accept_input)
    host.start()
    try:
        host.join()
    except Exception as exc:        # the viewer hanging up ends the run; anything else is reported
        if "closed" not in str(exc).lower():
            print(f"host: {exc}", file=sys.stderr)
    if os.environ.get("TAGIO_BENCH_HOST_STATS"):
        print(f"host stats: {json.dumps(host.stats)}", file=sys.stderr)


# -- the link -----------------------------------------------------------------------------------
class Link:
    """tests/wanlink.py in a child process in front of `port` (or nothing for loopback)."""

    def __init__(self, profile, port, env):
        self.proc = None
        self.port = port
        if profile is None:
            return
        rtt, mbit, loss = profile
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.wanlink", "--target", f"127.0.0.1:{port}",
                                      "--rtt-ms", str(rtt), "--mbit", str(mbit), "--loss", str(loss)],
                                     cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if line[:1] != ["port"]:
            raise RuntimeError("the WAN link did not start")
        self.port = int(line[1])

    def cpu(self):
        return cpu_seconds(self.proc.pid) if self.proc else 0.0

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def connect_viewer(fps, env, profile, damage, accept_input, speed_scale=True):
    """Start the link and the host child; return (host process, link, viewer channel)."""
    from tagio.crypto import handshake
    from tagio.net.stream import SocketStream
    listener = socket.create_server(("127.0.0.1", 0))
    link = Link(profile, listener.getsockname()[1], env)
    args = [sys.executable, "-m", "tests.bench.wan", "--host-child", str(link.port), "--fps", str(fps)]
    args += ([] if damage else ["--no-damage"]) + (["--input"] if accept_input else [])
    args += [] if speed_scale else ["--full-scale"]
    host = subprocess.Popen(args, env=env, cwd=ROOT)
    listener.settimeout(30)
    sock, _ = listener.accept()
    listener.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session_id = os.urandom(16)
    sock.sendall(session_id)
    channel = handshake.viewer_handshake(SocketStream(sock, "direct-tcp"), PASSWORD, viewer_id=VIEWER_ID,
                                         host_id=HOST_ID, session_id=session_id)
    return host, link, channel


# -- measuring ----------------------------------------------------------------------------------
class Typist:
    """Drives the `type` scene: one key at a time, each timed from send to the first frame captured
    after it reaching the viewer."""

    LETTERS = "abcdefghijklmnopqrstuvwxyz"

    def __init__(self, viewer):
        self.viewer = viewer
        self.count = 0
        self.sent_at = None
        self.next_at = 0.0

    def step(self, updates, now):
        """Feed what the display got; returns key latencies (ms) completed by it."""
        done = []
        if self.sent_at is not None:
            if any(captured > self.sent_at for _f, captured, _s in updates):
                shown = min(s for _f, captured, s in updates if captured > self.sent_at)
                done.append((shown - self.sent_at) * 1000)
                self.sent_at, self.next_at = None, now + KEY_GAP
            elif now - self.sent_at > KEY_TIMEOUT:
                self.sent_at, self.next_at = None, now
        if self.sent_at is None and now >= self.next_at:
            key = self.LETTERS[self.count % len(self.LETTERS)]
            self.count += 1
            self.sent_at = time.monotonic()
            self.viewer.send_key(key, True)
            self.viewer.send_key(key, False)
        return done


def measure(viewer, display, seconds, pids, typist=None):
    """Pump the display for `seconds`; figures for that window."""
    latencies, keys, seen = [], [], set()
    frames0, bytes0 = viewer.stats["frames"], viewer.stats["bytes"]
    cpu0 = {name: cpu(pid) for name, (cpu, pid) in pids.items()}
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        updates = display.pump()
        for frame_id, captured, shown_at in updates:
            if frame_id not in seen:
                seen.add(frame_id)
                latencies.append((shown_at - captured) * 1000)
        if typist is not None:
            keys += typist.step(updates, time.monotonic())
    elapsed = time.monotonic() - start
    frames = viewer.stats["frames"] - frames0
    received = viewer.stats["bytes"] - bytes0
    timed = keys if typist is not None else latencies
    p50, p95 = percentile(timed, 50) or 0, percentile(timed, 95) or 0
    out = {
        "seconds": round(elapsed, 2),
        "fps": round(len(seen) / elapsed, 1),
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "spread_ms": round(p95 - p50, 1),
        "drift_ms": round(drift(timed), 1),
        "kb_per_frame": round(received / 1024 / max(frames, 1), 1),
        "mbit_s": round(received * 8 / elapsed / 1e6, 2),
    }
    for name, (cpu, pid) in pids.items():
        out[f"{name}_cpu"] = round(100 * (cpu(pid) - cpu0[name]) / elapsed, 1)
    if typist is not None:
        out["keys"] = len(keys)
    return out


def drift(values):
    """p50 of the last third of `values` (in time order) minus p50 of the first third: a queue that
    grows on the link during the run makes it positive."""
    third = len(values) // 3
    if third < 3:
        return 0.0
    return percentile(values[-third:], 50) - percentile(values[:third], 50)


def queue_verdict(result):
    """One line: is p95 - p50 within one RTT, and does p50 stay put (issue 14: no standing queue)?
    On short RTTs the spread is mostly the machine's own jitter, not a queue."""
    profile = PROFILES[result["profile"]]
    if profile is None:
        return None
    rtt = profile[0]
    within = result["spread_ms"] <= rtt and result["drift_ms"] <= rtt / 2
    return (f"{result['scene']} over {result['profile']} ({result['seconds']:g} s): p95 - p50 = "
            f"{result['spread_ms']:g} ms, drift {result['drift_ms']:g} ms, RTT {rtt} ms: "
            f"{'within one RTT' if within else 'ABOVE one RTT'}")


def own_cpu(_pid):
    t = os.times()
    return t.user + t.system


class Display:
    """Takes the viewer's display updates off its queue at once (what a Tk window would draw; a
    0.1 s wait only when the queue is empty), so key -> visible is timed to the millisecond."""

    def __init__(self, viewer):
        self.viewer = viewer

    def pump(self):
        """[(frame_id, capture_time, shown_at)] of the pixel updates taken."""
        import queue
        from tagio.session import events
        out, wait = [], 0.1
        while True:
            try:
                update = self.viewer.updates.get(timeout=wait) if wait else self.viewer.updates.get_nowait()
            except queue.Empty:
                return out
            wait = 0
            if isinstance(update, events.Rects):
                out.append((update.frame_id, update.capture_time, time.monotonic()))


def start_scene(mode, env):
    script = stream.SCENE_FULL if mode == "full" else stream.SCENE if mode == "small" else SCENE_TK
    scene = subprocess.Popen([sys.executable, "-c", script, mode, str(WIDTH), str(HEIGHT)], env=env,
                             stdout=subprocess.PIPE, text=True)
    ready = scene.stdout.readline().split()
    if ready[:1] != ["ready"]:
        scene.kill()
        raise RuntimeError(f"scene {mode} did not start")
    if mode == "type":      # no window manager on Xvfb: give the scene the X input focus ourselves
        subprocess.run(["xdotool", "windowfocus", "--sync", ready[1]], env=env, check=True, timeout=10)
    stream.SceneTicks(scene.stdout)     # keeps reading its output so the pipe never fills
    return scene


def run(mode, profile_name, seconds, fps, damage, speed_scale=True):
    from tagio.session.viewer import ViewerSession
    with Xvfb(width=WIDTH, height=HEIGHT) as xvfb:
        env = xvfb.env()
        scene = start_scene(mode, env)
        try:
            host, link, channel = connect_viewer(fps, env, PROFILES[profile_name], damage, mode == "type",
                                                 speed_scale)
            viewer = ViewerSession(channel, max_updates=256)
            display = Display(viewer)
            viewer.start()
            pids = {"host": (cpu_seconds, host.pid), "viewer": (own_cpu, None), "link": (lambda _p: link.cpu(), None)}
            try:
                measure(viewer, display, WARMUP, pids, Typist(viewer) if mode == "type" else None)
                result = measure(viewer, display, seconds, pids, Typist(viewer) if mode == "type" else None)
            finally:
                viewer.stop()
                host.wait(10)
                link.close()
            return {"scene": mode, "profile": profile_name, "damage": damage, **result}
        finally:
            scene.kill()
            scene.wait(5)


COLUMNS = (("scene", "scene"), ("profile", "profile"), ("fps", "fps"), ("p50_ms", "p50 ms"),
           ("p95_ms", "p95 ms"), ("spread_ms", "spread ms"), ("drift_ms", "drift ms"),
           ("kb_per_frame", "KB/frame"), ("mbit_s", "Mbit/s"),
           ("host_cpu", "host CPU %"), ("viewer_cpu", "viewer CPU %"))


def table(results):
    lines = ["| " + " | ".join(title for _k, title in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append("| " + " | ".join(str(r.get(k, "")) for k, _t in COLUMNS) + " |")
    return "\n".join(lines)


def _names(text, known, what):
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--office-seconds", type=float, default=OFFICE_SECONDS,
                        help="length of the office scene's runs")
    parser.add_argument("--scenes", default=",".join(SCENES))
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--no-damage", action="store_true", help="host polls the screen (no X DAMAGE)")
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--full-scale", action="store_true",
                        help="no CPU-aware scaling: moving photos at full resolution however slow the host")
    parser.add_argument("--host-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--input", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host_child:
        host_child(args.host_child, args.fps, not args.no_damage, args.input, not args.full_scale)
        return 0
    if not xvfb_available() or not os.path.exists("/proc/self/stat"):
        print(json.dumps({"skipped": "needs Linux with Xvfb and xdotool"}))
        return 0
    scenes = _names(args.scenes, SCENES, "scenes")
    profiles = _names(args.profiles, PROFILES, "profiles")
    started, results = time.monotonic(), []
    for mode in scenes:
        for profile in profiles:
            seconds = args.office_seconds if mode == "office" else args.seconds
            result = run(mode, profile, seconds, args.fps, not args.no_damage, not args.full_scale)
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    print(table(results))
    verdicts = [v for v in map(queue_verdict, results) if v]
    if verdicts:
        print("\n" + "\n".join(verdicts))
    print(f"\n{len(results)} runs in {time.monotonic() - started:.0f} s; damage "
          f"{'off (polling)' if args.no_damage else 'on'}; --seconds {args.seconds:g}"
          f"{'; --full-scale' if args.full_scale else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
