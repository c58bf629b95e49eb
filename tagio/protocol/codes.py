"""Error codes: the one table of every `code` a relay Error frame carries (and the client's own).

Theory of operation. A relay refuses something with `Error(code, text, ref)` (tagio.protocol.relay):
`code` is for programs, `text` for people. Each code is a constant here, with one line saying what
happened; the relay raises them (RelayError(code, text)), the client decides what to do and what
to show from them (words for people live with the front ends, keyed by these constants). A code
not in this table may come from a newer relay: callers show its text as is.

CLIENT_CODES are RelayErrors the client raises itself; they never travel on the wire.
"""

# --- sent by the relay ---------------------------------------------------------------------
AUTH_FAILED = "auth_failed"                 # relay secret missing or wrong
AUTH_REQUIRED = "auth_required"             # a private relay, and we have no secret (also raised locally)
BUSY = "busy"                               # too many pending relay sessions
ERROR = "error"                             # any other failure of ours
IDENTITY = "identity"                       # the ID/key binding or the signature was refused
OFFLINE = "offline"                         # the partner's ID is known but not connected
PROTOCOL = "protocol"                       # the client broke the relay protocol
RATE_LIMITED = "rate_limited"               # too many registrations/requests/messages from one source
RELAY_FULL = "relay_full"                   # the relay cannot bind new IDs right now
REPLACED = "replaced"                       # the same ID registered again from another connection
SELF = "self"                               # a connect request for our own ID
TIMEOUT = "timeout"                         # no heartbeat / handshake not completed in time
TLS_REQUIRED = "tls_required"               # this relay accepts TLS connections only
TOO_EARLY = "too_early"                     # relayed data sent before RelayReady
TOO_MANY_CONNECTIONS = "too_many_connections"   # the relay is at its connection limit
UNKNOWN_ID = "unknown_id"                   # no client with that ID ever registered
UNKNOWN_TOKEN = "unknown_token"             # relay token unknown or expired
UNPAIRED = "unpaired"                       # the partner never bound the relay token

# --- raised by the client itself -------------------------------------------------------------
UNREACHABLE = "unreachable"                 # the relay could not be reached at all

RELAY_CODES = {
    AUTH_FAILED: "the relay secret is missing or wrong",
    AUTH_REQUIRED: "this relay is private and needs a relay secret",
    BUSY: "the relay has too many pending relay sessions",
    ERROR: "the relay failed",
    IDENTITY: "the relay refused this ID's key or signature",
    OFFLINE: "the partner is not online",
    PROTOCOL: "the relay did not understand this client",
    RATE_LIMITED: "too many attempts from this address",
    RELAY_FULL: "the relay cannot accept new IDs right now",
    REPLACED: "this ID registered again from another connection",
    SELF: "that is this machine's own ID",
    TIMEOUT: "something did not happen in time",
    TLS_REQUIRED: "this relay only accepts TLS connections",
    TOO_EARLY: "data was sent before the relay paired both sides",
    TOO_MANY_CONNECTIONS: "the relay is full",
    UNKNOWN_ID: "no TagIO client with that ID is registered",
    UNKNOWN_TOKEN: "the relay token is unknown or expired",
    UNPAIRED: "the partner never joined the relayed session",
}
CLIENT_CODES = {UNREACHABLE: "the relay could not be reached"}
ALL_CODES = {**RELAY_CODES, **CLIENT_CODES}
