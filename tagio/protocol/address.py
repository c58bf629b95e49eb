"""Addresses as people type them: `host:port` and relay URLs. The one parser for both.

Theory of operation
-------------------
A relay is written either as a bare `host`, `host:port` or `[v6]:port` (raw TCP, port 443 by
default), or as a URL `scheme://host[:port][/path]` whose scheme says how to talk to it:

    tagio://   raw TCP (the same as a bare address)
    tls://     raw TCP inside TLS
    ws://      a WebSocket tunnel (`GET /tagio` + Upgrade), for HTTP-only front ends
    wss://     a WebSocket tunnel inside TLS, for HTTPS-only front ends (Render, many PaaS)

`urllib.parse.urlsplit` splits a URL into scheme, authority and path; the authority, like a bare
address, goes through `parse_address`, which accepts exactly `host`, `host:port` or `[v6]:port`
with a decimal port in range; a host is a DNS name (IDN letters allowed), an IPv4 address or a
valid IPv6 address (optionally with a %zone), never URL punctuation or spaces. Everything unusable raises ConfigError (these are settings and
command-line values, not wire bytes). `format_address` is the inverse of `parse_address`.
"""

import ipaddress
import urllib.parse
from dataclasses import dataclass

from tagio.errors import ConfigError
from tagio.protocol.websocket import WS_PATH

DEFAULT_PORT = 443
MAX_ADDRESS_TEXT = 256
# scheme -> (tls, websocket)
_NAME_CHARS = "-._"
SCHEMES = {"tagio": (False, False), "tls": (True, False), "ws": (False, True), "wss": (True, True)}


@dataclass(frozen=True)
class RelayTarget:
    """A parsed relay address: where, and how (raw TCP, TLS, WebSocket through an HTTPS front end)."""
    address: tuple
    tls: bool = False
    websocket: bool = False
    ws_path: str = WS_PATH


def _bad(text, why="expected HOST:PORT, port 1-65535") -> ConfigError:
    return ConfigError(f"not a relay address: {text!r} ({why})")


def _split_host_port(text: str, default_port: int) -> tuple:
    """(host, port text) of 'host', 'host:port' or '[v6]:port'; ConfigError for other shapes."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad(text, "missing ']'")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise _bad(text)
        return host, rest[1:] if rest else str(default_port)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, str(default_port)


def parse_address(text, default_port=DEFAULT_PORT, min_port=1) -> tuple:
    """'host:port', '[::1]:port' or 'host' -> (host, port); raise ConfigError when unusable.
    min_port=0 allows port 0 ("any free port") for addresses we bind to."""
    text = str(text).strip()
    if not text or len(text) > MAX_ADDRESS_TEXT:
        raise _bad(text[:40])
    host, port = _split_host_port(text, default_port)
    if not _host_ok(host, ipv6=text.startswith("[") or text.count(":") > 1):   # '::1' alone is a host
        raise _bad(text, "not a host name or IP address")
    if not (port.isascii() and port.isdigit()) or not min_port <= int(port) < 65536:
        raise _bad(text)
    return host, int(port)


def _host_ok(host: str, ipv6: bool) -> bool:
    """A DNS name (IDN letters allowed), an IPv4 address, or an IPv6 address (with an optional
    %zone). No spaces, '@', '/', or other URL punctuation."""
    if not ipv6:
        return _is_name(host)
    ip, percent, zone = host.partition("%")
    try:        # urllib checks a bracketed host the same way, so both forms agree
        ipaddress.IPv6Address(ip)
    except ValueError:
        return False
    return not percent or _is_name(zone)


def _is_name(text: str) -> bool:
    return bool(text) and all(ch.isalnum() or ch in _NAME_CHARS for ch in text)


def format_address(address) -> str:
    """(host, port) -> 'host:port', with brackets around an IPv6 host."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_relay(text, default_port=DEFAULT_PORT) -> RelayTarget:
    """'host:port' or 'scheme://host[:port][/path]' (tagio, tls, ws, wss) -> RelayTarget.
    Raises ConfigError. A bare host:port is raw TCP."""
    text = str(text).strip()
    if "://" not in text:
        return RelayTarget(parse_address(text, default_port))
    if len(text) > MAX_ADDRESS_TEXT:
        raise ConfigError("relay address too long")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as exc:       # e.g. an unbalanced '[' in the authority
        raise ConfigError(f"bad relay address {text!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown relay address scheme {text.partition('://')[0]!r} "
                          "(use tagio://, tls://, ws:// or wss://)")
    if parts.fragment:
        raise _bad(text, "a relay URL has no #fragment")
    if parts.netloc.count(":") > 1 and not parts.netloc.startswith("["):
        raise _bad(text, "an IPv6 address in a URL needs [brackets]")
    tls, websocket = SCHEMES[scheme]
    address = parse_address(parts.netloc, default_port)
    path = parts.path + ("?" + parts.query if parts.query else "")
    if not all("!" <= ch <= "~" for ch in path):   # it goes into an HTTP request line as it is
        raise _bad(text, "the path must be printable ASCII without spaces")
    return RelayTarget(address, tls, websocket, path or WS_PATH)


def parse_relay_url(text, default_port=DEFAULT_PORT) -> tuple:
    """parse_relay as a tuple ((host, port), tls, websocket, ws_path); raises ConfigError."""
    target = parse_relay(text, default_port)
    return target.address, target.tls, target.websocket, target.ws_path
