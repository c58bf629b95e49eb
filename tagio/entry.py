"""The one entry of tagio-gui: parse the command line once, then hand it to one of two front ends.

Theory of operation: `build_parser()` is the only argument parser of the client executable. Without
`--cli` (and without a command) the parsed options go to the Tk window (`tagio.ui.app.main`); with
`--cli host` or `--cli connect ID` they go to the command line (`tagio.cli.run`). Neither front end
parses argv again. Options common to both (`--config-dir`, `--relay`, `--json`, ...) are accepted
before and after the command; the window uses only `config_dir` and `relay`.

`--help`, `--version` and usage errors are argparse's (exit 0 and 2); the front ends return the
process exit status (see tagio.client.words for the command line's statuses).
"""

import argparse
import sys

import tagio
from tagio.client.resume import RESUME_TTL
from tagio.client.settings import format_address, parse_address, parse_relay
from tagio.client.words import EXIT_ERROR
from tagio.errors import ConfigError

EPILOG = ("Environment: TAGIO_CONFIG_DIR, TAGIO_RELAY (HOST:PORT or URL), TAGIO_RELAY_CA, "
          "TAGIO_RELAY_SECRET (private "
          "relay), TAGIO_PASSWORD (connect), TAGIO_OTP_LIFETIME (seconds an unused one-time "
          "password lives, 1 to 3600; default 3600). Exit status: 0 ok, 1 error, 2 usage or setup, "
          "3 wrong password, 4 relay problem or unknown ID, 5 partner gone, 6 the partner's key "
          "changed (see --accept-new-key), 130 interrupted. "
          "Windows: tagio-gui.exe is a window program; from cmd.exe run "
          "'start /wait tagio-gui.exe --cli ...' so that the prompt waits for it and questions "
          "read the console.")


# ---------------------------------------------------------------------------- value types

def _address(text):
    """HOST:PORT, or a URL tls:// ws:// wss:// (kept as typed once it parses)."""
    try:
        if "://" in text:
            parse_relay(text)
            return text.strip()
        return format_address(parse_address(text))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind, low, high):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value
    return parse


def _bind(text):
    """HOST[:PORT] for the direct listener, or "none" for no direct paths (relay only)."""
    if text.strip().lower() == "none":
        return None
    try:
        return parse_address(text, default_port=0, min_port=0)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------------- the parser

def _common_options(with_defaults):
    """Options accepted before and after the command. Only the top level sets defaults, because a
    subparser's defaults would overwrite a value given before the command."""
    common = argparse.ArgumentParser(add_help=False)
    if not with_defaults:
        common.argument_default = argparse.SUPPRESS
    common.add_argument("--config-dir", metavar="DIR", help="settings folder (also TAGIO_CONFIG_DIR)")
    common.add_argument("--relay", metavar="HOST:PORT", type=_address,
                        help="relay (also TAGIO_RELAY); tls://, ws:// or wss:// URLs for TLS or "
                             "HTTPS-only hosts")
    common.add_argument("--json", action="store_true", help="print one JSON object per line")
    common.add_argument("--verbose", action="store_true", help="log details (never secrets)")
    common.add_argument("--direct-bind", type=_bind, help=argparse.SUPPRESS,
                        **({"default": ("0.0.0.0", 0)} if with_defaults else {}))
    common.add_argument("--lan", action="store_true",
                        help="also announce and find partners on this network (works without a relay)")
    common.add_argument("--lan-target", action="append", help=argparse.SUPPRESS)
    common.add_argument("--lan-port", type=_positive(int, 1, 65535), help=argparse.SUPPRESS)
    common.add_argument("--lan-interval", type=_positive(float, 0.05, 60), help=argparse.SUPPRESS)
    return common


def _host_command(commands, common):
    host = commands.add_parser("host", parents=[common], help="share this screen")
    host.add_argument("--password", metavar="PW",
                      help="also accept this password (unattended access; at least 10 characters); "
                           "'-' reads it from stdin")
    host.add_argument("--view-only", action="store_true", help="ignore the viewer's mouse and keys")
    host.add_argument("--monitor", type=_positive(int, 1, 16), default=1, metavar="N",
                      help="which screen to share (1 = the first)")
    host.add_argument("--no-clipboard", action="store_true",
                      help="do not share the clipboard with viewers (it is never shared in --view-only)")
    host.add_argument("--fps", type=_positive(int, 1, 60), metavar="N", help="frame-rate cap")
    host.add_argument("--quality", type=_positive(int, 10, 95), metavar="Q", help="JPEG quality")
    host.add_argument("--files-dir", metavar="DIR",
                      help="accept files into DIR, the only folder a partner may list or fetch from")
    host.add_argument("--chat-stdin", action="store_true", help="send each line typed on stdin as chat")


def _connect_command(commands, common):
    view = commands.add_parser("connect", parents=[common], help="view and control a partner")
    view.add_argument("partner_id", metavar="ID", help="the partner's 9-digit ID")
    view.add_argument("--password", metavar="PW",
                      help="the partner's password; '-' reads it from standard input (else asked)")
    view.add_argument("--snapshot", metavar="FILE.png", help="save the last screen received")
    view.add_argument("--duration", type=_positive(float, 0, 86400), metavar="SECONDS",
                      help="end the session after this long")
    view.add_argument("--no-clipboard", action="store_true", help="do not share the clipboard")
    view.add_argument("--reconnect-for", type=_positive(float, 0, RESUME_TTL), default=RESUME_TTL,
                      metavar="SECONDS", help=f"when the connection breaks, try to bring the session "
                      f"back for this long (0 = not at all; at most and by default {RESUME_TTL:.0f})")
    view.add_argument("--timeout", type=_positive(float, 1, 120), default=15.0, help=argparse.SUPPRESS)
    view.add_argument("--script", metavar="FILE", help=argparse.SUPPRESS)
    view.add_argument("--chat", metavar="TEXT", action="append", help="send this chat line once connected")
    from tagio.cli.common import add_accept_new_key
    add_accept_new_key(view)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tagio-gui", description="TagIO remote desktop. Without --cli the window opens.",
        parents=[_common_options(with_defaults=True)], epilog=EPILOG)
    common = _common_options(with_defaults=False)
    parser.add_argument("--version", action="version", version=f"TagIO {tagio.__version__}")
    parser.add_argument("--cli", action="store_true", help="run without a window: host or connect")
    commands = parser.add_subparsers(dest="command", metavar="{host,connect,send,get}",
                                     prog="tagio-gui --cli")
    _host_command(commands, common)
    _connect_command(commands, common)
    from tagio.cli.transfer import add_commands
    add_commands(commands, common)
    return parser


# ---------------------------------------------------------------------------- dispatch

def main(argv=None) -> int:
    """Parse argv (default sys.argv[1:]) once and run the chosen front end; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        if args.cli:
            parser.error("--cli needs a command: host or connect")
        return open_window(args)
    from tagio.cli import run
    return run(args)


def open_window(options) -> int:
    """The Tk front end; a Python without tkinter gets one line pointing at --cli."""
    try:
        from tagio.ui.app import main as window_main
    except ImportError as exc:
        print(f"tagio: the window is not available ({exc}); use --cli host or --cli connect ID",
              file=sys.stderr)
        return EXIT_ERROR
    return window_main(options)
