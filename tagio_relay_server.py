"""Entry point of the TagIO relay server: `python tagio_relay_server.py --help`."""

import sys

from tagio.relay.cli import main

if __name__ == "__main__":
    sys.exit(main())
