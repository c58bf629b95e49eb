"""The command line front end: `tagio-gui --cli host ...` and `tagio-gui --cli connect ID ...`.

Theory of operation: tagio/entry.py parses the arguments once and calls `run(args)` here for a
command. `run` sets up logging (one quiet line per problem; details with `--verbose`), turns
SIGINT/SIGTERM into a stop request, and calls the command from COMMANDS:

    host.py      share this screen: print the ID and one-time password, serve until stopped
    connect.py   view a partner: authenticate, run a ViewerSession, play a script, save a snapshot
    common.py    what both share: making and closing the Client, the stop signal, stdin passwords
    output.py    one line per event (text or JSON) and one line per error, with the exit status
    script.py    the `--script` input language for automated viewers
    transfer.py  send and get: files to and from a partner's files folder

Every failure becomes one line on stderr (plus an {"event": "error"} object with `--json`) and an
exit status: no tracebacks unless `--verbose`, and no secret except the host's own one-time password
in its ready line.
"""

import logging
import sys
import threading

from tagio.cli import connect, host, transfer
from tagio.cli.common import StopSignal, install_signals
from tagio.cli.output import EXIT_INTERRUPTED, Output
from tagio.errors import TagioError

COMMANDS = {"host": host.run_host, "connect": connect.run_connect, "send": transfer.run_send,
            "get": transfer.run_get}


def run(args) -> int:
    """Run the parsed command `args.command`; returns the process exit status."""
    setup_logging(args.verbose)
    out = Output(args.json)
    stop = StopSignal()
    install_signals(stop)
    try:
        return COMMANDS[args.command](args, out, stop)
    except KeyboardInterrupt:
        print("tagio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TagioError as exc:
        return out.error(exc)
    except Exception as exc:          # a bug: one line for the user, the traceback only with --verbose
        logging.getLogger("tagio").debug("unexpected error", exc_info=True)
        return out.error(exc)


def setup_logging(verbose):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tagio: %(message)s") if verbose else _QuietFormatter())
    root = logging.getLogger("tagio")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.ERROR)
    root.propagate = False
    threading.excepthook = _thread_excepthook


class _QuietFormatter(logging.Formatter):
    """One line per record: users see what went wrong, not a traceback."""

    def __init__(self):
        super().__init__("tagio: %(message)s")

    def formatException(self, ei):
        return ""

    def formatStack(self, stack_info):
        return ""


def _thread_excepthook(hook_args):
    logging.getLogger("tagio").error("thread %s stopped: %s",
                                     getattr(hook_args.thread, "name", "?"),
                                     hook_args.exc_type.__name__, exc_info=hook_args.exc_value)
