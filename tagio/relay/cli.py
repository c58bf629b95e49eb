"""Command line of tagio_relay_server: flags, environment, interactive setup, signals.

Precedence: command-line flag > environment (PORT, PUBLIC_IP, AUTH_SECRET,
METRICS_TOKEN, TAGIO_RELAY_STATE) > interactive answers > defaults. With no
arguments on a terminal the operator is walked through the settings; with no terminal (a
cloud host) the relay starts straight from the environment. Every startup
problem (port in use, unreadable certificate) is one line on stderr and exit
status 2, never a traceback.

The interactive setup asks again after a bad answer instead of exiting (an
address that does not parse, a port already in use: checked at once, TCP and
UDP, a certificate or key file that cannot be read), and once the relay
listens it says what clients should enter and which ports to open (TCP and
UDP on the same number).

On Windows the console's QuickEdit is switched off (a click would freeze the
relay), and when the console belongs to this process alone (the exe was
double-clicked) an error waits for Enter instead of vanishing with the window
(tagio.platform).
"""

import argparse
import errno
import getpass
import ipaddress
import logging
import os
import re
import shlex
import signal
import socket
import ssl
import sys
from pathlib import Path

from tagio.errors import ConfigError
from tagio.platform import keep_console_open, quick_edit_off
from tagio.relay.logic import Limits
from tagio.relay.server import VERSION, RelayServer, public_address

log = logging.getLogger("tagio.relay")
DEFAULT_PORT = 443
MAX_TRIES = 5               # bad answers to one setup question before the setup gives up
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def default_state_file() -> Path:
    """Where ID->key bindings persist: %LOCALAPPDATA%\\TagIO or $XDG_STATE_HOME/tagio (~/.local/state)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "TagIO"
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "tagio"
    return base / "relay-bindings.json"


def parse_bind(text: str) -> tuple:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), str(DEFAULT_PORT)
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"bad --bind value {text!r}: expected HOST:PORT, e.g. 0.0.0.0:443")
    return host, int(port)


def parse_public(text: str) -> str:
    """The address clients use, as the operator gave it: a host name or IP address, with ":PORT"
    when the public port is not the listen port (a proxy or port forward in front, as on Render).
    Returned normalised ("[v6]" in brackets); ConfigError for anything else, such as a URL, a space
    or a bad port, so the info page and the setup's last lines never show a broken address."""
    text = text.strip()
    host, port = text, None
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+):(\d+)", text)
    if match:
        host, port = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    if not _is_host(host) or (port is not None and not 1 <= int(port) <= 65535):
        raise ConfigError(f"bad --public-ip value {text!r}: expected the host name or IP address clients "
                          f"use, e.g. relay.example.org or 203.0.113.7, with :PORT only when it differs "
                          f"from the listen port (e.g. relay.example.org:443 behind a proxy)")
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{int(port)}" if port is not None else shown


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        name = host[:-1] if host.endswith(".") else host
        return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tagio_relay_server",
        description="TagIO relay: rendezvous and encrypted-traffic relay for TagIO clients. "
                    "Run with no arguments on a terminal for an interactive setup.",
        epilog="Environment: PORT (listen port when --bind is absent), PUBLIC_IP, AUTH_SECRET, "
               "METRICS_TOKEN, TAGIO_RELAY_STATE (state file), TRUSTED_PROXY. Flags win over the environment. The same port answers "
               "HTTP (/health, /healthz, /metrics) and WebSocket upgrades on /tagio for clients behind "
               "HTTPS-only proxies.")
    p.add_argument("--bind", metavar="HOST:PORT", help="listen address for TCP and UDP "
                   "(default 0.0.0.0:443, or 0.0.0.0:$PORT when PORT is set)")
    p.add_argument("--public-ip", metavar="ADDR[:PORT]",
                   help="host name or address clients use to reach this relay (shown on the info page); "
                        ":PORT when a proxy or port forward makes it differ from the listen port")
    p.add_argument("--auth", metavar="SECRET", help="require this shared secret from clients "
                   "(prefer AUTH_SECRET: flags are visible in the process list)")
    p.add_argument("--metrics-token", metavar="TOKEN",
                   help="/metrics answers only requests with 'Authorization: Bearer TOKEN' (prefer "
                        "METRICS_TOKEN); a private relay without one keeps its metrics off. Never "
                        "the relay secret: the token crosses plain HTTP")
    p.add_argument("--cert", metavar="FILE", help="TLS certificate chain (PEM); enables TLS")
    p.add_argument("--key", metavar="FILE", help="TLS private key (PEM)")
    p.add_argument("--state-file", metavar="FILE", help=f"ID->key bindings file (default {default_state_file()}; '' = memory only)")
    p.add_argument("--trusted-proxy", metavar="ADDR[,ADDR]",
                   help="reverse proxy whose X-Forwarded-For header names the client (only connections from "
                        "these addresses are believed; default: none, or $TRUSTED_PROXY)")
    p.add_argument("--max-conns-per-ip", type=_at_least_one, metavar="N",
                   help=f"connections allowed from one source address (default {Limits.max_conns_per_ip})")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also log registrations, rendezvous, relay pairs and HTTP requests")
    p.add_argument("--version", action="version", version=f"tagio-relay {VERSION}")
    return p


