"""TagIO's test suite (run it with `python3 -m tests`).

Tests send traffic only to loopback or into network namespaces they create, so the window's LAN
discovery (UDP broadcast) is switched off for every process the tests start.
"""

import os

os.environ["TAGIO_LAN"] = "0"
