"""The README's install command brings what `pip install -r requirements.txt` needs on a fresh Debian.

Theory of operation. PyPI has no binary wheel for some requirement of a requirement (pynput needs
evdev on Linux, published as source only), so pip compiles it: that needs a C compiler and the
Python headers, which a fresh Debian 12 or Ubuntu desktop does not have. Such a package shows
itself in the environment the tests run in: pip built its wheel here, so the wheel's platform tag is
a plain `linux_<arch>` (PyPI accepts only manylinux/musllinux tags for Linux wheels). For every
requirement and everything it pulls in that was built like that, the README's install line must
install `gcc` and `python3-dev` with the other Debian packages. Where pip found wheels for
everything, there is nothing to check.
"""

import importlib.metadata as metadata
import re
import unittest
from pathlib import Path

LAYER = "unit"  # pure: reads files and installed package metadata only

ROOT = Path(__file__).resolve().parent.parent
BUILD_TOOLS = ("gcc", "python3-dev")


def requirement_names(text):
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0])
    return names


def closure(names):
    """The installed distributions these names need on this platform, themselves included."""
    seen, todo = {}, list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for requirement in dist.requires or ():
            if ";" in requirement and not _marker_holds(requirement.split(";", 1)[1]):
                continue
            todo.append(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0])
    return seen


def _marker_holds(marker):
    """The few environment markers requirements use here ("extra" never holds: no extras installed)."""
    import sys
    if "extra" in marker:
        return False
    if "sys_platform" in marker:
        platforms = re.findall(r"['\"]([^'\"]+)['\"]", marker)
        return any(p in sys.platform for p in platforms) != ("!=" in marker or "not in" in marker)
    return True


def built_here(dist) -> bool:
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    return any(re.search(r"-linux_\w+$", tag) for tag in tags)


class ReadmeInstallTest(unittest.TestCase):
    def test_install_line_brings_a_compiler_when_pip_builds_from_source(self):
        names = requirement_names((ROOT / "requirements.txt").read_text())
        compiled = sorted(name for name, dist in closure(names).items() if built_here(dist))
        if not compiled:
            self.skipTest("every requirement came as a binary wheel here")
        readme = (ROOT / "README.md").read_text()
        line = re.search(r"^apt-get install -y (.*?)&&", readme, re.M)
        self.assertIsNotNone(line, "no 'apt-get install -y ... &&' install line in the README")
        packages = line.group(1).split()
        for tool in BUILD_TOOLS:
            self.assertIn(tool, packages, f"pip compiles {', '.join(compiled)} from source: the README's "
                                          f"install line must install {tool}")


if __name__ == "__main__":
    unittest.main()
