"""A private "internet" in Linux network namespaces, for NAT traversal tests.

    pub  (198.18.0.1 on lo: the relay; routes between the sites)
     |-- p<i> 198.18.<i>.1/24 ---- wan 198.18.<i>.2/24  site i:
           public host:  the site namespace itself is the host
           NAT site:     router r (masquerade / fully-random) -- lan 10.<i>.0.1/24 ---- eth0 10.<i>.0.2/24 host h

Routers behave like home routers: from the public side only `ct state
established,related` gets in (input and forward), which is what lets
cone-to-cone punching work. `masquerade` is a port-preserving cone NAT;
`masquerade fully-random` a symmetric one. `lab.set_loss(p)` drops p% of the
UDP packets that pub forwards (each direction separately), with nftables
`numgen random`. Test address ranges only (RFC 2544 198.18.0.0/15, 10/8).

Namespaces are named with the pid and a counter, so parallel runs never
collide; `close()` kills the processes started in them and deletes them,
and is safe to call after a failed setup. `unavailable()` returns the reason
to skip (not root, no `ip netns`, no `nft`) or "".
"""

import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELAY_IP = "198.18.0.1"
RELAY_PORT = 7443
_counter = itertools.count()

ROUTER_RULES = """
table ip nat {{
  chain post {{
    type nat hook postrouting priority srcnat;
    oifname "wan" masquerade{random}
  }}
}}
table inet homerouter {{
  chain from_wan {{
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }}
  chain to_router {{
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }}
}}
"""
NAT_KINDS = {"cone": "", "symmetric": " fully-random"}


def unavailable() -> str:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespace tests need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = f"tgprobe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces here"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def run(*args, check=True, input=None):
    result = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result


class NetLab:
    def __init__(self):
        self.prefix = f"tg{os.getpid()}x{next(_counter)}"
        self.namespaces = []
        self.processes = []
        self.sites = 0
        try:
            self.pub = self._netns("pub")
            self.ip(self.pub, "addr", "add", f"{RELAY_IP}/32", "dev", "lo")
            self._forwarding(self.pub)
        except BaseException:
            self.close()  # nobody else holds a reference yet
            raise

    # ---- building ---------------------------------------------------------------------------

    def _netns(self, role):
        name = f"{self.prefix}{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    @staticmethod
    def ip(ns, *args):
        return run("ip", "-n", ns, *args)

    def _forwarding(self, ns):
        run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def _link(self, ns_a, name_a, addr_a, ns_b, name_b, addr_b):
        run("ip", "-n", ns_a, "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)
        for ns, name, addr in ((ns_a, name_a, addr_a), (ns_b, name_b, addr_b)):
            self.ip(ns, "addr", "add", addr, "dev", name)
            self.ip(ns, "link", "set", name, "up")

    def _site(self, role):
        """A namespace wired to pub as site i; returns (ns, i)."""
        self.sites += 1
        i = self.sites
        ns = self._netns(f"{role}{i}")
        self._link(self.pub, f"p{i}", f"198.18.{i}.1/24", ns, "wan", f"198.18.{i}.2/24")
        self.ip(ns, "route", "add", "default", "via", f"198.18.{i}.1")
        return ns, i

    def public_host(self) -> str:
        """A host with a public address (no NAT); returns its namespace."""
        return self._site("pubhost")[0]

    def nat_host(self, kind="cone", udp_timeout=None) -> str:
        """A host behind a home router of `kind` ("cone" or "symmetric"); returns its namespace.
        `udp_timeout` shortens how long the router remembers an idle UDP flow (Linux: 30 s /
        120 s once both ways have been seen)."""
        router, i = self._site("r")
        self._forwarding(router)
        if udp_timeout is not None:
            run("ip", "netns", "exec", router, "sysctl", "-q", "-w",
                f"net.netfilter.nf_conntrack_udp_timeout={int(udp_timeout)}",
                f"net.netfilter.nf_conntrack_udp_timeout_stream={int(udp_timeout)}")
        host = self._netns(f"h{i}")
        self._link(router, "lan", f"10.{i}.0.1/24", host, "eth0", f"10.{i}.0.2/24")
        self.ip(host, "route", "add", "default", "via", f"10.{i}.0.1")
        run("ip", "netns", "exec", router, "nft", "-f", "-",
            input=ROUTER_RULES.format(random=NAT_KINDS[kind]))
        return host

    def set_loss(self, percent: int):
        """Drop `percent`% of forwarded UDP packets in pub, independently per packet."""
        run("ip", "netns", "exec", self.pub, "nft", "delete", "table", "inet", "loss", check=False)
        if percent:
            rules = ("table inet loss {\n chain lossy {\n type filter hook forward priority filter;\n"
                     f" meta l4proto udp numgen random mod 100 < {int(percent)} drop\n }}\n}}\n")
            run("ip", "netns", "exec", self.pub, "nft", "-f", "-", input=rules)

    # ---- processes --------------------------------------------------------------------------

    def popen(self, ns, args, extra_env=None, **kw):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {}), "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], cwd=str(ROOT), env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kw)
        self.processes.append(proc)
        return proc

    def start_relay(self, state_dir) -> tuple:
        """Run tagio_relay_server.py in pub; returns (Popen, (ip, port)) once it listens."""
        proc = self.popen(self.pub, [sys.executable, "tagio_relay_server.py", "--bind",
                                     f"{RELAY_IP}:{RELAY_PORT}", "--state-file",
                                     str(Path(state_dir) / "relay-state.json")])
        lines = JsonLines(proc, stream="stderr")
        lines.wait_for(lambda line: "listening" in line, timeout=15, raw=True)
        return proc, (RELAY_IP, RELAY_PORT)

    def peer(self, ns, *args, extra_env=None) -> "JsonLines":
        """Run tests/nat_peer.py in `ns`; its JSON lines arrive on the returned reader."""
        proc = self.popen(ns, [sys.executable, str(ROOT / "tests" / "nat_peer.py"), *args], extra_env=extra_env)
        return JsonLines(proc)

    def close(self):
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe:
                    pipe.close()
        for name in reversed(self.namespaces):
            run("ip", "netns", "del", name, check=False)
        self.namespaces = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class JsonLines:
    """Reads a child's output lines in a thread; JSON lines become dicts."""

    def __init__(self, proc, stream="stdout"):
        self.proc = proc
        self.lines = queue.Queue(1000)
        self.log = []
        pipe = getattr(proc, stream)
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()
        other = proc.stderr if stream == "stdout" else proc.stdout
        self._drain = threading.Thread(target=self._keep, args=(other,), daemon=True)
        self._drain.start()

    def _read(self, pipe):
        for line in pipe:
            self.log.append(line.rstrip())
            self.lines.put(line.rstrip())
        self.lines.put(None)

    def _keep(self, pipe):
        for line in pipe:
            self.log.append(line.rstrip())

    def send(self, line):
        """Write one command line to the child's stdin."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout=20.0, raw=False):
        """The first line (dict unless raw) satisfying predicate; AssertionError with the log otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, remaining)) if remaining > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError("child did not report in time; its output:\n" + "\n".join(self.log[-40:]))
            item = line if raw else _json(line)
            if item is not None and predicate(item):
                return item

    def event(self, name, timeout=20.0):
        return self.wait_for(lambda item: item.get("event") in (name, "error") and
                             (item["event"] == name or _raise(item, self.log)), timeout)


def _json(line):
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _raise(item, log):
    raise AssertionError(f"child reported an error: {item}\n" + "\n".join(log[-40:]))
