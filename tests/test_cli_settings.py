"""End to end: a hand-edited settings.json with a value of the wrong type, through the real program.

`tagio-gui.py --cli connect` with a settings file whose "relay" is a number (and a good desk name
and frame rate): the program starts, says once, in one plain warning line, that the relay setting
was not valid and is back to its default, and goes on (here to a relay address given with --relay
that nobody listens on, so it ends with the relay error, exit 4). The file is left as it was.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from tests.test_e2e import GUI, free_port

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 60


class WrongTypeInSettingsTest(unittest.TestCase):
    def test_a_number_for_the_relay_is_one_warning_and_the_file_is_left_alone(self):
        with tempfile.TemporaryDirectory() as tmp:
            settings = {"relay": 12, "desk_name": "Front desk", "fps_cap": 12}
            (Path(tmp) / "settings.json").write_text(json.dumps(settings))
            nowhere = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
            env = {k: v for k, v in os.environ.items()
                   if k not in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "TAGIO_PASSWORD", "DISPLAY")}
            done = subprocess.run([sys.executable, GUI, "--cli", "connect", "123456789", "--password",
                                   "whatever1", "--json", "--relay", nowhere, "--config-dir", tmp],
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=str(ROOT),
                                  env=dict(env, PYTHONPATH=str(ROOT)))
            lines = [json.loads(line) for line in done.stdout.splitlines()]
            self.assertEqual(done.returncode, 4, done.stderr)
            warnings = [line for line in lines if line["event"] == "warning"]
            self.assertEqual(len(warnings), 1, lines)
            self.assertEqual(warnings[0]["message"], "Some settings were not valid and are back to "
                                                     "their defaults: relay.")
            self.assertEqual(lines[-1]["kind"], "relay_unreachable")
            self.assertNotIn("Traceback", done.stderr)
            self.assertEqual(json.loads((Path(tmp) / "settings.json").read_text()), settings)


if __name__ == "__main__":
    unittest.main()
