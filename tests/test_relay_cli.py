"""tagio_relay_server as an operator meets it: flags, environment, interactive setup on a pty, signals."""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from tagio.crypto.identity import Identity
from tagio.crypto.relay_auth import RelaySecret
from tagio.errors import ConfigError, RelayError
from tagio.net.relay_client import RelayClient
from tagio.relay import cli
from tests.platforms import SIGNALS, skip_on_windows
from tests.relay_fixture import ROOT, run_relay_process

SERVER = str(ROOT / "tagio_relay_server.py")


def run_cli(*args, timeout=20):
    env = dict(os.environ, TAGIO_RELAY_STATE="")
    return subprocess.run([sys.executable, SERVER, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env, cwd=str(ROOT))


class SettingsTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def parse(self, argv, env):
        return cli.settings_from(cli.build_parser().parse_args(argv), env)

    def test_defaults_and_environment(self):
        self.assertEqual(self.parse([], {})["bind"], ("0.0.0.0", 443))
        s = self.parse([], {"PORT": "10000", "PUBLIC_IP": "relay.example.org", "AUTH_SECRET": "env-secret"})
        self.assertEqual((s["bind"], s["public_ip"], s["auth"]), (("0.0.0.0", 10000), "relay.example.org", "env-secret"))

    def test_flags_win_over_environment(self):
        s = self.parse(["--bind", "127.0.0.1:7000", "--auth", "flag", "--public-ip", "1.2.3.4"],
                       {"PORT": "10000", "AUTH_SECRET": "env", "PUBLIC_IP": "5.6.7.8"})
        self.assertEqual((s["bind"], s["auth"], s["public_ip"]), (("127.0.0.1", 7000), "flag", "1.2.3.4"))

    def test_trusted_proxy_flag_and_environment(self):
        self.assertEqual(self.parse([], {})["trusted_proxies"], frozenset())
        self.assertEqual(self.parse([], {"TRUSTED_PROXY": "10.0.0.1, ::1"})["trusted_proxies"],
                         frozenset({"10.0.0.1", "::1"}))
        self.assertEqual(self.parse(["--trusted-proxy", "127.0.0.1"], {"TRUSTED_PROXY": "10.0.0.1"})["trusted_proxies"],
                         frozenset({"127.0.0.1"}))
        with self.assertRaisesRegex(ConfigError, "bad --trusted-proxy"):
            self.parse(["--trusted-proxy", "proxy.example"], {})

    def test_state_file_choice(self):
        self.assertEqual(self.parse(["--state-file", "x.json"], {})["state_file"], "x.json")
        self.assertEqual(self.parse([], {"TAGIO_RELAY_STATE": "y.json"})["state_file"], "y.json")
        self.assertIsNone(self.parse([], {"TAGIO_RELAY_STATE": ""})["state_file"])
        self.assertTrue(self.parse([], {})["state_file"].endswith("relay-bindings.json"))

    def test_bad_bind(self):
        for bad in ("127.0.0.1:http", "127.0.0.1:70000"):
            with self.subTest(bad), self.assertRaisesRegex(ConfigError, "bad --bind"):
                cli.parse_bind(bad)
        self.assertEqual(cli.parse_bind("[::1]:5000"), ("::1", 5000))

    def pem_files(self):
        folder = tempfile.mkdtemp(prefix="tagio-relay-cli-")
        self.addCleanup(shutil.rmtree, folder, True)
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path in (cert, key):
            with open(path, "w") as handle:
                handle.write("-----BEGIN PLACEHOLDER-----\n")
        return cert, key

    def test_interactive_setup_defaults_and_answers(self):
        cert, key = self.pem_files()
        answers = iter(["127.0.0.1:9000", "", cert, key])
        out = []
        settings = {"bind": ("0.0.0.0", 443), "public_ip": None, "auth": None, "cert": None, "key": None}
        got = cli.interactive_setup(settings, ask=lambda p: next(answers), ask_secret=lambda p: "hidden",
                                    say=out.append, port_free=lambda host, port: None)
        self.assertEqual((got["bind"], got["auth"], got["cert"], got["key"]),
                         (("127.0.0.1", 9000), "hidden", cert, key))
        self.assertNotIn("hidden", "\n".join(out))

    def test_interactive_setup_asks_again_after_a_bad_answer(self):
        cert, key = self.pem_files()
        answers = iter(["not a port:x", "127.0.0.1:9000", "127.0.0.1:9001", "",
                        "/nonexistent/cert.pem", cert, "", key])
        asked, out = [], []

        def ask(prompt):
            asked.append(prompt)
            return next(answers)
        busy = {9000: "TCP port 9000 is already in use"}
        settings = {"bind": ("0.0.0.0", 443), "public_ip": None, "auth": None, "cert": None, "key": None}
        got = cli.interactive_setup(settings, ask=ask, ask_secret=lambda p: "", say=out.append,
                                    port_free=lambda host, port: busy.get(port))
        self.assertEqual((got["bind"], got["cert"], got["key"]), (("127.0.0.1", 9001), cert, key))
        self.assertEqual(sum(p.startswith("Listen address") for p in asked), 3)
        said = "\n".join(out)
        self.assertIn("bad --bind value", said)
        self.assertIn("cannot listen on 127.0.0.1:9000: TCP port 9000 is already in use", said)
        self.assertIn("cannot read /nonexistent/cert.pem", said)
        self.assertIn("needs its private key", said)

    def test_interactive_setup_gives_up_after_many_bad_answers(self):
        settings = {"bind": ("0.0.0.0", 443), "public_ip": None, "auth": None, "cert": None, "key": None}
        with self.assertRaises(ConfigError):
            cli.interactive_setup(settings, ask=lambda p: "nope:nope", ask_secret=lambda p: "",
                                  say=lambda text: None, port_free=lambda host, port: None)

    def test_how_to_reach_names_the_address_and_both_protocols(self):
        lines = cli.how_to_reach({"public_ip": "relay.example.org", "bind": ("0.0.0.0", 443),
                                  "cert": "c.pem"}, 443)
        self.assertEqual(lines[0], "Clients enter this relay address: tls://relay.example.org:443")
        self.assertIn("port 443 for both TCP and UDP", lines[1])


class ProcessTest(unittest.TestCase):
    def test_help_and_version(self):
        result = run_cli("--help")
        self.assertEqual(result.returncode, 0)
        for flag in ("--bind", "--public-ip", "--auth", "--cert", "--key", "--verbose", "--version", "PORT",
                     "AUTH_SECRET", "PUBLIC_IP"):
            self.assertIn(flag, result.stdout)
        self.assertRegex(run_cli("--version").stdout, r"tagio-relay \d+\.\d+")

    def test_port_in_use_is_one_line(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run_cli("--bind", f"127.0.0.1:{port}")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr.strip().count("\n"), 0, result.stderr)
        self.assertIn("address already in use", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_unreadable_certificate_is_one_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as junk:
            junk.write("garbage")
        self.addCleanup(os.unlink, junk.name)
        result = run_cli("--bind", "127.0.0.1:0", "--cert", junk.name, "--key", junk.name)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr.strip().count("\n"), 0, result.stderr)
        self.assertIn("cannot load TLS certificate", result.stderr)

    def test_info_page_gives_the_public_port_behind_a_proxy(self):
        """render.yaml's case: the relay listens on $PORT, clients come in on 443 through the proxy;
        PUBLIC_IP=name:443 makes the info page and /health say name:443 (not name:443:$PORT)."""
        for public, shown in (("relay.example.org:443", "relay.example.org:443"),
                              ("relay.example.org", "relay.example.org:{port}")):
            with self.subTest(public=public):
                proc, (host, port) = run_relay_process("--bind", "127.0.0.1:0", env={"PUBLIC_IP": public})
                self.addCleanup(_stop, proc)
                shown = shown.format(port=port)
                with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as resp:
                    page = resp.read().decode()
                with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as resp:
                    health = json.loads(resp.read())
                self.assertIn(f"TAGIO_RELAY={shown}</code>", page)
                self.assertIn(f"wss://{shown}/tagio", page)
                self.assertEqual(health["public_address"], shown)

    def test_a_public_address_that_is_no_address_is_one_line(self):
        for flag in ("https://relay.example.org", "relay example org", "relay.example.org:0"):
            with self.subTest(flag=flag):
                result = run_cli("--bind", "127.0.0.1:0", "--public-ip", flag)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertEqual(result.stderr.strip().count("\n"), 0, result.stderr)
                self.assertIn("bad --public-ip value", result.stderr)

    def test_max_conns_per_ip_below_one_is_refused_at_start(self):
        """0 or less would make the relay refuse every client, /health included ("too many
        connections from your address (limit -5)")."""
        for value in ("0", "-5"):
            with self.subTest(value=value):
                result = run_cli("--bind", "127.0.0.1:0", f"--max-conns-per-ip={value}", timeout=15)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("--max-conns-per-ip: must be at least 1", result.stderr)

    def test_a_bad_port_variable_is_named(self):
        env = dict(os.environ, TAGIO_RELAY_STATE="", PORT="abc")
        result = subprocess.run([sys.executable, SERVER], capture_output=True, text=True, timeout=15,
                                stdin=subprocess.DEVNULL, env=env, cwd=str(ROOT))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stderr.strip().count("\n"), 0, result.stderr)
        self.assertIn("bad PORT value 'abc'", result.stderr)      # not "bad --bind value '0.0.0.0:abc'"

    @skip_on_windows(SIGNALS)
    def test_sigterm_shuts_down_cleanly(self):
        proc, (host, port) = run_relay_process("--bind", "127.0.0.1:0", "--verbose", env={"AUTH_SECRET": "from-env"})
        try:
            client = RelayClient((host, port), Identity.generate())
            with self.assertRaises(RelayError) as ctx:
                client.connect()
            self.assertEqual(ctx.exception.code, "auth_required")
            client = RelayClient((host, port), Identity.generate(), auth_secret=RelaySecret("from-env"))
            client.connect()
            client.close()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        proc.output_thread.join(10)  # all output read, however loaded the machine
        output = "".join(proc.output)
        self.assertIn("auth on", output)
        self.assertIn("relay stopped", output)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("from-env", output)  # the secret is never logged


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


