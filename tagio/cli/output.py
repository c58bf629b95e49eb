"""What the command line prints: one line per event (JSON or text) and one line per error.

Theory of operation: `Output` serialises lines from worker threads (a lock, flush per line) so JSON
lines never interleave. `describe_error` maps an exception to (kind, exit status, one line) through
the ERRORS table, most specific class first along the exception's MRO, and relay error codes through
RELAY_CODES; anything that is not a TagioError is a bug and says so without a traceback.
"""

import json
import sys
import threading

from tagio.errors import (AuthError, ConfigError, ConnectionClosed, IdentityError, ProtocolError,
                          RelayError, SecureChannelError, TagioError, TransportError,
                          TransportTimeout, WrongPasswordError)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_RELAY, EXIT_GONE = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130      # the shell convention for "ended by Ctrl+C" before any work was done

# error class -> (kind, exit status, prefix); the most specific class is looked up first (MRO order).
ERRORS = {
    WrongPasswordError: ("wrong_password", EXIT_AUTH, "wrong password"),
    IdentityError: ("identity", EXIT_AUTH, "identity check failed"),
    AuthError: ("auth", EXIT_AUTH, "authentication failed"),
    RelayError: ("relay", EXIT_RELAY, None),
    ConnectionClosed: ("partner_gone", EXIT_GONE, "partner gone"),
    TransportTimeout: ("timeout", EXIT_GONE, "timed out"),
    SecureChannelError: ("channel", EXIT_GONE, "secure channel broken"),
    ProtocolError: ("protocol", EXIT_GONE, "protocol error"),
    TransportError: ("transport", EXIT_GONE, "connection failed"),
    ConfigError: ("usage", EXIT_USAGE, None),
    TagioError: ("error", EXIT_ERROR, None),
}

# relay error code -> (kind, human text); anything else shows the relay's own text.
RELAY_CODES = {
    "unknown_id": ("unknown_id", "unknown ID: no TagIO client with that ID is registered at the relay"),
    "offline": ("offline", "partner is not online"),
    "rate_limited": ("rate_limited", "the relay is rate-limiting this address; try again shortly"),
    "auth_failed": ("relay_auth", "the relay refused this client: its relay secret is missing or wrong"),
    "self": ("usage", "that is this machine's own ID"),
}


def describe_error(exc):
    """(kind, exit status, one line) for an error shown to the user."""
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            kind, status, prefix = ERRORS[cls]
            break
    else:
        return "internal", EXIT_ERROR, f"internal error ({type(exc).__name__}); run with --verbose"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, RelayError):
        kind, text = RELAY_CODES.get(exc.code, (exc.code or "relay", text))
        if exc.code == "unreachable":
            kind = "relay_unreachable"
    elif prefix and not text.lower().startswith(prefix):
        text = f"{prefix}: {text}"
    return kind, status, text


class Output:
    """Serialises event lines from worker threads to stdout (JSON or text) and errors to stderr."""

    def __init__(self, as_json, stdout=None, stderr=None):
        self.as_json = as_json
        self.stdout, self.stderr = stdout or sys.stdout, stderr or sys.stderr
        self._lock = threading.Lock()

    def event(self, name, text, **fields):
        line = json.dumps({"event": name, **fields}) if self.as_json else text
        with self._lock:
            print(line, file=self.stdout, flush=True)

    def error(self, exc):
        kind, status, text = describe_error(exc)
        with self._lock:
            if self.as_json:
                print(json.dumps({"event": "error", "kind": kind, "message": text}), file=self.stdout,
                      flush=True)
            print(f"tagio: {text}", file=self.stderr, flush=True)
        return status


