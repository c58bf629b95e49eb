"""One relay connection's lifecycle: a table-driven state machine, without I/O.

Theory of operation
-------------------
Every TCP connection to the relay is a Conn (tagio.relay.conn) whose `state`
is a State. The I/O layer (tagio.relay.conns and readers) turns what happens
into events (tagio.relay.events: byte-level events, decoded control messages,
whose class is the event, and events from the rest of the relay) and calls
`fire(logic, conn, event, payload)`. TRANSITIONS, the one table of this
machine, maps (state, event) to (handler, next state):

    SNIFF --TLS_HELLO--> TLS --TLS_DONE--> APP_SNIFF      (a TLS port)
    SNIFF --APP_BYTES--> APP_SNIFF                        (a plain port)
    APP_SNIFF --FRAMES--> NEW --Hello--> CHALLENGED --Register--> VERIFYING --VERIFIED--> REGISTERED
    NEW --RelayBind--> BINDING --PAIRED--> RELAYING       (the forwarder owns the sockets from here)
    RELAYING --RELAY_FAILED--> LINGER                     (the pair could not be set up: "relay full")
    APP_SNIFF --HTTP--> HTTP --WS_UPGRADE--> APP_SNIFF    (the TagIO stream inside WebSocket frames)
    HTTP --HTTP_REQUEST--> LINGER                         (health, metrics, the info page)
    a live state --FAIL, Bye, REPLACED, TLS_ON_PLAIN, DEADLINE--> LINGER --LOST, DEADLINE--> CLOSED
    any state but RELAYING, CLOSED --LOST--> CLOSED

`fire` looks the pair up, calls handler(logic, conn, payload) and, only when
the handler returns, moves the connection to the next state; the handler's
list of actions is returned for the I/O layer to carry out. A missing pair
raises: RemoteProtocolError for a message the peer should not have sent in
this state, LocalProtocolError for any other event (a bug of ours). A
handler that raises a TagioError leaves the state as it was; the I/O layer
then fires FAIL, which reports the error in the form this state understands
(an Error frame, HTTP 400, or nothing inside an unfinished TLS handshake).

Handlers change only plain objects: the RelayLogic (registry, pairing, rate
limits; its message handlers are named here) and the Conn's own fields.
"""

import enum

from tagio.errors import LocalProtocolError, RelayError, RemoteProtocolError
from tagio.protocol import relay as m
from tagio.relay.events import Answer, Drop, Event, Linger, Reply, StartTls, Write
from tagio.relay.http import HttpRequestReader, http_error, upgrade_response
from tagio.relay.logic import RelayLogic, error_code
from tagio.relay.wsframes import RelayWsDecoder

TLS_ALERT_HANDSHAKE_FAILURE = bytes([21, 3, 1, 0, 2, 2, 40])


class State(enum.Enum):
    SNIFF = "sniff"            # first bytes not seen yet
    TLS = "tls"                # TLS handshake in progress
    APP_SNIFF = "app-sniff"    # first bytes of the application stream (after TLS or a WebSocket upgrade)
    HTTP = "http"              # reading one HTTP request head
    NEW = "new"                # TagIO frames: waiting for Hello or RelayBind
    CHALLENGED = "challenged"  # Challenge sent, waiting for Register
    VERIFYING = "verifying"    # signature check in flight
    REGISTERED = "registered"
    BINDING = "binding"        # RelayBind received, partner not here yet
    RELAYING = "relaying"      # handed to the forwarder
    LINGER = "linger"          # last words flushed, waiting for the peer's EOF (bounded)
    CLOSED = "closed"


ConnState = State  # the name RelayLogic's callers knew

HANDSHAKING = (State.SNIFF, State.TLS, State.APP_SNIFF, State.HTTP, State.NEW, State.CHALLENGED,
               State.VERIFYING)  # must finish within Limits.handshake_timeout (slow-loris guard)
FRAME_STATES = (State.NEW, State.CHALLENGED, State.VERIFYING, State.REGISTERED)  # reading control frames
# Not yet authenticated (no registration, no relay token): the first to be closed when the relay needs
# room (descriptors, or an address's connection slots), oldest first, so idle sockets cannot lock out
# the clients that go on to register.
EVICTABLE = (State.SNIFF, State.TLS, State.APP_SNIFF, State.HTTP, State.NEW, State.CHALLENGED)
LIVE = HANDSHAKING + (State.REGISTERED, State.BINDING)


# -- byte-level and lifecycle handlers: handler(logic, conn, payload) -> actions --------------------
def nothing(logic, conn, payload):
    return []


def start_tls(logic, conn, payload):
    return [StartTls(conn)]


def refuse_tls_on_plain(logic, conn, payload):
    ip = conn.peer_addr[0]
    logic.warn(("tls-plain", ip), "TLS ClientHello from %s on a plain (non-TLS) port; closing. Start the relay "
               "with --cert/--key or configure the client without TLS.", ip)
    logic.counters["tls_on_plain_total"] += 1
    return [Reply(conn, TLS_ALERT_HANDSHAKE_FAILURE), Linger(conn)]


def refuse_plain_on_tls(logic, conn, payload):
    exc, as_http = payload
    return _report(logic, conn, exc, as_http)


def on_http(logic, conn, payload):
    conn.http = HttpRequestReader()
    logic.counters["http_requests_total"] += 1
    return []


def on_request(logic, conn, request):
    return [Answer(conn, request), Linger(conn)]


def on_upgrade(logic, conn, request):
    """101 Switching Protocols; from now on the TagIO stream travels in WebSocket frames."""
    wire = upgrade_response(request.headers["sec-websocket-key"])  # RemoteProtocolError for a bad key
    conn.http, conn.ws = None, RelayWsDecoder()
    logic.counters["websocket_upgrades_total"] += 1
    return [Write(conn, wire)]


