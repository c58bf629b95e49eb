"""TagIO: a secure, self-hostable remote desktop."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
DEFAULT_RELAY = "tagio-server.onrender.com:443"