def _at_least_one(text):
    """--max-conns-per-ip: 0 or less would refuse every client, /health included."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (a relay that takes no connection serves nobody): {value}")
    return value


def _port_from_env(env) -> str:
    """$PORT as a cloud host sets it; ConfigError naming PORT (not --bind) when it is no port."""
    port = env.get("PORT", "").strip()
    if port and not (port.isdigit() and 0 <= int(port) <= 65535):
        raise ConfigError(f"bad PORT value {port!r} in the environment: expected a port number, 1 to 65535")
    return port


def settings_from(args, env) -> dict:
    port_env = _port_from_env(env) if not args.bind else ""
    bind = args.bind or (f"0.0.0.0:{port_env}" if port_env else f"0.0.0.0:{DEFAULT_PORT}")
    public = (args.public_ip or env.get("PUBLIC_IP") or "").strip()
    return {"bind": parse_bind(bind), "public_ip": parse_public(public) if public else None,
            "auth": args.auth or env.get("AUTH_SECRET") or None, "cert": args.cert, "key": args.key,
            "metrics_token": _metrics_token(args.metrics_token or env.get("METRICS_TOKEN") or None,
                                            args.auth or env.get("AUTH_SECRET") or None),
            "state_file": _state_file(args.state_file, env),
            "trusted_proxies": parse_proxies(args.trusted_proxy if args.trusted_proxy is not None
                                             else env.get("TRUSTED_PROXY", ""))}


def _metrics_token(token, auth):
    """The metrics token; ConfigError when it is the relay secret (one captured /metrics request
    over plain HTTP would give the secret away)."""
    if token and auth and token.strip() == auth.strip():
        raise ConfigError("the metrics token must not be the relay secret: choose another one")
    return token


def parse_proxies(text: str) -> frozenset:
    """Addresses of trusted reverse proxies, comma-separated; ConfigError for one that is not an IP."""
    proxies = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            proxies.add(str(ipaddress.ip_address(item.strip("[]"))))
        except ValueError:
            raise ConfigError(f"bad --trusted-proxy value {item!r}: expected an IP address") from None
    return frozenset(proxies)


def _state_file(flag, env):
    """The flag, else TAGIO_RELAY_STATE, else the default; an explicit empty value keeps bindings in memory."""
    value = flag if flag is not None else env.get("TAGIO_RELAY_STATE", str(default_state_file()))
    return value or None


def interactive_setup(settings: dict, ask=input, ask_secret=getpass.getpass, say=print,
                      port_free=None) -> dict:
    """Walk the operator through the settings; Enter keeps each default, a bad answer is asked
    again (with why). `port_free(host, port)` -> None or the problem (tests inject one)."""
    port_free = port_free or check_port_free
    say("TagIO relay setup. Press Enter to keep the value in [brackets].")
    host, port = settings["bind"]
    settings["bind"] = ask_until(ask, say, f"Listen address [{host}:{port}]: ",
                                 lambda text: _usable_bind(text or f"{host}:{port}", port_free))
    settings["public_ip"] = ask_until(ask, say, f"Public IP or host name clients will use "
                                      f"[{settings['public_ip'] or 'auto'}]: ",
                                      lambda text: parse_public(text) if text else settings["public_ip"])
    secret = ask_secret("Relay secret for a private relay (input hidden; Enter = public relay): ").strip()
    settings["auth"] = secret or settings["auth"]
    cert = ask_until(ask, say, "TLS certificate file (Enter = no TLS): ", lambda t: _readable(t, True))
    if cert:
        settings["cert"] = cert
        settings["key"] = ask_until(ask, say, "TLS private key file: ", lambda t: _readable(t, False))
    host, port = settings["bind"]
    flags = ["--bind", f"{host}:{port}"] + (["--public-ip", settings["public_ip"]] if settings["public_ip"] else []) \
        + (["--cert", settings["cert"], "--key", settings["key"]] if settings.get("cert") else [])
    say("Next time you can start directly with: tagio_relay_server " + " ".join(map(shlex.quote, flags))
        + (" (and AUTH_SECRET in the environment)" if settings["auth"] else ""))
    return settings


def ask_until(ask, say, prompt, check, tries=MAX_TRIES):
    """Ask until `check(answer)` returns without ConfigError; say why after each bad answer.
    After `tries` bad answers the last ConfigError is raised (a script feeding wrong answers
    must not loop for ever)."""
    for attempt in range(tries):
        try:
            return check(ask(prompt).strip())
        except ConfigError as exc:
            if attempt == tries - 1:
                raise
            say(f"  {exc}. Please try again.")
    raise AssertionError("unreachable")


def _usable_bind(text, port_free):
    host, port = parse_bind(text)
    problem = port_free(host, port)
    if problem:
        raise ConfigError(f"cannot listen on {host}:{port}: {problem}")
    return host, port


def _readable(path, optional):
    if not path:
        if optional:
            return None
        raise ConfigError("a TLS certificate needs its private key file")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"cannot read {path}")
    return path


def check_port_free(host, port):
    """None when TCP and UDP `port` can be bound on `host` now, else the reason (port 0: any)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM and os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as the server binds
            try:
                sock.bind((host, port))
            except OSError as exc:
                what = "TCP" if kind == socket.SOCK_STREAM else "UDP"
                return f"{what} port {port} is {_why(exc)}"
    return None


