"""The words people see: one table from every error, relay error code and session ending to one
plain sentence.

Theory of operation. Both front ends explain a failure through `explain(exc)`, which looks it up in
three tables and returns a `Said`:

    ERRORS          error class -> Words, looked up along the exception's MRO (most specific first);
                    anything that is not listed is a bug and reads as an internal error
    REFUSALS        PartnerRefused.code -> Words: why the partner's desk would not take us (busy,
                    too many attempts, declined by the person there)
    RELAY_CODES     RelayError.code -> Words: every code the relay sends (relay/), plus the two the
                    client makes itself (unreachable, auth_required); an unknown code shows the
                    relay's own text, which the protocol writes for people
    CHANNEL_CAUSES  SecureChannelError.cause -> Words: a stream cut between records is a lost
                    connection (a relay restart, a partner gone), not an attack, and reads so

and the reasons a session ended (Bye texts, and the errors that end a session) go through ENDINGS,
by their beginning, to a sentence: "Your partner ended the session", "The connection was lost".

A `Said` holds the words (title, sentence, advice), the command line's kind and exit status, and the
technical detail (str of the exception). The detail is for the log and --verbose only; it reaches a
person only where it was written for people (a ConfigError's text, an unknown relay code's text, a
partner's own goodbye that we do not know). The window shows `title` and `body`; the command line
prints `line` and uses `kind` and `status`.
"""

import re
from dataclasses import dataclass

from tagio.client.admission import ConnectCancelled
from tagio.client.pins import KeyChangedError
from tagio.client.refusal import PartnerRefused
from tagio.crypto.identity import format_id
from tagio.crypto.proof import IdentityProofError
from tagio.errors import (AuthError, ConfigError, ConnectionClosed, IdentityError, ProtocolError,
                          RelayError, SecureChannelError, TagioError, TransportError, TransportTimeout,
                          WrongPasswordError)
from tagio.protocol.version import VersionMismatch
from tagio.session.files_names import FileRefused

# The command line's exit statuses (tagio-gui --help lists them).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_RELAY, EXIT_GONE = 0, 1, 2, 3, 4, 5
EXIT_KEY_CHANGED = 6        # the partner's key is not the one pinned for its ID (client/pins.py)
EXIT_INTERRUPTED = 130      # the shell convention for "ended by Ctrl+C" before any work was done


@dataclass(frozen=True)
class Words:
    """How one kind of failure reads. `sentence` and `advice` may name {desk} / {Desk} ("desk
    123 456 789", or "your partner's desk"), {the_id} ("ID 123 456 789" or "that ID"), {relay}
    (the relay's address, or "it"), {reason} (the short cause), {detail} and {ending}."""
    kind: str               # a stable machine word: the command line's JSON "kind"
    status: int             # the command line's exit status
    title: str              # a dialog's title: a few words
    sentence: str           # one plain sentence for people
    advice: str = ""        # what to do next; dialogs show it after the sentence
    lead: bool = False      # the one-line form starts with the title: "partner gone: ..."


@dataclass(frozen=True)
class Said:
    """What to tell a person about one failure, and the detail for the log."""
    kind: str
    status: int
    title: str
    sentence: str
    advice: str
    detail: str
    lead: bool = False

    @property
    def body(self) -> str:
        """A dialog's text: the sentence, then the advice."""
        return f"{self.sentence} {self.advice}".strip()

    @property
    def line(self) -> str:
        """One line for the command line: "wrong password", "partner gone: the connection was lost"."""
        text = inline(self.sentence)
        return f"{inline(self.title)}: {text}" if self.lead else text


LOST = "The connection was lost."
PARTNER_ENDED = "Your partner ended the session."
PROTOCOL = "The partner sent data TagIO does not understand (a protocol error)."
DAMAGED = "The secure connection was damaged, so it was closed."
INTERNAL = "Something went wrong inside TagIO (internal error: {detail})."

