"""What the command line prints: one line per event (JSON or text) and one line per error.

Theory of operation: `Output` serialises lines from worker threads (a lock, flush per line) so JSON
lines never interleave. An error is explained by the one table of user-facing words
(tagio.client.words): its one-line form goes to stderr, its kind into the JSON error object, its exit
status is returned; the technical detail goes to the log only (shown with --verbose). `partner_id`
and `relay` are set by the command once known, so the line can name the partner and the relay (the
command line has no status bar that shows them).
"""

import json
import logging
import sys
import threading

from tagio.client.words import (EXIT_AUTH, EXIT_ERROR, EXIT_GONE, EXIT_INTERRUPTED,  # noqa: F401
                                EXIT_KEY_CHANGED, EXIT_OK, EXIT_RELAY, EXIT_USAGE, explain)

log = logging.getLogger("tagio.cli")

# What only the command line can do about an error, after its one line (by kind).
HINTS = {"key_changed": "only after checking with your partner, --accept-new-key trusts the new key"}


def describe_error(exc, partner_id="", relay=""):
    """(kind, exit status, one line) for an error shown to the user."""
    said = explain(exc, partner_id=partner_id, relay=relay)
    return said.kind, said.status, _with_hint(said)


def _with_hint(said) -> str:
    hint = HINTS.get(said.kind)
    return f"{said.line}; {hint}" if hint else said.line


class Output:
    """Serialises event lines from worker threads to stdout (JSON or text) and errors to stderr."""

    def __init__(self, as_json, stdout=None, stderr=None):
        self.as_json = as_json
        self.stdout, self.stderr = stdout or sys.stdout, stderr or sys.stderr
        self.partner_id = self.relay = ""
        self._lock = threading.Lock()

    def event(self, name, text, **fields):
        line = json.dumps({"event": name, **fields}) if self.as_json else text
        with self._lock:
            print(line, file=self.stdout, flush=True)

    def error(self, exc):
        said = explain(exc, partner_id=self.partner_id, relay=self.relay)
        log.debug("%s: %s", type(exc).__name__, said.detail)
        line = _with_hint(said)
        with self._lock:
            if self.as_json:
                print(json.dumps({"event": "error", "kind": said.kind, "message": line}),
                      file=self.stdout, flush=True)
            print(f"tagio: {line}", file=self.stderr, flush=True)
        return said.status
