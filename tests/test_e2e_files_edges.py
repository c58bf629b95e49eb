"""End to end: the edges of file transfer through the real programs.

A relay in this process and `tagio-gui.py --cli host --files-dir DIR` on a private Xvfb (as in
test_e2e_files), viewers as `tagio-gui.py --cli send/get` processes, over 127.0.0.1. Checked:

- the progress line a person sees on a terminal (a pseudo-terminal here), and the exit statuses:
  3 for a wrong password, 130 for Ctrl+C under a transfer (the same command again resumes it), 5
  when the host stops under a transfer (--reconnect-for bounds the trying to come back);
- a disk that fills while a file is written (a small tmpfs filled behind the transfer's back while
  the sender is held with SIGSTOP): a clear error on both sides, the part deleted, no final name;
- a symlink in the host's folder that leads outside it (not written through, not read through),
  a tree deeper than allowed, names that differ only in case, a drive-letter name, more files and
  folders than one transfer may hold;
- a resume that finds a damaged block in the part it holds continues from that block (bytes
  counted) and the file's SHA-256 matches;
- a lying viewer (the real client whose sender is replaced in this process): listings of "..",
  an absolute path and a link out of the folder are refused; in an offer "..", absolute paths,
  drive letters, NUL, reserved names, too deep, case duplicates, more data than announced, less
  data than announced, a SHA-256 that does not match the data: each refused or failed with a
  sentence on both sides, and nothing written outside the folder or under a final name;
- chat lines from the CLI are bounded: a long one arrives whole in pieces, one over the bound is
  refused.
"""

import hashlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
import unittest
from unittest import mock

from tests.test_e2e import GUI
from tests.test_e2e_files import PASSWORD, FilesCase
from tests.waiting import wait_until
from tests.xvfb import skip_unless_xvfb

MIB = 1 << 20


