"""The layers of docs/architecture.md, checked: no import in tagio/ runs back up a layer.

Each room (a package or a top-level module of tagio/) has a floor; a module may import its own
room and rooms on lower floors only, so two rooms on one floor (session and relay, ui and cli)
never import each other either. The imports are read with `ast` (lazy imports inside functions
count too), so the check needs no display, sockets or third-party packages.
"""

import ast
import unittest
from pathlib import Path

LAYER = "unit"
ROOT = Path(__file__).resolve().parent.parent / "tagio"

FLOORS = {
    "errors": 0, "platform": 0,
    "protocol": 1,
    "net": 2,
    "crypto": 3,
    "session": 4, "relay": 4,
    "client": 5,
    "ui": 6, "cli": 6,
    "entry": 7,
}


def room_of(path: Path) -> str:
    return path.relative_to(ROOT).with_suffix("").parts[0]


def imported_rooms(tree):
    """(line, room) for every `tagio.<room>` a module imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tagio"):
            parts = node.module.split(".")
            names = [alias.name for alias in node.names] if len(parts) == 1 else [parts[1]]
            yield from ((node.lineno, name) for name in names)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name.split(".")[1]) for alias in node.names
                        if alias.name.startswith("tagio."))


def upward_imports():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        room = room_of(path)
        if room == "__init__":
            continue
        for line, target in imported_rooms(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if target != room and target in FLOORS and FLOORS[target] >= FLOORS[room]:
                found.append(f"{path.relative_to(ROOT.parent)}:{line}: {room} -> {target}")
    return found


class LayersTest(unittest.TestCase):
    def test_every_room_has_a_floor(self):
        rooms = {room_of(p) for p in ROOT.rglob("*.py")} - {"__init__"}
        self.assertEqual(sorted(rooms - set(FLOORS)), [], "rooms missing from docs/architecture.md's layers")

    def test_no_import_runs_back_up_a_layer(self):
        self.assertEqual(upward_imports(), [])

    def test_the_check_sees_an_upward_import(self):
        tree = ast.parse("from tagio.ui import app\nimport tagio.session.host\nfrom tagio import errors\n")
        self.assertEqual(list(imported_rooms(tree)), [(1, "ui"), (2, "session"), (3, "errors")])


if __name__ == "__main__":
    unittest.main()