ERRORS = {
    WrongPasswordError: Words("wrong_password", EXIT_AUTH, "Wrong password", "Wrong password.",
                              "Ask your partner for the password shown on their screen now "
                              "(it changes after three wrong tries)."),
    ConnectCancelled: Words("cancelled", EXIT_INTERRUPTED, "Cancelled", "The connection was cancelled."),
    PartnerRefused: None,                               # by code: REFUSALS
    KeyChangedError: Words("key_changed", EXIT_KEY_CHANGED, "The partner's key has changed",
                           "{Desk} is not the desk this computer knew: its key has changed, so "
                           "TagIO stopped before showing anything.",
                           "Someone may be posing as your partner: a desk's key does not change "
                           "while its ID stays the same. Check with your partner another way (by "
                           "phone, in person) before you trust the new key."),
    IdentityProofError: Words("identity", EXIT_AUTH, "Identity check failed",
                              "{Desk} could not prove that it owns its ID, so the connection was "
                              "stopped.", "Someone may be posing as your partner.", lead=True),
    IdentityError: Words("identity", EXIT_AUTH, "Identity check failed",
                         "The partner's ID does not match its key, so the connection was stopped.",
                         lead=True),
    AuthError: Words("auth", EXIT_AUTH, "Not allowed", "Your partner did not allow the connection."),
    RelayError: None,                                   # by code: RELAY_CODES
    ConnectionClosed: Words("partner_gone", EXIT_GONE, "Partner gone", "{ending}", lead=True),
    TransportTimeout: Words("timeout", EXIT_GONE, "No answer", "The connection to {desk} timed out.",
                            "Check that your partner's TagIO is running."),
    SecureChannelError: None,                           # by cause: CHANNEL_CAUSES
    VersionMismatch: Words("protocol", EXIT_GONE, "Update TagIO", "{detail}"),
    ProtocolError: Words("protocol", EXIT_GONE, "Connection broken", PROTOCOL,
                         "Your partner may run a different version of TagIO."),
    TransportError: Words("transport", EXIT_GONE, "Relay unreachable",
                          "Could not reach {desk}, not even through the relay.",
                          "Check your network and the relay address in Settings."),
    ConfigError: Words("usage", EXIT_USAGE, "Cannot connect", "{detail}"),
    FileRefused: Words("files", EXIT_ERROR, "File transfer failed", "{detail}"),
    TagioError: Words("error", EXIT_ERROR, "Connection failed", "The connection failed."),
    OSError: Words("network", EXIT_ERROR, "Network problem", "A network error stopped the connection.",
                   "Check your connection and the relay address."),
}
UNEXPECTED = Words("internal", EXIT_ERROR, "Unexpected error", INTERNAL, "Please try again.")


REFUSALS = {
    "busy": Words("busy", EXIT_GONE, "Partner busy", "{Desk} is busy with other connections.",
                  "Try again in a minute."),
    "rate_limited": Words("partner_rate_limited", EXIT_AUTH, "Too many attempts",
                          "{Desk} refuses this desk for a minute after too many attempts.",
                          "Wait a minute, then try again with the password shown there now."),
    "declined": Words("declined", EXIT_AUTH, "Declined", "Your partner declined."),
    "key_changed": Words("key_refused", EXIT_AUTH, "Refused",
                         "{Desk} stopped: this desk's key is not the one it knew for this ID.",
                         "If this desk's settings were reset or moved, tell your partner so."),
    "identity": Words("identity_refused", EXIT_AUTH, "Refused",
                      "{Desk} could not verify this desk's ID, so it refused the connection."),
}
UNKNOWN_REFUSAL = Words("refused", EXIT_AUTH, "Refused", "{Desk} refused the connection.")


def _relay(kind, sentence, advice=""):
    return Words(kind, EXIT_RELAY, "Cannot connect", sentence, advice)


