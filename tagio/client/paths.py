"""Thin adapter between the client core and the path-racing module (tagio.net.connect).

When tagio.net.connect is installed, `establish_channel` races direct TCP / punched UDP / relay through
it and `make_listener` opens its DirectListener. Without it (an older tree, or a build that left it out)
the session goes through the relay only: `handshake(relay.open_relay(token))`, and there is no listener.
The module is looked up with find_spec and then imported normally, so a bug inside it still shows up as
its own error instead of silently falling back.
"""

import importlib
import importlib.util

CONNECT_MODULE = "tagio.net.connect"


def _connect_module():
    try:
        if importlib.util.find_spec(CONNECT_MODULE) is None:
            return None
    except ImportError:
        return None
    return importlib.import_module(CONNECT_MODULE)


def make_listener(bind):
    """A DirectListener bound to `bind`, or None when direct paths are off or unavailable."""
    module = _connect_module() if bind is not None else None
    if module is None or not hasattr(module, "DirectListener"):
        return None
    return module.DirectListener(bind)


def establish_channel(peer, relay, handshake, *, listener=None, timeout=15.0):
    """A SecureChannel to `peer`, over the first path whose handshake finishes."""
    module = _connect_module()
    if module is not None and hasattr(module, "establish"):
        return module.establish(peer, relay, handshake, listener=listener, timeout=timeout)
    stream = relay.open_relay(peer.relay_token, timeout=timeout)
    try:
        return handshake(stream)
    except BaseException:
        stream.close()
        raise