def _why(exc):
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return "already in use"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "not allowed (ports below 1024 need administrator rights)"
    return (exc.strerror or str(exc)).lower()


def how_to_reach(settings, port) -> list:
    """What the operator tells clients, and which ports to open, once the relay listens."""
    host = settings.get("public_ip") or settings["bind"][0]
    if host in ("0.0.0.0", "::", ""):
        host = local_address() or "THIS-MACHINE'S-IP"
    scheme = "tls://" if settings.get("cert") else ""
    return [f"Clients enter this relay address: {scheme}{public_address(host, host, port)}",
            f"Open port {port} for both TCP and UDP in the firewall (and forward both on the router "
            f"when clients come from the internet)."]


def local_address():
    """This machine's address on its outgoing interface (a UDP connect sends nothing), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))      # TEST-NET-1: never contacted, only routed
            return sock.getsockname()[0]
    except OSError:
        return None


def make_tls_context(cert, key):
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("TLS needs both --cert and --key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {reason}") from exc
    return ctx


def install_signals(server):
    def stop(signum, _frame):
        log.info("received %s; shutting down", signal.Signals(signum).name)
        server.request_stop()
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)


def main(argv=None, env=None, stdin=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        settings = settings_from(args, env)
        stdin = stdin or sys.stdin
        interactive = not argv and stdin is not None and stdin.isatty()
        if interactive:
            settings = interactive_setup(settings)
        limits = Limits(**({"max_conns_per_ip": args.max_conns_per_ip} if args.max_conns_per_ip is not None else {}))
        server = RelayServer(settings["bind"], auth_secret=settings["auth"], public_ip=settings["public_ip"],
                             ssl_context=make_tls_context(settings["cert"], settings["key"]),
                             state_file=settings["state_file"], limits=limits,
                             trusted_proxies=settings["trusted_proxies"],
                             metrics_token=settings.get("metrics_token"))
        server.open()  # raises the descriptor limit first (tagio.relay.fdlimit)
    except ConfigError as exc:
        print(f"tagio_relay_server: error: {exc}", file=sys.stderr)
        keep_console_open()  # a double-clicked exe: the error must not flash by (Windows)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\ntagio_relay_server: setup cancelled", file=sys.stderr)
        return 1
    quick_edit_off()  # Windows: a click into the console must not freeze the relay
    install_signals(server)
    if interactive:   # after the signals: a Ctrl+C from here on stops the relay, it cancels no setup
        for line in how_to_reach(settings, server.address[1]):
            print(line, flush=True)
    try:
        server.serve_forever()
    except Exception:  # serve_forever logged the reason; the operator gets that line, not a traceback
        keep_console_open()
        return 1
    return 0
