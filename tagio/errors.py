"""The TagIO error hierarchy: one root, and names that say who is to blame.

TagioError
  ProtocolError            bytes on the wire broke the protocol
    RemoteProtocolError    ... the peer sent them (we report and close)
    LocalProtocolError     ... we were asked to send something invalid (a bug)
  AuthError                authentication failed
    WrongPasswordError     the PAKE's key confirmation failed
    IdentityError          an ID/key binding was refused or a signature is bad
  SecureChannelError       a record failed to decrypt, was replayed, reordered or cut
  RelayError               the relay answered with an Error frame (code + text)
  TransportError           the path below us failed
    TransportTimeout       ... by running out of time
    ConnectionClosed       ... the peer went away
  ConfigError              a setting or command-line value is unusable

A sans-I/O decoder raises only ProtocolError; anything else out of it is a bug.
"""


class TagioError(Exception):
    """Root of every error TagIO raises on purpose."""


class ProtocolError(TagioError):
    """Bytes on the wire did not follow the protocol."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to encode something the protocol does not allow."""


class AuthError(TagioError):
    """Authentication failed."""


class WrongPasswordError(AuthError):
    """The password did not match (key confirmation failed)."""


class IdentityError(AuthError):
    """An ID could not be bound to, or proven by, its key."""


class SecureChannelError(TagioError):
    """An encrypted record was forged, replayed, reordered or truncated."""

    cause = None    # what happened ("truncation", "tamper", ...) when the record layer knows it


class RelayError(TagioError):
    """The relay refused a request; `code` is machine-readable, str() is for people."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text


class TransportError(TagioError):
    """The transport below us failed."""


class TransportTimeout(TransportError):
    """A transport operation ran out of time."""


class ConnectionClosed(TransportError):
    """The other end closed or vanished."""


class ConfigError(TagioError):
    """A setting or command-line value is unusable."""
