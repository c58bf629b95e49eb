#!/usr/bin/env python3
"""TagIO client entry point: the Tk window, or with --cli the command-line client.

    tagio-gui                      open the window
    tagio-gui --cli host           share this screen (prints ID and one-time password)
    tagio-gui --cli connect ID     view and control a partner
    tagio-gui --help | --version

The one argument parser lives in tagio.entry, which hands the parsed options to the window
(tagio.ui) or to the command line (tagio.cli), so the frozen executable and this script behave alike.
"""

import sys

from tagio.client.settings import default_config_dir
from tagio.entry import main
from tagio.platform import prepare_std_streams, set_dpi_awareness, tell_user

if __name__ == "__main__":
    # The windowed Windows executable starts without stdout/stderr: attach to the starting
    # console for --cli/--version/--help, else log to the config folder. Elsewhere a no-op.
    prepare_std_streams(default_config_dir(), sys.argv[1:])
    # Windows: per-monitor DPI awareness before Tk and capture start (the first call decides).
    set_dpi_awareness()
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit as exc:   # argparse's usage errors went to the log: say so in a box too
        if exc.code not in (0, None):
            tell_user("TagIO cannot start with: " + " ".join(sys.argv[1:])[:300])
        raise