def write_counting(path, mib):
    """A file of `mib` MiB whose every MiB differs (a resume that sent a wrong block would show)."""
    block = os.urandom(MIB)
    with open(path, "wb") as fh:
        for i in range(mib):
            fh.write(i.to_bytes(8, "big") + block[8:])


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def mount_tmpfs(test, folder, size):
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        test.skipTest(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    test.addCleanup(subprocess.run, ["umount", "-l", str(folder)], capture_output=True)


@skip_unless_xvfb
class FilesEdges(FilesCase):
    def viewer_argv(self, command, *args, host=None):
        type(self).runs += 1
        return [sys.executable, GUI, "--cli", command, self.host_id(host), *args, "--password", PASSWORD,
                "--relay", self.relay_text, "--config-dir", str(self.tmp / f"viewer{self.runs}"),
                "--direct-bind", "127.0.0.1"]

    # ---------------------------------------------------------------- what a person sees

    def test_progress_line_on_a_terminal(self):
        src = self.tmp / "src" / "tty.bin"
        src.parent.mkdir(parents=True, exist_ok=True)
        write_counting(src, 64)
        master, slave = pty.openpty()
        proc = subprocess.Popen(self.viewer_argv("send", str(src), "--to", "tty"), stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=slave, env=self.env(display=False))
        os.close(slave)
        self.addCleanup(os.close, master)
        out = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([master], [], [], 1.0)
            try:
                data = os.read(master, 65536) if ready else b"-"
            except OSError:         # the child closed the terminal
                break
            if data != b"-":
                out += data
            elif proc.poll() is not None:
                break
        self.assertEqual(proc.wait(30), 0, out)
        text = out.decode("utf-8", "replace")
        self.assertRegex(text, r"\r\s*100\.0%\s+67\.1 / 67\.1 MB\s+[\d.]+ MB/s")   # rewritten in place
        self.assertRegex(text, r"\n.*1 files verified, 0 skipped, 0 not transferred; 67108864 bytes")
        self.assertNotIn('{"event"', text)                          # words, not JSON, on a terminal
        self.assertEqual(sha256(src), sha256(self.shared / "tty" / "tty.bin"))

    def test_exit_statuses_wrong_password_interrupted_and_resumed(self):
        argv = self.viewer_argv("send", str(self.tmp), "--json")
        argv[argv.index("--password") + 1] = "not-the-password-1"
        wrong = subprocess.run(argv, capture_output=True, text=True, env=self.env(display=False), timeout=60)
        self.assertEqual(wrong.returncode, 3, wrong.stderr)
        self.assertIn("password", wrong.stderr.lower())

        src = self.tmp / "src" / "interrupted.bin"
        src.parent.mkdir(parents=True, exist_ok=True)
        write_counting(src, 256)
        sender = self.run_cli("send", str(src))
        sender.wait_for(lambda e: e.get("event") == "progress" and e["bytes"] >= 8 * MIB, timeout=60,
                        what="8 MiB on the way")
        sender.popen.send_signal(signal.SIGINT)
        self.assertEqual(sender.finish(30), 130, sender.stderr)
        self.assertIn("the same command again resumes", sender.stderr)
        self.assertFalse((self.shared / "interrupted.bin").exists())
        again = self.finished(self.run_cli("send", str(src)))
        self.assertLess(again["bytes"], 256 * MIB)                  # the part was not sent again
        self.assertEqual(sha256(src), sha256(self.shared / "interrupted.bin"))

    def test_host_stopping_under_a_get_is_status_5(self):
        """The host is stopped (SIGTERM) while it sends: the viewer's `get` ends with status 5 and
        one sentence, its part kept for a resume, no file under the final name. (Its goodbye does
        not always arrive before the viewer's next write fails: then the viewer tries to come back
        for --reconnect-for seconds first, 60 by default; 2 here.)"""
        folder = self.tmp / "stopping"
        folder.mkdir()
        write_counting(folder / "cut.bin", 256)
        host = self.start_host("host-stopping", "--files-dir", str(folder))
        self.addCleanup(host.stop)
        local = self.tmp / "local" / "stopping"
        local.mkdir(parents=True)
        getter = self.run_cli("get", "cut.bin", "--to", str(local), "--reconnect-for", "2", host=host)
        getter.wait_for(lambda e: e.get("event") == "progress" and e["bytes"] >= 8 * MIB, timeout=60,
                        what="8 MiB on the way")
        host.popen.send_signal(signal.SIGTERM)
        self.assertEqual(getter.finish(30), 5, getter.lines)
        said = getter.events("transferred")[-1]          # what the session received, counted once
        self.assertLess(said["bytes"], said["session_bytes"])
        self.assertLess(said["session_bytes"], said["bytes"] + 4 * MIB)
        self.assertEqual(len(getter.stderr.strip().splitlines()), 1, getter.stderr)
        self.assertIn("partner gone", getter.stderr)
        self.assertFalse((local / "cut.bin").exists())
        self.assertGreater((local / "cut.bin.tagio-part").stat().st_size, 0)

    # ---------------------------------------------------------------- the disk

    def test_disk_fills_while_a_file_is_written(self):
        small = self.tmp / "filling"
        mount_tmpfs(self, small, "40m")
        host = self.start_host("host-filling", "--files-dir", str(small))
        self.addCleanup(host.stop)
        src = self.tmp / "src" / "fills.bin"
        src.parent.mkdir(parents=True, exist_ok=True)
        write_counting(src, 32)
        sender = self.run_cli("send", str(src), host=host)
        sender.wait_for(lambda e: e.get("event") == "progress" and e["bytes"] > 0, timeout=60,
                        what="data on the way")
        sender.popen.send_signal(signal.SIGSTOP)        # hold the sender while the disk fills
        try:
            with open(small / "filler", "wb") as fh:
                try:
                    while True:
                        fh.write(bytes(MIB))
                        fh.flush()
                except OSError:
                    pass
        finally:
            sender.popen.send_signal(signal.SIGCONT)
        self.assertEqual(sender.finish(60), 1, sender.lines)
        self.assertIn("the disk is full", sender.stderr)
        said = host.wait_for(lambda e: e.get("event") == "file_error", what="the host's line")
        self.assertIn("the disk is full", said["message"])
        self.assertEqual(sorted(p.name for p in small.iterdir()), ["filler"])   # no part, no final name
        (small / "filler").unlink()
        self.finished(self.run_cli("send", str(src), host=host))
        self.assertEqual(sha256(src), sha256(small / "fills.bin"))

    # ---------------------------------------------------------------- names and places

    def test_links_depth_case_and_drive_letters(self):
        outside = self.tmp / "outside"
        outside.mkdir(exist_ok=True)
        (outside / "secret.txt").write_text("not for the partner")
        (self.shared / "escape").symlink_to(outside)
        self.addCleanup((self.shared / "escape").unlink)
        src = self.tmp / "src" / "names"
        src.mkdir(parents=True)
        (src / "plain.txt").write_text("plain")

        proc = self.run_cli("send", str(src / "plain.txt"), "--to", "escape")
        self.finished(proc, 1)
        self.assertIn("points outside the folder", proc.stderr)
        local = self.tmp / "local" / "links"
        local.mkdir(parents=True)
        for path in ("escape/secret.txt", "escape"):
            proc = self.run_cli("get", path, "--to", str(local))
            self.finished(proc, 1)
            self.assertIn("points outside the folder", proc.stderr)
        self.assertEqual(list(local.iterdir()), [])
        self.assertEqual([p.name for p in outside.iterdir()], ["secret.txt"])

        deep = src / "deep"
        (deep / "/".join(["d"] * 40)).mkdir(parents=True)
        proc = self.run_cli("send", str(deep))
        self.finished(proc, 1)
        self.assertIn("folders deep", proc.stderr)
        self.assertFalse((self.shared / "deep").exists())

        cases = src / "cases"
        cases.mkdir()
        for name in ("Readme.txt", "README.txt", "C:drive.txt"):
            (cases / name).write_text(name)
        proc = self.run_cli("send", str(cases))
        result = self.finished(proc, 1)
        self.assertEqual((result["verified"], result["refused"]), (1, 2))
        reasons = " ".join(e["reason"] for e in proc.events("file_refused"))
        self.assertIn("differ only in case", reasons)
        self.assertIn("which Windows does not allow", reasons)
        self.assertEqual([p.name for p in (self.shared / "cases").iterdir()], ["README.txt"])

    def test_too_many_files_in_one_fetch_are_refused(self):
        from tagio.protocol.files import MAX_ENTRIES
        crowd = self.shared / "crowd"
        crowd.mkdir()
        for i in range(MAX_ENTRIES):            # with the folder itself: one entry too many
            (crowd / f"{i:05}").touch()
        self.addCleanup(subprocess.run, ["rm", "-rf", str(crowd)])
        local = self.tmp / "local" / "crowd"
        local.mkdir(parents=True)
        proc = self.run_cli("get", "crowd", "--to", str(local))
        self.finished(proc, 1)
        self.assertIn(f"more than {MAX_ENTRIES} files and folders", proc.stderr)
        self.assertEqual(list(local.iterdir()), [])

    def test_resume_checks_the_part_block_by_block(self):
        """A part whose middle was damaged: the sender compares block hashes and starts at the
        first damaged block; what came before is not sent again; the whole file's SHA-256 matches."""
        from tagio.session.files_disk import block_size
        size, have, damaged = 40 * MIB, 24 * MIB, 10 * MIB + 5
        served = self.shared / "served-resume.bin"
        write_counting(served, size // MIB)
        self.addCleanup(served.unlink)
        local = self.tmp / "local" / "resume-check"
        local.mkdir(parents=True)
        part = bytearray(served.read_bytes()[:have])
        part[damaged] ^= 0xFF
        (local / "served-resume.bin.tagio-part").write_bytes(part)
        got = self.finished(self.run_cli("get", "served-resume.bin", "--to", str(local)))
        block = block_size(have)
        self.assertEqual(got["bytes"], size - damaged // block * block)
        self.assertGreater(got["bytes"], size - have)               # the damaged block came again
        self.assertEqual(sha256(served), sha256(local / "served-resume.bin"))
        self.assertFalse((local / "served-resume.bin.tagio-part").exists())

    # ---------------------------------------------------------------- chat

    def test_chat_lines_are_bounded(self):
        """A long line arrives whole, cut between characters into messages of at most MAX_CHAT
        bytes; a line over the bound is refused with a sentence and never sent."""
        from tagio.protocol.session import MAX_CHAT
        long_line = "\u00e9" * 3000 + " end"               # 6004 bytes: two messages
        viewer = self.run_cli("connect", "--chat", long_line, "--duration", "30")
        self.host.wait_for(lambda e: e.get("event") == "chat" and e["message"].endswith(" end"),
                           what="the end of the long line")
        pieces = [e["message"] for e in self.host.events("chat")][-2:]
        self.assertEqual("".join(pieces), long_line)
        self.assertTrue(all(len(p.encode("utf-8")) <= MAX_CHAT for p in pieces), [len(p) for p in pieces])
        viewer.popen.send_signal(signal.SIGINT)
        self.assertEqual(viewer.finish(30), 0, viewer.stderr)
        said = len(self.host.events("chat"))
        huge = self.run_cli("connect", "--chat", "x" * (64 * 1024 + 1), "--duration", "30")
        self.assertEqual(huge.finish(60), 2, huge.lines)
        self.assertIn("a chat line must hold 1 to 65536 bytes", huge.stderr)
        self.assertEqual(len(self.host.events("chat")), said)

    # ---------------------------------------------------------------- a lying sender

    def lying_viewer(self):
        """A viewer made of the real client in this process: (session, events)."""
        from tagio.client.core import Client
        type(self).runs += 1
        events = []
        client = Client(str(self.tmp / f"viewer{self.runs}"), relay=self.relay_text,
                        direct_bind=("127.0.0.1", 0))
        client.start()
        self.addCleanup(client.close)
        client.wait_online(20)
        conn = client.connect(self.host_id(), PASSWORD, timeout=15)
        session = conn.open_session(on_event=lambda name, **fields: events.append((name, fields)))
        session.start()
        self.addCleanup(session.stop)
        return session, events

    def wait_done(self, events, tid):
        return wait_until(lambda: next((f for n, f in events if n == "transfer_done" and f["tid"] == tid), None),
                          timeout=30, what=f"transfer {tid} to end")

    def offer_as_is(self, session, entries, dest):
        """Offer `entries` [(path, kind, size, mtime, local)] through the engine as they are (names
        and sizes no real walk makes); the transfer id."""
        from tagio.protocol import files as f
        from tagio.session.files_send import Outgoing
        from tagio.session.files_states import Sending
        engine = session.files
        with engine._lock:
            tid = engine._new_tid()
            engine._out[tid] = out = Outgoing(tid, entries, dest, f.POLICY_ASK)
            out.state, out.mine, out.chunk_size = Sending.OFFERED, True, engine.flow.chunk_size
        engine._send(out.offer())
        return tid

    def test_a_lying_sender_is_refused(self):
        from tagio.protocol import files as f
        from tagio.session.files_send import Outgoing
        session, events = self.lying_viewer()
        one = self.tmp / "src" / "one.txt"
        one.parent.mkdir(parents=True, exist_ok=True)
        one.write_bytes(b"x")
        bad = ["../escaped.txt", "/abs.txt", "\\abs.txt", "C:/drive.txt", "nul\x00byte.txt", "COM1.log",
               "a/../../escaped.txt", "/".join(["d"] * 40) + "/deep.txt", "Twin.txt", "TWIN.txt", "ok.txt"]
        tid = self.offer_as_is(session, [(path, f.KIND_FILE, 1, 0, one) for path in bad], "lies")
        done = self.wait_done(events, tid)
        self.assertEqual((done["verified"], done["refused"]), (2, 9), events)
        refused = {fields["path"] for name, fields in events if name == "file_refused"}
        self.assertEqual(refused, set(bad) - {"Twin.txt", "ok.txt"})
        said = self.host.wait_for(lambda e: e.get("event") == "file_refused" and "COM1" in e.get("path", ""),
                                  what="the host's refusal line")
        self.assertIn("reserved", said["reason"])
        self.assertEqual(sorted(p.name for p in (self.shared / "lies").iterdir()), ["Twin.txt", "ok.txt"])
        self.assertFalse((self.tmp / "escaped.txt").exists() or (self.shared / "escaped.txt").exists())

        outside = self.tmp / "outside"
        outside.mkdir(exist_ok=True)
        (self.shared / "way-out").symlink_to(outside)
        self.addCleanup((self.shared / "way-out").unlink)
        for path, words in (("..", "would leave the folder"), ("/etc", "absolute path"),
                            ("way-out", "points outside the folder"), ("", "")):
            req = session.files.list_dir(path)
            listing = wait_until(lambda: session.files.listings.get(req), timeout=20, what=f"the listing of {path!r}")
            if words:
                self.assertIn(words, listing["error"])
            else:
                self.assertEqual(listing["error"], "")
        self.assertNotIn("way-out", [e[0] for e in listing["entries"]])       # the top: listed, no link out

        (tid,) = session.files.send_paths([str(one)], "sizes")
        self.assertTrue(self.wait_done(events, tid)["ok"])
        lies = {"short.bin": (b"s" * 500, b"s" * 500), "long.bin": (b"l" * 1500, b"l" * 1500),
                "damaged.bin": (b"d" * 1000, b"D" * 1000)}      # all announced as 1000 bytes

        def lying_messages(self_):
            for index, (rel, _kind, _size, _mtime, _local) in enumerate(self_.entries):
                data, hashed = lies[rel]
                yield f.Chunk(self_.tid, index, 0, data)
                yield f.Done(self_.tid, index, hashlib.sha256(hashed).digest())
            yield f.End(self_.tid)
        with mock.patch.object(Outgoing, "messages", lying_messages):
            tid = self.offer_as_is(session, [(name, f.KIND_FILE, 1000, 0, one) for name in lies], "sizes")
            done = self.wait_done(events, tid)
        self.assertFalse(done["ok"])
        errors = " ".join(fields["message"] for name, fields in events if name == "file_error")
        self.assertIn("more data than the 1000 bytes announced", errors)
        self.assertIn("announced 1000 bytes and sent 500", errors)
        self.assertIn("SHA-256 differs", errors)
        self.assertEqual(sorted(p.name for p in (self.shared / "sizes").iterdir()), ["one.txt"])
        self.assertTrue(session.running)            # a lie about one file does not end the session


if __name__ == "__main__":
    unittest.main()
