#!/usr/bin/env python3
"""TagIO client entry point: the Tk window, or with --cli the command-line client.

    tagio-gui                      open the window
    tagio-gui --cli host           share this screen (prints ID and one-time password)
    tagio-gui --cli connect ID     view and control a partner
    tagio-gui --help | --version

All argument handling lives in tagio.client.cli so the frozen executable and this script behave alike.
"""

import sys

from tagio.client.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