class LoopFailureTest(unittest.TestCase):
    def test_a_failed_loop_is_exit_1_and_one_log_line_not_a_traceback(self):
        import logging
        from tagio.relay.server import RelayServer
        root = logging.getLogger()
        saved = {"handlers": list(root.handlers), "level": root.level,
                 "signals": {n: signal.getsignal(getattr(signal, n)) for n in ("SIGINT", "SIGTERM")}}

        def restore():
            root.handlers[:] = saved["handlers"]
            root.setLevel(saved["level"])
            for name, handler in saved["signals"].items():
                signal.signal(getattr(signal, name), handler)
        self.addCleanup(restore)

        def broken_loop(server):
            raise RuntimeError("selector exploded")
        real_loop = RelayServer._loop
        RelayServer._loop = broken_loop
        self.addCleanup(setattr, RelayServer, "_loop", real_loop)
        with self.assertLogs("tagio.relay", "ERROR") as logs:
            code = cli.main(["--bind", "127.0.0.1:0"], env={"TAGIO_RELAY_STATE": ""})
        self.assertEqual(code, 1)
        self.assertTrue(any("selector exploded" in line for line in logs.output), logs.output)


@unittest.skipUnless(hasattr(os, "fork") and sys.platform != "darwin", "needs a POSIX pseudo-terminal")
class InteractiveSetupTest(unittest.TestCase):
    def expect(self, pattern, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(pattern, self.output)
            if found:
                return found
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.output += chunk.decode(errors="replace")
        self.fail(f"did not see {pattern!r} in:\n{self.output}")

    def start_on_pty(self):
        import pty
        env = dict(os.environ, TAGIO_RELAY_STATE="", PYTHONUNBUFFERED="1")
        env.pop("PORT", None)
        env.pop("AUTH_SECRET", None)
        pid, self.fd = pty.fork()
        if pid == 0:  # child: become the relay, with the pty as its terminal
            try:
                os.chdir(str(ROOT))
                os.execve(sys.executable, [sys.executable, SERVER], env)
            finally:
                os._exit(127)
        self.output = ""
        self.addCleanup(os.close, self.fd)
        return pid

    def test_bad_answers_are_asked_again_and_the_end_says_how_to_reach_it(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            pid = self.start_on_pty()
            try:
                self.expect(r"Listen address \[0\.0\.0\.0:443\]: ")
                os.write(self.fd, b"127.0.0.1:notaport\n")
                self.expect(r"bad --bind value.*Please try again\.")
                self.expect(r"Listen address .*: $")
                os.write(self.fd, f"127.0.0.1:{taken}\n".encode())
                # Reported right after that question, not after all of them.
                self.expect(rf"cannot listen on 127\.0\.0\.1:{taken}: TCP port {taken} is already in use")
                self.expect(r"Listen address .*: $")
                os.write(self.fd, b"127.0.0.1:0\n")
                self.expect(r"Public IP .*: ")
                os.write(self.fd, b"\n")
                self.expect(r"Relay secret.*: ")
                os.write(self.fd, b"\n")
                self.expect(r"TLS certificate file.*: ")
                os.write(self.fd, b"/nonexistent/cert.pem\n")
                self.expect(r"cannot read /nonexistent/cert\.pem\. Please try again\.")
                self.expect(r"TLS certificate file.*: $")
                os.write(self.fd, b"\n")
                port = int(self.expect(r"Clients enter this relay address: 127\.0\.0\.1:(\d+)").group(1))
                self.expect(rf"Open port {port} for both TCP and UDP")
                os.write(self.fd, b"\x03")
                self.expect(r"relay stopped")
                _, status = os.waitpid(pid, 0)
                pid = None
                self.assertEqual(os.waitstatus_to_exitcode(status), 0)
                self.assertNotIn("Traceback", self.output)
            finally:
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)

    def test_a_public_address_is_checked_and_asked_again(self):
        pid = self.start_on_pty()
        try:
            self.expect(r"Listen address \[0\.0\.0\.0:443\]: ")
            os.write(self.fd, b"127.0.0.1:0\n")
            self.expect(r"Public IP .*: ")
            os.write(self.fd, b"relay example org\n")        # a typo a person makes: spaces
            self.expect(r"bad --public-ip value 'relay example org'.*Please try again\.")
            self.expect(r"Public IP .*: $")
            os.write(self.fd, b"relay.example.org:443\n")    # the proxy in front listens on 443
            self.expect(r"Relay secret.*: ")
            os.write(self.fd, b"\n")
            self.expect(r"TLS certificate file.*: ")
            os.write(self.fd, b"\n")
            self.expect(r"--public-ip relay\.example\.org:443")
            self.expect(r"Clients enter this relay address: relay\.example\.org:443\r?\n")
            os.write(self.fd, b"\x03")
            self.expect(r"relay stopped")
            _, status = os.waitpid(pid, 0)
            pid = None
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)

    def test_setup_through_a_pty_then_ctrl_c(self):
        pid = self.start_on_pty()
        try:
            self.expect(r"Listen address \[0\.0\.0\.0:443\]: ")
            os.write(self.fd, b"127.0.0.1:0\n")
            self.expect(r"Public IP .*: ")
            os.write(self.fd, b"\n")
            self.expect(r"Relay secret.*: ")
            os.write(self.fd, b"pty-secret\n")
            self.expect(r"TLS certificate file.*: ")
            os.write(self.fd, b"\n")
            port = int(self.expect(r"listening on 127\.0\.0\.1:(\d+) \(tcp\+udp, tls off, auth on\)").group(1))
            client = RelayClient(("127.0.0.1", port), Identity.generate(), auth_secret=RelaySecret("pty-secret"))
            client.connect()
            client.close()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                self.assertEqual(resp.status, 200)
            os.write(self.fd, b"\x03")  # Ctrl+C on the terminal
            self.expect(r"relay stopped")
            _, status = os.waitpid(pid, 0)
            pid = None
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
            self.assertNotIn("pty-secret", self.output)  # typed without echo, never logged
            self.assertNotIn("Traceback", self.output)
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)



class TlsProcessTest(unittest.TestCase):
    @skip_on_windows(SIGNALS)
    @unittest.skipUnless(__import__("shutil").which("openssl"), "needs openssl to make a certificate")
    def test_cert_and_key_flags(self):
        import ssl
        from pathlib import Path
        from tests.test_relay_tls import make_certificate
        tmp = Path(tempfile.mkdtemp(prefix="tagio-cli-tls-"))
        cert, key = make_certificate(tmp)
        proc, (host, port) = run_relay_process("--bind", "127.0.0.1:0", "--cert", str(cert), "--key", str(key))
        try:
            ctx = ssl.create_default_context(cafile=str(cert))
            client = RelayClient((host, port), Identity.generate(), ssl_context=ctx)
            client.connect()
            client.close()
            with urllib.request.urlopen(f"https://{host}:{port}/healthz", context=ctx, timeout=5) as resp:
                self.assertEqual(resp.status, 200)
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
        proc.output_thread.join(10)  # all output read, however loaded the machine
        self.assertIn("tls on", "".join(proc.output))


if __name__ == "__main__":
    unittest.main()
