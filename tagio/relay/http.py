"""HTTP on the relay port, sans-I/O: enough for cloud health checks, metrics and a hint page.

Theory of operation
-------------------
The server sniffs the first bytes of each connection; an HTTP method sends
it here. `HttpRequestReader.feed(bytes)` returns the (method, path) once the
header block is complete, bounded to MAX_REQUEST bytes (more is a 431-style
refusal). `http_response(method, path, status)` builds one complete
HTTP/1.1 response with `Connection: close`; the server writes it and closes.
Request bodies are never read.

    /health, /healthz  200 application/json {"status": "ok", "version", "uptime_s", ...}
    /metrics           200 Prometheus text format, the same counters. With a metrics token
                       (--metrics-token / METRICS_TOKEN) only for `Authorization: Bearer
                       <metrics token>` (else 401); a private relay without one answers 404:
                       its metrics are off. Never the relay secret: a Bearer token crosses
                       plain HTTP, and one captured request must not give the secret away.
    anything else      200 text/html page: "this is a TagIO relay, point a client at host:port"
    GET /tagio with Upgrade: websocket   101, then the TagIO protocol inside WebSocket frames
                                         (see tagio.protocol.websocket)
"""

import hmac
import html
import ipaddress
import json
from typing import NamedTuple

from tagio.errors import RemoteProtocolError
from tagio.protocol.websocket import accept_key

MAX_REQUEST = 8192
HTTP_METHODS = (b"GET ", b"HEAD", b"POST", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC")


def looks_like_http(first4: bytes) -> bool:
    return first4[:4] in HTTP_METHODS


class HttpRequest(NamedTuple):
    method: str
    path: str
    headers: dict   # lower-case names -> values (last one wins)
    rest: bytes     # bytes after the head (a WebSocket client may send frames right away)

    def wants_websocket(self) -> bool:
        return (self.method == "GET" and "websocket" in self.headers.get("upgrade", "").lower()
                and "sec-websocket-key" in self.headers)


class HttpRequestReader:
    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes):
        """Return an HttpRequest once the request head is complete, else None.

        Raises RemoteProtocolError when the head is too large or malformed.
        """
        self._buf += data
        end, sep = self._buf.find(b"\r\n\r\n"), 4
        if end < 0:
            end, sep = self._buf.find(b"\n\n"), 2
        if end < 0 or end > MAX_REQUEST:
            if len(self._buf) > MAX_REQUEST:
                raise RemoteProtocolError(f"HTTP request head larger than {MAX_REQUEST} bytes")
            return None
        lines = bytes(self._buf[:end]).decode("latin-1").splitlines()
        parts = lines[0].split() if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise RemoteProtocolError(f"malformed HTTP request line {(lines or [''])[0][:80]!r}")
        headers = {}
        for line in lines[1:100]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        return HttpRequest(parts[0].upper(), parts[1], headers, bytes(self._buf[end + sep:]))


def forwarded_client(headers: dict):
    """The client address a reverse proxy put in the request, or None when it put none.

    X-Forwarded-For's LAST entry is the address the proxy itself saw (nginx's
    $proxy_add_x_forwarded_for appends it); earlier entries come from the client and prove nothing.
    Without that header, X-Real-IP. Only ask this of a connection from a trusted proxy.
    Raises RemoteProtocolError when the address is not an IP address.
    """
    value = headers.get("x-forwarded-for", "").rsplit(",", 1)[-1].strip() or headers.get("x-real-ip", "").strip()
    if not value:
        return None
    try:
        ip = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise RemoteProtocolError(f"the proxy's client address {value[:60]!r} is not an IP address") from None
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def upgrade_response(key: str) -> bytes:
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode()


def _json_status(status: dict) -> tuple:
    body = json.dumps({"status": "ok", **status}, sort_keys=True).encode()
    return 200, "application/json", body


def _metrics(status: dict) -> tuple:
    lines = []
    for key, value in sorted(status.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            name = f"tagio_relay_{key}"
            kind = "counter" if key.endswith("_total") else "gauge"
            lines += [f"# TYPE {name} {kind}", f"{name} {value}"]
    lines.append(f'tagio_relay_info{{version="{status.get("version", "")}"}} 1')
    return 200, "text/plain; version=0.0.4; charset=utf-8", ("\n".join(lines) + "\n").encode()


def _info_page(status: dict) -> tuple:
    where = html.escape(str(status.get("public_address", "this-host:port")))
    body = f"""<!doctype html>
<html><head><title>TagIO relay</title></head><body>
<h1>TagIO relay</h1>
<p>This is a TagIO relay server (version {html.escape(str(status.get("version", "")))}), not a web site.
It introduces TagIO clients to each other and relays their end-to-end encrypted traffic.</p>
<p>To use it, point a TagIO client at it: set <code>TAGIO_RELAY={where}</code>
or run <code>tagio-gui --relay {where}</code>. Behind an HTTPS-only proxy use
<code>wss://{where}/tagio</code> (the TagIO protocol inside a WebSocket).</p>
<p>Health check: <a href="/health">/health</a> &middot; metrics: <a href="/metrics">/metrics</a></p>
</body></html>
""".encode()
    return 200, "text/html; charset=utf-8", body


ROUTES = {"/health": _json_status, "/healthz": _json_status, "/metrics": _metrics}
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
GUARDED = {"/metrics"}  # pages that need the metrics token when one is set (and are off without
                        # one on a private relay)


def _unauthorized(status: dict) -> tuple:
    return 401, "text/plain", b"The metrics need a token: send Authorization: Bearer <metrics token>.\n"


def _metrics_off(status: dict) -> tuple:
    return 404, "text/plain", (b"The metrics of this private relay are off: start it with "
                               b"--metrics-token (or METRICS_TOKEN) to read them.\n")


def authorized(headers: dict, token) -> bool:
    """True when the request carries `token` as a Bearer token (compared in constant time)."""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def guarded_route(headers: dict, private: bool, metrics_token):
    """The route for a GUARDED page: None (serve it), _unauthorized or _metrics_off."""
    if metrics_token:
        return None if authorized(headers, metrics_token) else _unauthorized
    return _metrics_off if private else None


def http_response(method: str, path: str, status: dict, headers=None, *, private=False,
                  metrics_token=None) -> bytes:
    """One complete response. GUARDED pages need `metrics_token` when one is set, and are off on a
    `private` relay (one with a relay secret) without one."""
    page = path.split("?", 1)[0]
    route = ROUTES.get(page, _info_page)
    if page in GUARDED:
        route = guarded_route(headers or {}, private, metrics_token) or route
    code, ctype, body = route(status)
    extra = "WWW-Authenticate: Bearer realm=\"tagio-relay-metrics\"\r\n" if code == 401 else ""
    head = (f"HTTP/1.1 {code} {REASONS.get(code, 'OK')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n"
            f"{extra}Server: tagio-relay\r\n\r\n").encode()
    return head if method == "HEAD" else head + body


def http_error(text: str) -> bytes:
    body = (text + "\n").encode()
    return (f"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body
