"""File-transfer benchmark through the real programs: printed, not asserted.

    python -m tests.bench.files [--big-mib 1024] [--small 10000] [--tmp DIR]

A relay (in this process), `tagio-gui.py --cli host --files-dir DIR` on a private Xvfb display and
`tagio-gui.py --cli send` / `get`, all over 127.0.0.1 with direct TCP (both ends bind 127.0.0.1).
Measured: one big file sent (viewer -> host) and fetched (host -> viewer), MB/s from the CLI's own
`transferred` line (session start to the receiver's verified summary); the frame rate a second
viewer (`connect`) gets of the small scene of tests/bench/stream (a 200x100 region changing at 60 Hz)
alone and while the big file is being sent (the screen must stay live: goal >= 30 fps, the host's
default cap); a folder of small 4 KiB files sent, files/s; the receiving process's peak RSS (VmHWM of the host from /proc while it runs, and
ru_maxrss of the `get` process). Files live on a tmpfs (/dev/shm when there is one) so the disk is
not what is measured. Goals (issue 13): >= 150 MB/s for 1 GiB, >= 1,000 files/s, bounded memory.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.relay_fixture import start_relay  # noqa: E402
from tests.xvfb import Xvfb, xvfb_available  # noqa: E402

GUI = os.path.join(ROOT, "tagio-gui.py")
PASSWORD = "bench-files-password"


def env_for(xvfb, display=True):
    env = xvfb.env()
    env.update(PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "TAGIO_PASSWORD"):
        env.pop(name, None)
    if not display:
        env.pop("DISPLAY", None)
    return env


def start_host(xvfb, relay, tmp, files_dir):
    argv = [sys.executable, GUI, "--cli", "host", "--json", "--relay", relay, "--config-dir",
            str(tmp / "host"), "--direct-bind", "127.0.0.1", "--password", PASSWORD,
            "--files-dir", str(files_dir)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env_for(xvfb), cwd=ROOT)
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "ready":
            return proc, event["id"]
    raise RuntimeError("the host did not start")


def run_cli(xvfb, relay, tmp, host_id, command, *args):
    """(the transferred line, the process's peak RSS in KiB)."""
    run_cli.count = getattr(run_cli, "count", 0) + 1
    argv = [sys.executable, GUI, "--cli", command, host_id, *args, "--password", PASSWORD, "--json",
            "--relay", relay, "--config-dir", str(tmp / f"viewer{run_cli.count}"),
            "--direct-bind", "127.0.0.1"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True,
                                env=env_for(xvfb, display=False), cwd=ROOT)
        _pid, status, usage = os.wait4(proc.pid, 0)     # reaped here: its own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = [json.loads(x) for x in out.read().splitlines() if x.startswith("{")]
        errors = err.read().strip()
    done = [e for e in lines if e.get("event") == "transferred"]
    connected = [e for e in lines if e.get("event") == "connected"]
    if proc.returncode != 0 or not done:
        raise RuntimeError(f"{command} failed ({proc.returncode}): {errors}")
    rss = usage.ru_maxrss
    return done[-1], connected[-1]["path"], rss


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def make_big(path, mib):
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for i in range(mib):
            fh.write(i.to_bytes(8, "big") + block[8:])


def make_small(folder, count, size=4096):
    folder.mkdir()
    for i in range(count):
        (folder / f"f{i:05}.bin").write_bytes(os.urandom(size))


def report(name, result, path, seconds_key="seconds", **extra):
    print(json.dumps({"bench": name, "path": path, "bytes": result["bytes"],
                      "files": result["verified"], "seconds": result[seconds_key], **extra}), flush=True)


def viewer_fps(xvfb, relay, tmp, host_id, seconds):
    run_cli.count = getattr(run_cli, "count", 0) + 1
    argv = [sys.executable, GUI, "--cli", "connect", host_id, "--duration", str(seconds), "--password",
            PASSWORD, "--json", "--relay", relay, "--config-dir", str(tmp / f"viewer{run_cli.count}"),
            "--direct-bind", "127.0.0.1"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env_for(xvfb, display=False), cwd=ROOT)


def closed_fps(proc):
    out, _ = proc.communicate(timeout=600)
    closed = [json.loads(x) for x in out.splitlines() if '"closed"' in x]
    return closed[-1]["fps"] if closed else None


def screen_during_transfer(xvfb, relay, tmp, host_id, big, seconds=6):
    from tests.bench.stream import SCENE
    scene = subprocess.Popen([sys.executable, "-c", SCENE, "small", "1280", "720"], env=env_for(xvfb),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        scene.stdout.readline()         # "ready"
        alone = closed_fps(viewer_fps(xvfb, relay, tmp, host_id, seconds))
        run_cli.count += 1
        argv = [sys.executable, GUI, "--cli", "send", host_id, str(big),
                "--password", PASSWORD, "--json", "--relay", relay, "--config-dir",
                str(tmp / f"viewer{run_cli.count}"), "--direct-bind", "127.0.0.1"]
        sender = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  env=env_for(xvfb, display=False), cwd=ROOT)
        for line in sender.stdout:
            if '"progress"' in line:     # data is flowing: measure the screen now
                break
        during = closed_fps(viewer_fps(xvfb, relay, tmp, host_id, seconds))
        out, _ = sender.communicate(timeout=600)
        done = [json.loads(x) for x in out.splitlines() if '"transferred"' in x]
        rate = round(done[-1]["bytes"] / done[-1]["seconds"] / 1e6, 1) if done else None
        print(json.dumps({"bench": "screen_during_transfer", "fps_alone": alone,
                          "fps_during_transfer": during, "transfer_mb_per_s": rate}), flush=True)
    finally:
        scene.terminate()
        scene.wait(10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--tmp", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    if not xvfb_available():
        print("no Xvfb: the host needs a display to share", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp_name, Xvfb(width=1280, height=720) as xvfb, \
            start_relay() as relay_handle:
        tmp = Path(tmp_name)
        relay = "%s:%d" % relay_handle.address
        src, shared, local = tmp / "src", tmp / "shared", tmp / "local"
        for d in (src, shared, local):
            d.mkdir()
        host, host_id = start_host(xvfb, relay, tmp, shared)
        try:
            bench(args, xvfb, relay, tmp, host, host_id, src, shared, local)
        finally:
            host.terminate()
            host.wait(30)


def bench(args, xvfb, relay, tmp, host, host_id, src, shared, local):
    big = src / "big.bin"
    make_big(big, args.big_mib)
    rss_before = peak_rss_kib(host.pid)
    result, path, _ = run_cli(xvfb, relay, tmp, host_id, "send", str(big))
    mbps = result["bytes"] / result["seconds"] / 1e6
    report("send_big", result, path, mb_per_s=round(mbps, 1),
           host_peak_rss_mib=round(peak_rss_kib(host.pid) / 1024, 1),
           host_peak_rss_before_mib=round(rss_before / 1024, 1))
    result, path, rss = run_cli(xvfb, relay, tmp, host_id, "get", "big.bin", "--to", str(local))
    report("get_big", result, path, mb_per_s=round(result["bytes"] / result["seconds"] / 1e6, 1),
           receiver_peak_rss_mib=round(rss / 1024, 1))
    (shared / "big.bin").unlink()           # else the send below finds it there and skips it
    screen_during_transfer(xvfb, relay, tmp, host_id, big)
    big.unlink()
    (shared / "big.bin").unlink()
    (local / "big.bin").unlink()
    make_small(src / "small", args.small)
    started = time.monotonic()
    result, path, _ = run_cli(xvfb, relay, tmp, host_id, "send", str(src / "small"))
    report("send_small", result, path, files_per_s=round(result["verified"] / result["seconds"]),
           wall_seconds=round(time.monotonic() - started, 2))


if __name__ == "__main__":
    sys.exit(main())