def on_fail(logic, conn, exc):
    return _report(logic, conn, exc, conn.state is State.HTTP)


def on_timeout(logic, conn, payload):
    return on_fail(logic, conn, RelayError("timeout", "handshake not completed in time"))


def clear_deadline(logic, conn, payload):
    conn.deadline = None  # registered or bound: heartbeats and pairing time it from now on
    return []


def on_lost(logic, conn, payload):
    logic.connection_lost(conn)
    return [Drop(conn)]


def _report(logic, conn, exc, as_http):
    """Tell the client what went wrong (one Error frame or HTTP 400), then linger."""
    code = error_code(exc)
    ip = conn.peer_addr[0]
    logic.counters["errors_total"] += 1
    logic.warn(("fail", ip, code), "closing %s: %s (%s)", ip, exc, code)
    logic.connection_lost(conn)
    if as_http:
        wire = http_error(str(exc))
    elif conn.state is State.TLS:
        wire = b""  # no application bytes before the handshake finished
    else:
        wire = conn.wrap(m.Error(code, str(exc)[:500]).encode())
    return [Reply(conn, wire), Linger(conn)]


# -- the table ------------------------------------------------------------------------------------
S, E, L = State, Event, RelayLogic
TRANSITIONS = {
    (S.SNIFF, E.APP_BYTES): (nothing, S.APP_SNIFF),
    (S.SNIFF, E.TLS_HELLO): (start_tls, S.TLS),
    (S.SNIFF, E.TLS_ON_PLAIN): (refuse_tls_on_plain, S.LINGER),
    (S.SNIFF, E.TLS_REQUIRED): (refuse_plain_on_tls, S.LINGER),
    (S.TLS, E.TLS_DONE): (nothing, S.APP_SNIFF),
    (S.APP_SNIFF, E.FRAMES): (nothing, S.NEW),
    (S.APP_SNIFF, E.HTTP): (on_http, S.HTTP),
    (S.HTTP, E.HTTP_REQUEST): (on_request, S.LINGER),
    (S.HTTP, E.WS_UPGRADE): (on_upgrade, S.APP_SNIFF),
    (S.NEW, m.Hello): (L.on_hello, S.CHALLENGED),
    (S.NEW, m.RelayBind): (L.on_relay_bind, S.BINDING),
    (S.CHALLENGED, m.Register): (L.on_register, S.VERIFYING),
    (S.CHALLENGED, m.Heartbeat): (L.on_ignore, S.CHALLENGED),
    (S.VERIFYING, m.Heartbeat): (L.on_ignore, S.VERIFYING),
    (S.VERIFYING, E.VERIFIED): (L.on_verified, S.REGISTERED),
    (S.REGISTERED, m.Heartbeat): (L.on_heartbeat, S.REGISTERED),
    (S.REGISTERED, m.ConnectRequest): (L.on_connect_request, S.REGISTERED),
    (S.REGISTERED, m.Lookup): (L.on_lookup, S.REGISTERED),
    (S.REGISTERED, m.Update): (L.on_update, S.REGISTERED),
    (S.REGISTERED, m.Register): (L.on_reregister, S.REGISTERED),
    (S.REGISTERED, E.REPLACED): (L.on_replaced, S.LINGER),
    (S.REGISTERED, E.DEADLINE): (clear_deadline, S.REGISTERED),
    (S.BINDING, m.Heartbeat): (L.on_ignore, S.BINDING),
    (S.BINDING, E.PAIRED): (nothing, S.RELAYING),
    (S.BINDING, E.DEADLINE): (clear_deadline, S.BINDING),
    (S.RELAYING, E.RELAY_FAILED): (on_fail, S.LINGER),
    (S.LINGER, E.LOST): (on_lost, S.CLOSED),
    (S.LINGER, E.DEADLINE): (on_lost, S.CLOSED),
    **{(s, m.Bye): (L.on_bye, S.LINGER) for s in FRAME_STATES},
    **{(s, E.DEADLINE): (on_timeout, S.LINGER) for s in HANDSHAKING},
    **{(s, E.FAIL): (on_fail, S.LINGER) for s in LIVE},
    **{(s, E.LOST): (on_lost, S.CLOSED) for s in LIVE},
    # Late news for a connection that already left: a signature check or a failure that was on its way.
    **{(s, e): (nothing, s) for s in (S.LINGER, S.CLOSED, S.RELAYING) for e in (E.VERIFIED, E.FAIL)},
}
del S, E, L


def fire(logic: RelayLogic, conn, event, payload=None) -> list:
    """Run the transition for `event` (an Event, or a message class with the message as payload).

    Returns the handler's actions. Raises RemoteProtocolError for a message that is not legal in
    conn's state, LocalProtocolError for any other missing pair, and whatever TagioError the handler
    raised (the state is then unchanged).
    """
    entry = TRANSITIONS.get((conn.state, event))
    if entry is None:
        if isinstance(event, Event):
            raise LocalProtocolError(f"no transition for {event.name} in state {conn.state.value}")
        raise RemoteProtocolError(f"unexpected {event.__name__} in state {conn.state.value}")
    handler, next_state = entry
    if not isinstance(event, Event):
        logic.registry.touch(conn)  # any legal message keeps a registration alive
    actions = handler(logic, conn, payload)
    conn.state = next_state
    return actions


def deliver(logic: RelayLogic, conn, message) -> list:
    """fire() for one decoded control message."""
    return fire(logic, conn, type(message), message)
