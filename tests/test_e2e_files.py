"""End to end: files and chat through real processes.

A relay (in this process), `tagio-gui.py --cli host --files-dir DIR` on a private Xvfb display, and
`tagio-gui.py --cli send/get/connect` viewers, all over 127.0.0.1. Checked: a tree with nested and
empty folders, big and small files and Unicode names goes both ways with SHA-256 and modification
times kept; a sending viewer (send) and a receiving viewer (get) killed mid-transfer resume and move
only the rest (bytes counted); bad names and paths are refused with nothing written outside the
folder; a full disk and a read-only folder (a small tmpfs, when mounting is allowed) give a clear
error and no file under its final name; a host without --files-dir refuses, and so does a host
whose accept prompt left the files right out, each with a sentence on both sides; chat goes both
ways.
"""

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

from tests.relay_fixture import start_relay
from tests.test_e2e import GUI, ROOT, Proc
from tests.waiting import wait_until
from tests.xvfb import Xvfb, skip_unless_xvfb

PASSWORD = "files-e2e-permanent-1"
BIG = 6 * 1024 * 1024 + 12345


def tree_digest(root):
    """{relative path: (kind, sha256 or None, mtime_ns)} of everything under root."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        out[rel] = ("file" if path.is_file() else "dir", digest, path.stat().st_mtime_ns)
    return out


def make_tree(root):
    tree = Path(root) / "tree"
    (tree / "empty").mkdir(parents=True)
    (tree / "a" / "b" / "c").mkdir(parents=True)
    (tree / "a" / "b" / "c" / "ünïcødé ✓ 文件.txt").write_text("unicode ✓\n", encoding="utf-8")
    (tree / "a" / "big.bin").write_bytes(os.urandom(BIG))
    (tree / "zero").write_bytes(b"")
    for i in range(20):
        (tree / "a" / f"small{i:02}.txt").write_bytes(os.urandom(100 + i))
    for i, path in enumerate(sorted(tree.rglob("*"), reverse=True)):
        os.utime(path, ns=(1_600_000_000_123_456_789 + i, 1_600_000_000_123_456_789 + i * 1000))
    os.utime(tree, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    return tree


class FilesCase(unittest.TestCase):
    """A relay in this process and a CLI host with a files folder on a private Xvfb, for a class;
    `run_cli` starts a viewer command (send/get/connect) as a new process against it."""
    runs = 0

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.tmp = Path(cls._tmp.name)
        cls.xvfb = Xvfb(width=320, height=240).start()
        cls.relay = start_relay()
        cls.relay_text = "%s:%d" % cls.relay.address
        cls.shared = cls.tmp / "shared"
        cls.shared.mkdir()
        cls.host = cls.start_host("host", "--files-dir", str(cls.shared), "--chat-stdin")

    @classmethod
    def tearDownClass(cls):
        cls.host.stop()
        cls.relay.stop()
        cls.xvfb.stop()
        cls._tmp.cleanup()

    @classmethod
    def env(cls, display=True):
        env = cls.xvfb.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "TAGIO_PASSWORD"):
            env.pop(name, None)
        if not display:
            env.pop("DISPLAY")
        return env

    @classmethod
    def start_host(cls, name, *extra):
        argv = [sys.executable, GUI, "--cli", "host", "--json", "--relay", cls.relay_text,
                "--config-dir", str(cls.tmp / name), "--direct-bind", "127.0.0.1",
                "--password", PASSWORD, *extra]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=cls.env(), cwd=str(ROOT))
        host = _attach(proc)
        host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        return host

    def host_id(self, host=None):
        return (host or self.host).events("ready")[-1]["id"]

    def run_cli(self, command, *args, host=None, as_json=True):
        """Start a viewer-side command (send/get/connect) against the host, each as a new viewer
        (the host counts attempts per viewer: a real person does not connect ten times a minute)."""
        type(self).runs += 1
        name = f"viewer{self.runs}"
        argv = [sys.executable, GUI, "--cli", command, self.host_id(host), *args, "--password",
                PASSWORD, *(["--json"] if as_json else []), "--relay", self.relay_text, "--config-dir",
                str(self.tmp / name), "--direct-bind", "127.0.0.1"]
        proc = Proc(argv, self.env(display=False))
        self.addCleanup(proc.stop)
        return proc

    def finished(self, proc, status=0):
        rc = proc.finish(120)
        self.assertEqual(rc, status, f"{proc.lines}\n{proc.stderr}")
        self.assertNotIn("Traceback", proc.stderr)
        return proc.events("transferred")[-1] if proc.events("transferred") else None

    def assertNothingOutside(self):
        allowed = {"shared", "host", "local", "src", "outside", "killer", "host2", "small", "host3", "host4"}
        self.assertLessEqual({p.name for p in self.tmp.iterdir() if not p.name.startswith("viewer")},
                             allowed)
        self.assertEqual(list((self.tmp / "outside").iterdir()) if (self.tmp / "outside").exists()
                         else [], [])



@skip_unless_xvfb
class FilesEndToEnd(FilesCase):
    # ---------------------------------------------------------------- round trips

    def test_tree_both_ways(self):
        src = self.tmp / "src"
        tree = make_tree(src)
        sent = self.finished(self.run_cli("send", str(tree), "--to", "inbox"))
        self.assertTrue(sent["ok"])
        self.assertEqual(sent["verified"], 23)
        self.assertEqual(tree_digest(tree), tree_digest(self.shared / "inbox" / "tree"))
        self.assertEqual(tree.stat().st_mtime_ns, (self.shared / "inbox" / "tree").stat().st_mtime_ns)
        received = self.host.wait_for(lambda e: e.get("event") == "transfer" and e["direction"] == "receive",
                                      what="the host's transfer line")
        self.assertTrue(received["ok"])

        local = self.tmp / "local" / "both-ways"
        local.mkdir(parents=True)
        got = self.finished(self.run_cli("get", "inbox/tree", "--to", str(local)))
        self.assertEqual((got["ok"], got["verified"]), (True, 23))
        self.assertEqual(tree_digest(tree), tree_digest(local / "tree"))
        self.assertEqual(list(local.rglob("*.tagio-part")) + list(self.shared.rglob("*.tagio-part")), [])

        again = self.finished(self.run_cli("send", str(tree), "--to", "inbox"))
        self.assertEqual((again["bytes"], again["skipped"]), (0, 23))     # all there: nothing resent
        self.assertNothingOutside()

    def test_resume_after_the_sender_was_killed(self):
        killer = self.tmp / "killer"
        killer.mkdir(exist_ok=True)
        big = killer / "huge.bin"
        size = 400 * 1024 * 1024
        with open(big, "wb") as fh:
            block = os.urandom(1 << 20)
            for i in range(size >> 20):
                fh.write(block[:8] + i.to_bytes(8, "big") + block[16:])
        sender = self.run_cli("send", str(big), "--to", "resume")
        sender.wait_for(lambda e: e.get("event") == "progress" and e["bytes"] >= 16 << 20, timeout=60,
                        what="16 MiB on the way")
        ended = len(self.host.events("session_ended"))
        sender.popen.send_signal(signal.SIGKILL)
        sender.finish(30)
        part = self.shared / "resume" / "huge.bin.tagio-part"
        self.host.wait_for(lambda e: len(self.host.events("session_ended")) > ended,
                           what="the host saw the session end")
        have = part.stat().st_size
        self.assertGreater(have, 0)
        self.assertLess(have, size)
        self.assertFalse((self.shared / "resume" / "huge.bin").exists())

        second = self.finished(self.run_cli("send", str(big), "--to", "resume"))
        self.assertTrue(second["ok"])
        self.assertEqual(second["bytes"], size - have)         # only the rest went over
        with open(big, "rb") as a, open(self.shared / "resume" / "huge.bin", "rb") as b:
            self.assertEqual(hashlib.file_digest(a, "sha256").digest(),
                             hashlib.file_digest(b, "sha256").digest())
        self.assertFalse(part.exists())
        print(f"\n  resume: first run left {have} bytes, second sent {second['bytes']} of {size}",
              file=sys.stderr)
        big.unlink()
        (self.shared / "resume" / "huge.bin").unlink()

    def test_get_resumes_after_the_viewer_was_killed(self):
        size = 300 * 1024 * 1024
        with open(self.shared / "served.bin", "wb") as fh:
            block = os.urandom(1 << 20)
            for i in range(size >> 20):
                fh.write(i.to_bytes(8, "big") + block[8:])
        self.addCleanup((self.shared / "served.bin").unlink)
        local = self.tmp / "local" / "get-resume"
        local.mkdir(parents=True)
        getter = self.run_cli("get", "served.bin", "--to", str(local))
        getter.wait_for(lambda e: e.get("event") == "progress" and e["bytes"] >= 16 << 20, timeout=60,
                        what="16 MiB on the way")
        getter.popen.send_signal(signal.SIGKILL)
        getter.finish(30)
        have = (local / "served.bin.tagio-part").stat().st_size
        self.assertGreater(have, 0)
        self.assertFalse((local / "served.bin").exists())
        second = self.finished(self.run_cli("get", "served.bin", "--to", str(local)))
        self.assertEqual(second["bytes"], size - have)
        with open(self.shared / "served.bin", "rb") as a, open(local / "served.bin", "rb") as b:
            self.assertEqual(hashlib.file_digest(a, "sha256").digest(),
                             hashlib.file_digest(b, "sha256").digest())
        (local / "served.bin").unlink()

    # ---------------------------------------------------------------- refusals

    def test_bad_names_and_paths_refused(self):
        src = self.tmp / "src" / "bad"
        src.mkdir(parents=True)
        for name in ("CON", "nul.txt", "bell\x07", "dot.", "what?", "fine.txt"):
            (src / name).write_text(name)
        proc = self.run_cli("send", str(src))
        result = self.finished(proc, 1)
        self.assertEqual((result["verified"], result["refused"]), (1, 5))
        self.assertEqual(sorted(p.name for p in (self.shared / "bad").iterdir()), ["fine.txt"])
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertEqual(len(proc.events("file_refused")), 5)
        refused = self.host.wait_for(lambda e: e.get("event") == "file_refused" and "CON" in e["path"],
                                     what="the host's refusal line")
        self.assertIn("reserved", refused["reason"])

        outside = self.tmp / "outside"
        outside.mkdir(exist_ok=True)
        proc = self.run_cli("send", str(src / "fine.txt"), "--to", "../outside")
        self.finished(proc, 1)
        self.assertIn("leave the folder", proc.stderr)
        local = self.tmp / "local"
        local.mkdir(exist_ok=True)
        for path in ("../host/settings.json", "/etc/passwd", "nothing-here"):
            proc = self.run_cli("get", path, "--to", str(local))
            self.finished(proc, 1)
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertNothingOutside()

    def test_existing_file_needs_a_decision(self):
        src = self.tmp / "src" / "exists.txt"
        src.parent.mkdir(parents=True, exist_ok=True)
        (self.shared / "exists.txt").write_text("keep me")
        src.write_text("new content")
        proc = self.run_cli("send", str(src))
        self.finished(proc, 1)
        self.assertIn("already there", proc.stderr)
        self.assertEqual((self.shared / "exists.txt").read_text(), "keep me")
        self.assertEqual(proc.events("file_refused")[0]["path"], "exists.txt")
        text = self.run_cli("send", str(src), as_json=False)      # the line a person reads
        self.assertEqual(text.finish(120), 1, text.stderr)
        refused = [e["raw"] for e in text.lines if "already there" in e.get("raw", "")]
        self.assertEqual(len(refused), 1, text.lines)
        self.assertEqual(refused[0].count("exists.txt"), 1, refused[0])   # not "exists.txt: exists.txt: ..."
        self.finished(self.run_cli("send", str(src), "--existing", "keep-both"))
        self.assertEqual((self.shared / "exists (1).txt").read_text(), "new content")
        self.finished(self.run_cli("send", str(src), "--existing", "overwrite"))
        self.assertEqual((self.shared / "exists.txt").read_text(), "new content")

    def test_no_files_dir_means_refused(self):
        host = self.start_host("host2")
        self.addCleanup(host.stop)
        src = self.tmp / "src" / "x.txt"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text("x")
        proc = self.run_cli("send", str(src), host=host)
        self.finished(proc, 1)
        self.assertIn("does not accept files", proc.stderr)
        local = self.tmp / "local"
        local.mkdir(exist_ok=True)
        proc = self.run_cli("get", "x.txt", "--to", str(local), host=host)
        self.finished(proc, 1)
        self.assertIn("does not accept files", proc.stderr)
        host.wait_for(lambda e: len(host.events("file_refused")) == 2, what="the host's two refusals")
        said = host.events("file_refused")                 # the send's, then the get's
        self.assertEqual([e["path"] for e in said], ["x.txt", "x.txt"])
        self.assertTrue(all("does not allow files" in e["reason"] for e in said), said)

    def test_the_accept_prompt_decides_files(self):
        """A GUI-style host (a Client whose accept callback is the prompt) with files allowed in
        its settings: a partner let in without the files right is refused, one with it is not."""
        from tagio.client.core import Client
        from tagio.client.partners import Rights
        from tagio.client.settings import Settings
        folder = self.tmp / "shared" / "prompted"
        folder.mkdir()
        config = str(self.tmp / "host4")
        offered, events = [], []

        def prompt(peer_id, *, cancelled=None, name="", files=False):
            offered.append(files)
            return Rights(control=True, clipboard=True, files=len(offered) > 1)
        host = Client(config, relay=self.relay_text, direct_bind=("127.0.0.1", 0), accept_callback=prompt,
                      settings=Settings(config, allow_files=True, files_dir=str(folder)),
                      on_event=lambda name, **fields: events.append((name, fields)), display=self.xvfb.display)
        host.start()
        self.addCleanup(host.close)
        host.wait_online(20)
        src = self.tmp / "src" / "prompted.txt"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text("asked first")
        used = None
        for expected in (1, 0):
            FilesEndToEnd.runs += 1
            # the one-time password is used up once its session ended: wait for the next one
            wait_until(lambda: host.one_time_password != used, 20, "a new one-time password")
            used = host.one_time_password
            proc = Proc([sys.executable, GUI, "--cli", "send", host.id, str(src), "--password",
                         used, "--json", "--relay", self.relay_text, "--config-dir",
                         str(self.tmp / f"viewer{self.runs}"), "--direct-bind", "127.0.0.1"],
                        self.env(display=False))
            self.addCleanup(proc.stop)
            self.finished(proc, expected)
            if expected:
                self.assertIn("does not accept files", proc.stderr)
                self.assertEqual(list(folder.iterdir()), [])
                refused = [f for n, f in events if n == "host_file_refused"]
                self.assertIn("does not allow files", refused[0]["reason"])
        self.assertEqual(offered, [True, True])          # the prompt offered the files right both times
        self.assertEqual((folder / "prompted.txt").read_text(), "asked first")

    def test_full_disk_and_read_only_folder(self):
        small = self.tmp / "small"
        small.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", str(small)], capture_output=True)
        host = self.start_host("host3", "--files-dir", str(small))
        self.addCleanup(host.stop)
        src = self.tmp / "src" / "full"
        src.mkdir(parents=True, exist_ok=True)
        (src / "three-mb.bin").write_bytes(os.urandom(3 << 20))
        proc = self.run_cli("send", str(src / "three-mb.bin"), host=host)
        self.finished(proc, 1)
        self.assertIn("not enough space", proc.stderr)
        self.assertEqual(list(small.iterdir()), [])

        (src / "one-mb.bin").write_bytes(os.urandom(1 << 20))
        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
        proc = self.run_cli("send", str(src / "one-mb.bin"), "--to", "", host=host)
        self.finished(proc, 1)
        self.assertIn("read-only", proc.stderr)

    # ---------------------------------------------------------------- chat

    def test_chat_both_ways(self):
        viewer = self.run_cli("connect", "--chat", "hello host ✓", "--duration", "60")
        try:
            said = self.host.wait_for(lambda e: e.get("event") == "chat", what="the viewer's chat line")
        except AssertionError:
            viewer.stop()
            print("VIEWER", viewer.lines, viewer.stderr)
            raise
        self.assertEqual(said["message"], "hello host ✓")
        self.host.popen.stdin.write("hello viewer ✓\n")
        self.host.popen.stdin.flush()
        heard = viewer.wait_for(lambda e: e.get("event") == "chat", what="the host's chat line")
        self.assertEqual(heard["message"], "hello viewer ✓")
        viewer.popen.send_signal(signal.SIGINT)
        self.assertEqual(viewer.finish(), 0, viewer.stderr)


def _attach(popen):
    """A Proc around an already started Popen (the host's stdin stays open for chat lines)."""
    proc = Proc.__new__(Proc)
    proc.popen = popen
    proc.lines, proc.stderr = [], ""
    proc._cond = threading.Condition()
    proc._readers = [threading.Thread(target=proc._read_out, daemon=True),
                     threading.Thread(target=proc._read_err, daemon=True)]
    for reader in proc._readers:
        reader.start()
    return proc


if __name__ == "__main__":
    unittest.main()