# Every code the relay sends (tagio/relay: logic.py, pairing.py, registry.py, readers.py, server.py,
# and logic.error_code for errors without their own code), and the client's own two. The kind is
# the code itself, except where the command line has always said it otherwise.
RELAY_CODES = {
    "unreachable": _relay("relay_unreachable", "Cannot reach the relay ({reason}): {relay} is unreachable.",
                          "Check the relay address in Settings and your network."),
    "auth_required": _relay("auth_required", "This relay is private: it needs a relay secret.",
                            "Set it in Settings \u2192 Relay (or TAGIO_RELAY_SECRET)."),
    "unknown_id": _relay("unknown_id", "No desk with {the_id} is known to the relay (unknown ID).",
                         "Check the ID and try again."),
    "offline": _relay("offline", "{Desk} is not online.", "Ask your partner to start TagIO."),
    "self": _relay("usage", "That is this desk's own ID.", "Enter your partner's ID."),
    "rate_limited": _relay("rate_limited", "The relay is slowing down requests from this address.",
                           "Wait a minute, then try again."),
    "auth_failed": _relay("relay_auth", "The relay refused this desk: its relay secret is missing or "
                                        "wrong.", "Check it in Settings \u2192 Relay."),
    "tls_required": _relay("tls_required", "This relay only accepts encrypted (TLS) connections.",
                           "Use a tls:// or wss:// relay address in Settings."),
    "identity": _relay("identity", "The relay refused this desk's ID: another key owns it.",
                       "Ask the relay's operator for help."),
    "busy": _relay("busy", "The relay is busy.", "Try again shortly."),
    "relay_full": _relay("relay_full", "The relay cannot take new desks right now.",
                         "Try again later or use another relay."),
    "too_many_connections": _relay("too_many_connections", "Too many connections reach the relay "
                                   "from this address.", "Close other TagIO windows here, or try "
                                   "again later."),
    "timeout": _relay("timeout", "The relay stopped waiting for this desk.", "Try again."),
    "replaced": _relay("replaced", "This desk's ID signed in to the relay from another place, so "
                                   "this connection was closed.", "Close TagIO on the other "
                                   "machine that uses this settings folder, then try again."),
    "unpaired": _relay("unpaired", "{Desk} never joined the relayed connection.", "Try again."),
    "unknown_token": _relay("unknown_token", "The relayed connection expired before it opened.", "Try again."),
    "too_early": _relay("too_early", "The relay did not understand this desk (a protocol error).",
                        "The relay may run a different version of TagIO."),
    "protocol": _relay("protocol", "The relay did not understand this desk (a protocol error).",
                       "The relay may run a different version of TagIO."),
    "error": _relay("error", "The relay could not handle the request.", "Try again."),
}
UNKNOWN_RELAY_CODE = _relay("relay", "The relay refused the request: {detail}")

CHANNEL_CAUSES = {
    "truncation": Words("channel", EXIT_GONE, "Connection lost", "The connection to {desk} was lost.",
                        "Your partner, the relay or the network went away."),
}
CHANNEL_OTHER = Words("channel", EXIT_GONE, "Connection broken", DAMAGED)

# How a session ended -> the sentence; matched on the reason's beginning (case ignored), in order.
# The reasons are the Bye texts of session/host.py, session/viewer.py and hosting.py (and its
# ENDED_HERE for a session the host's side ended), and the texts
# of the errors that end a session (crypto/records.py, crypto/channel.py, net/).
ENDINGS = (
    ("secure channel broken (truncation)", LOST),
    ("secure channel broken", DAMAGED),
    ("connection lost", LOST),
    ("connection to the relay lost", LOST),
    ("the relay closed the connection", LOST),
    ("not connected to the relay", LOST),
    ("the peer reset the connection", LOST),
    ("stream ended", LOST),
    ("stream failed", LOST),
    ("stream is closed", LOST),
    ("secure channel is closed", LOST),
    ("the peer closed the secure channel", PARTNER_ENDED),
    ("host ended the session", PARTNER_ENDED),
    ("viewer closed the session", PARTNER_ENDED),
    ("viewer left", PARTNER_ENDED),
    ("the partner ended the session", PARTNER_ENDED),
    ("ended on this desk", "The session was ended on this desk."),
    ("the partner declined", "Your partner declined."),
    ("the viewer cancelled", "Your partner cancelled the connection."),
    ("the partner is shutting down", "Your partner closed TagIO."),
    ("the viewer reconnected", "Your partner reconnected."),
    ("the reconnect came too late", LOST),
    ("protocol error", PROTOCOL),
    ("unknown session message", PROTOCOL),
    ("host error", "Your partner's computer had a problem and ended the session."),
    ("viewer error", "Something went wrong inside TagIO (internal error)."),
    ("internal error", "Something went wrong inside TagIO (internal error)."),
)

