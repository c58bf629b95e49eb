"""The vocabulary between a relay connection's state machine and the I/O layer: events in, actions out.

Theory of operation
-------------------
A relay connection (tagio.relay.connection) changes state only when an event
is fired at it. Events come from three places:

- the I/O layer, from what arrived on the socket: the members of `Event`
  below that describe bytes (TLS_HELLO, APP_BYTES, FRAMES, HTTP, ...);
- a decoded control message: its class is the event (m.Hello, m.Register, ...);
- the rest of the relay: a signature check finished (VERIFIED), the partner
  bound the relay token (PAIRED), the same ID registered again (REPLACED), a
  deadline passed (DEADLINE), a failure to report (FAIL), the peer is gone (LOST).

Handlers never touch a socket. They change plain objects (the Conn's fields,
the registry, the pairing table) and return a list of actions, the named
tuples below, which the I/O layer (tagio.relay.conns.ConnTable) carries out
in order. An action may fire an event at another connection (`Fire`), so a
rendezvous or a replaced registration moves both connections through their
own machines.
"""

import enum
from typing import Any, Callable, NamedTuple


class Event(enum.Enum):
    APP_BYTES = "app-bytes"          # a plain port's first bytes that are not TLS
    TLS_HELLO = "tls-hello"          # a TLS ClientHello on a TLS port
    TLS_ON_PLAIN = "tls-on-plain"    # a TLS ClientHello on a plain port
    TLS_REQUIRED = "tls-required"    # plain bytes on a TLS port; payload: (error, answer as HTTP?)
    TLS_DONE = "tls-done"            # the TLS handshake finished
    FRAMES = "frames"                # the application stream starts with the TagIO magic
    HTTP = "http"                    # ... with an HTTP method
    HTTP_REQUEST = "http-request"    # a complete HTTP request head; payload: HttpRequest
    WS_UPGRADE = "ws-upgrade"        # a WebSocket upgrade request; payload: HttpRequest
    VERIFIED = "verified"            # the signature check ended; payload: (Register, problem or "")
    PAIRED = "paired"                # both sides bound the relay token
    RELAY_FAILED = "relay-failed"    # the pair could not be set up (no descriptors); payload: the error
    REPLACED = "replaced"            # the same key registered again from another connection
    DEADLINE = "deadline"            # conn.deadline passed
    FAIL = "fail"                    # report an error and close; payload: the TagioError
    LOST = "lost"                    # EOF, a socket error, or a client that will not read


class Send(NamedTuple):
    """Queue one control message (bounded: a client that will not read is dropped)."""
    conn: Any
    message: Any


class Write(NamedTuple):
    """Queue bytes exactly as they go on the wire (bounded like Send)."""
    conn: Any
    wire: bytes


class Reply(NamedTuple):
    """Last words before Linger (an Error frame, an HTTP answer or a TLS alert), as wire bytes."""
    conn: Any
    wire: bytes


class Answer(NamedTuple):
    """Answer one HTTP request with the relay's pages (the status they show belongs to the I/O layer)."""
    conn: Any
    request: Any


class Linger(NamedTuple):
    """Flush what is queued, half-close, and drain until EOF or a short deadline."""
    conn: Any


class Drop(NamedTuple):
    """Close the socket now."""
    conn: Any


class StartTls(NamedTuple):
    conn: Any


class Verify(NamedTuple):
    """Run check() (an Ed25519 verification) on a worker; then fire VERIFIED at conn with (message, result)."""
    conn: Any
    check: Callable[[], str]
    message: Any


class Relay(NamedTuple):
    """Hand a completed pair to the forwarder."""
    conn: Any
    partner: Any


class Fail(NamedTuple):
    """Fire FAIL at conn with exc (an Error frame or HTTP 400, then close)."""
    conn: Any
    exc: Exception


class Fire(NamedTuple):
    """Fire an event at a (usually other) connection's machine."""
    conn: Any
    event: Event
    payload: Any = None
