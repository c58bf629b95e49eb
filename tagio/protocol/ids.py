"""TagIO IDs: the one place that says what an ID looks like.

Theory of operation. An ID is nine decimal digits, the first not 0 (100 000 000 .. 999 999 999),
derived from the client's Ed25519 public key (`id_from_public_key`: SHA-256 over a domain label and
the key, reduced into that range), so the relay can bind ID -> key on first use and later demand a
signature. People read it in groups of three ("123 456 789"); `normalize_id` accepts what they type
(spaces, dashes) and `format_id` shows it. The wire codecs (relay, LAN, direct preamble) carry the
nine ASCII digits.
"""

import hashlib

from tagio.errors import ConfigError, IdentityError

ID_DIGITS = 9
PUBLIC_KEY_LEN = 32
_ID_DOMAIN = b"TagIO-ID-v1"
_SEPARATORS = " -\t"


def is_valid_id(text: str) -> bool:
    """True for exactly nine ASCII digits, the first not 0 (no separators)."""
    return (isinstance(text, str) and len(text) == ID_DIGITS and text.isascii() and text.isdigit()
            and text[0] != "0")


def id_from_public_key(public_key: bytes) -> str:
    """The 9-digit ID (as a string of digits, no spaces) for a raw Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_LEN:
        raise IdentityError(f"public key must be {PUBLIC_KEY_LEN} bytes, got {len(public_key)}")
    digest = hashlib.sha256(_ID_DOMAIN + public_key).digest()
    return str(int.from_bytes(digest[:8], "big") % 900_000_000 + 100_000_000)


def normalize_id(text: str) -> str:
    """Accept '123 456 789', '123-456-789' or '123456789'; raise ConfigError otherwise."""
    digits = "".join(ch for ch in str(text) if ch not in _SEPARATORS)
    if len(digits) != ID_DIGITS or not digits.isdigit() or digits[0] == "0":
        raise ConfigError(f"not a TagIO ID: {text!r} (expected 9 digits like 123 456 789)")
    return digits


def format_id(tagio_id: str) -> str:
    """'123456789' -> '123 456 789' for display."""
    digits = normalize_id(tagio_id)
    return f"{digits[0:3]} {digits[3:6]} {digits[6:9]}"