# The relay link while the relay is away (the window's status line, the command line host).
RETRYING_IN = "retrying in {seconds} s"
HOST_KEEPS_TRYING = ("the relay cannot be reached yet; this desk keeps trying (every few seconds, "
                     "for ever) and says when it is online")

# The viewer's proof of its ID (client/proving.py) as the host tells its user about a refusal, and
# the accept prompt's line that says the ID shown is proven.
ID_NOT_PROVEN = "could not prove its ID"
ACCEPT_VERIFIED = "Its ID is verified: the desk proved it holds the key the ID belongs to."
# The window's dialog when a partner's key changed (tagio/ui/keychange.py).
TRUST_NEW_KEY = "Trust the new key"

# What the connect flow says while it runs (the window's status line, the command line's events).
WAITING = "Waiting for your partner to accept..."
CANCELLED_BY_YOU = "Connection cancelled."
PARTNER_GAVE_UP = "Desk {desk} gave up before you answered."
# Reconnect (client/resume.py): a session whose path broke comes back by itself.
RECONNECTING = "Connection lost - reconnecting..."
RECONNECTED = "Reconnected."
WRONG_GUESS = "Desk {desk} tried a wrong password ({left} more {tries} with this password)."
WRONG_GUESS_LAST = "Desk {desk} tried a wrong password; a new one-time password was made."


def wrong_guess(desk: str, tries_left: int) -> str:
    """The host's notice after a wrong password: tries left, or that the password was replaced."""
    if tries_left:
        return WRONG_GUESS.format(desk=desk, left=tries_left, tries="try" if tries_left == 1 else "tries")
    return WRONG_GUESS_LAST.format(desk=desk)


_RELAY_PREFIX = re.compile(r"^(relay \S+ is unreachable: )?(cannot reach (the )?relay \S+: )?", re.I)


def short_reason(text: str) -> str:
    """'relay h:1 is unreachable: cannot reach relay h:1: Connection refused' -> 'Connection refused'.

    The relay link's reasons repeat the address the status line already shows; keep the cause."""
    return _RELAY_PREFIX.sub("", str(text or "").strip()) or str(text or "")


def ending(reason) -> str:
    """The sentence for why a session ended: a Bye text, an error's text, or an exception. A reason
    we do not know is the partner's own words and is shown as they are."""
    text = str(reason or "").strip()
    lowered = text.lower()
    for start, sentence in ENDINGS:
        if lowered.startswith(start):
            return sentence
    return _as_sentence(text) if text else PARTNER_ENDED


def explain(exc: BaseException, *, partner_id: str = "", relay: str = "") -> Said:
    """What to tell a person about `exc` (partner_id: the partner's ID, if known; relay: the relay's
    address when nothing else on screen shows it, as on the command line)."""
    words = words_for(exc)
    detail = str(exc).strip() if isinstance(exc, TagioError) else type(exc).__name__
    fields = _fields(exc, detail, partner_id, relay)
    kind = (exc.code or words.kind) if words is UNKNOWN_RELAY_CODE else words.kind
    sentence = _as_sentence(words.sentence.format(**fields)) or _as_sentence(words.title)
    return Said(kind, words.status, words.title, sentence,
                words.advice.format(**fields), str(exc).strip() or type(exc).__name__, words.lead)


def words_for(exc: BaseException) -> Words:
    """The table entry for `exc`."""
    if isinstance(exc, RelayError):
        return RELAY_CODES.get(exc.code, UNKNOWN_RELAY_CODE)
    if isinstance(exc, PartnerRefused):
        return REFUSALS.get(exc.code, UNKNOWN_REFUSAL)
    if isinstance(exc, SecureChannelError):
        return CHANNEL_CAUSES.get(getattr(exc, "cause", None), CHANNEL_OTHER)
    for cls in type(exc).__mro__:
        if ERRORS.get(cls) is not None:
            return ERRORS[cls]
    return UNEXPECTED


