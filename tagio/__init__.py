"""TagIO: a secure, self-hostable remote desktop."""

__version__ = "0.1.0"
# The public relay runs on Render, whose edge passes only HTTPS: the relay protocol rides a
# WebSocket there (same host, port 443). A self-hosted relay is usually plain `host:port`.
DEFAULT_RELAY = "wss://tagio-server.onrender.com/tagio"
