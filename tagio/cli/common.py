"""What the host and connect commands share: the Client they run, the stop signal, stdin passwords.

Theory of operation: `make_client(args, out, **kwargs)` builds the one Client of the process from the
parsed options (settings folder, relay, LAN, the relay secret from the environment) and `running(client)`
starts it and always closes it. `StopSignal` is set by SIGINT/SIGTERM; while the main thread is blocked
in a call that cannot watch it (registering, connecting) the handler interrupts it instead.
"""

import contextlib
import logging
import os
import signal
import sys
import threading

from tagio.errors import ConfigError

ENV_RELAY_SECRET = "TAGIO_RELAY_SECRET"
MAX_PASSWORD_LINE = 1024


class StopSignal(threading.Event):
    """Set by SIGINT/SIGTERM. While `polling` is False the main thread is blocked in a call that
    cannot watch the event (registering, connecting), so the handler interrupts it instead."""

    polling = False


def install_signals(stop):
    def handler(signum, frame):
        stop.set()
        if not stop.polling:
            raise KeyboardInterrupt
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


@contextlib.contextmanager
def running(client):
    """Start the client and always close it; an error while closing never hides the error that
    ended the command (it is logged instead), and is raised only when all else went well."""
    client.start()
    try:
        yield client
    except BaseException:
        try:
            client.close()
        except Exception:
            logging.getLogger("tagio").debug("error while closing the client", exc_info=True)
        raise
    client.close()


def make_client(args, out, **kwargs):
    from tagio.client.core import Client
    from tagio.client.settings import Settings, default_config_dir
    config_dir = args.config_dir or default_config_dir()
    settings = Settings.load(config_dir)
    if os.environ.get(ENV_RELAY_SECRET):          # for this run only; never written to the file
        settings.relay_secret = os.environ[ENV_RELAY_SECRET]
    if settings.warning:
        out.event("warning", f"warning: {settings.warning}", message=settings.warning)
    client = Client(config_dir, relay=args.relay, settings=settings, lan=lan_options(args), **kwargs)
    out.relay = client.relay_url          # error lines name the relay: no status bar shows it here
    return client


def add_accept_new_key(command):
    """connect, send and get: --accept-new-key (client/pins.py: the partner's key changed)."""
    command.add_argument("--accept-new-key", action="store_true",
                         help="trust the partner's key although it is not the one this desk knew "
                              "(exit status 6 says it changed); only after checking with your partner")


def lan_options(args):
    """LanService options for --lan; --lan-target ADDR (tests: 127.255.255.255) replaces broadcast."""
    if not getattr(args, "lan", False):
        return None
    options = {}
    if getattr(args, "lan_target", None):
        options["targets"] = tuple(args.lan_target)
    if getattr(args, "lan_port", None):
        options["lan_port"] = args.lan_port
    if getattr(args, "lan_interval", None):
        options["interval"] = args.lan_interval
    return options or True


def password_from_stdin():
    line = sys.stdin.readline(MAX_PASSWORD_LINE) if sys.stdin is not None else ""
    if not line.strip():
        raise ConfigError("--password -: no password on standard input")
    return line.rstrip("\r\n")