def _fields(exc, detail, partner_id, relay) -> dict:
    try:
        shown = format_id(partner_id) if partner_id else ""
    except (ConfigError, TypeError, IndexError):
        shown = ""
    desk = f"desk {shown}" if shown else "your partner's desk"
    return {"desk": desk, "Desk": desk[0].upper() + desk[1:],
            "the_id": f"ID {shown}" if shown else "that ID", "relay": relay or "it",
            "reason": short_reason(getattr(exc, "text", None) or detail), "detail": detail,
            "ending": ending(detail) if isinstance(exc, ConnectionClosed) else ""}


def _as_sentence(text: str) -> str:
    """Capital first letter, full stop at the end."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def inline(text: str) -> str:
    """A sentence as part of a line: small first letter (unless the word is in capitals such as
    "ID"), no full stop."""
    text = text.strip().rstrip(".")
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


# The session window's words (tagio/ui/viewer_window.py, toolbar.py, status.py) and the host's bar.
# How the partner is reached: channel path -> (label, dot colour). "lan" is a direct path to an
# address on the local network (the window decides that from the peer's address).
PATHS = {
    "lan": ("LAN", "#1565c0"),
    "direct-tcp": ("Direct", "#1e8e3e"),
    "direct-udp": ("Direct (UDP)", "#1e8e3e"),
    "relay": ("Relayed", "#b26a00"),
}
PATH_DETAILS = {
    "lan": "A direct connection inside your local network.",
    "direct-tcp": "A direct connection between the two desks (TCP).",
    "direct-udp": "A direct connection between the two desks (UDP through both NATs).",
    "relay": "Through the relay, which passes on encrypted data it cannot read.",
}
UNKNOWN_PATH = ("Connected", "#616e7c")
WAITING_FOR_PICTURE = "Waiting for the partner's screen\u2026"
VIEW_ONLY_BADGE = "View only"
VIEW_ONLY_DETAIL = "Your partner lets you see the screen but not control it."
HOST_VIEWED = "Viewing your screen (no control) \u2014 {desk}"
FULL_SCREEN_HINT = "Ctrl+Alt+Enter leaves full screen"

# The desks you know (tagio/ui/partners.py, home.py, prompts.py' accept prompt, settings_dialog.py).
ONLINE_DOTS = {"online": "\u25cf", "offline": "\u25cb", None: "\u00b7"}   # relay lookup -> dot
PARTNERS_TITLE = "Partners"
NO_PARTNERS = "No partners yet \u2014 they appear here"
RENAME = "Rename"
REMOVE = "Remove"
REMOVE_TITLE = "Remove partner"
REMOVE_CONFIRM = ("Remove {desk} from your partners? This computer also forgets the key it knew for "
                  "that desk, so the next connection to it trusts the key the desk shows then, as "
                  "for a new partner.")
HISTORY = "History"
RENAME_TITLE = "Name this partner"
RENAME_HINT = "Shown only on this computer. Empty: the name the desk gives itself."
HISTORY_TITLE = "Who connected to this desk"
NO_HISTORY = "Nobody has connected to this desk yet."
HISTORY_CONTROL = {True: "view only", False: "control"}       # view_only -> words
DESK_NAME = "Name this desk"
DESK_NAME_HINT = "Shown to your partners (sent inside the encrypted session only, never to the relay)."
TRUSTED_TITLE = "Desks allowed without asking"
NO_TRUSTED = "None: every partner is asked for."
REVOKE = "Revoke"
ACCEPT_WANTS = "{desk} wants to connect to this computer."
ACCEPT_DENIED_IN = "Denied automatically in {seconds} s."
ACCEPT_RIGHTS = (             # accept prompt checkbox -> words; "control" off = see only
    ("control", "Control the mouse and keyboard (off: see only)"),
    ("clipboard", "Share the clipboard"),
    ("files", "Send and receive files"),
)
ALWAYS_ALLOW = "Always allow this desk (no prompt next time, with these rights)"
