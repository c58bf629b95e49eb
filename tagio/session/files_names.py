"""What a received file or folder may be called: the receiver's check of every path a partner sends.

Theory of operation: a path on the wire is relative, names joined by "/". `check_path` splits it and
refuses, with a sentence a person understands, anything that could leave the chosen folder or that
some disk cannot hold: empty names, "." and "..", a leading "/" or "\\", drive letters ("C:"),
backslashes, NUL and other control characters, characters Windows forbids (<>:"|?*), Windows
reserved device names (CON, NUL, COM1, ... with or without an extension), names ending in a dot or a
space, names over 255 bytes, too deep a tree, and names we use for our own temporary files. It is
pure (no disk access): the folder-side checks (symlinks, existing files) are files_disk's.

`CaseFolder` finds names that differ only in case within one offer: on a case-insensitive disk
(Windows, macOS) they would land on the same file, so the second one is refused everywhere.
"""

import re

from tagio.errors import TagioError

MAX_NAME = 255              # bytes of UTF-8 in one name (most file systems)
MAX_DEPTH = 32              # folders deep in one transfer
PART_SUFFIX = ".tagio-part"  # a file being received: never a name a partner may send
_FORBIDDEN = set('<>:"|?*\\')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10)), "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
_DRIVE = re.compile(r"^[A-Za-z]:")


class FileRefused(TagioError):
    """One file or folder we will not write or read (its name, its place, no room, ...): that entry
    is refused with this sentence on both sides; the transfer and the session go on."""


class UnsafeName(FileRefused):
    """A path the partner sent that could leave the folder or that some disk cannot hold."""


def _check_name(name, path):
    """Raise UnsafeName when one component of `path` is not a safe file name. A table of
    (test, reason) would read no better: each test needs its own reason with the name in it."""
    if name in ("", ".", ".."):
        raise UnsafeName(f"{path!r}: the name {name!r} would leave the folder" if name == ".."
                         else f"{path!r}: empty or '.' name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafeName(f"{path!r}: a name holds a NUL or control character")
    bad = _FORBIDDEN.intersection(name)
    if bad:
        raise UnsafeName(f"{path!r}: the name {name!r} holds {''.join(sorted(bad))!r}, "
                         f"which Windows does not allow")
    if name.split(".")[0].rstrip(" ").upper() in _RESERVED:
        raise UnsafeName(f"{path!r}: {name!r} is a reserved device name on Windows")
    if name[-1] in ". ":
        raise UnsafeName(f"{path!r}: the name {name!r} ends in a dot or a space")
    if len(name.encode("utf-8")) > MAX_NAME:
        raise UnsafeName(f"{path!r}: a name is longer than {MAX_NAME} bytes")
    if name.endswith(PART_SUFFIX):
        raise UnsafeName(f"{path!r}: names ending in {PART_SUFFIX} are kept for partly received files")


def check_path(path, allow_empty=False) -> tuple:
    """The names of relative path `path` ("a/b/c" -> ("a", "b", "c")). Raises UnsafeName."""
    if path == "" and allow_empty:
        return ()
    if path.startswith(("/", "\\")) or _DRIVE.match(path):
        raise UnsafeName(f"{path!r} is an absolute path; only names inside the folder are allowed")
    names = tuple(path.split("/"))
    if len(names) > MAX_DEPTH:
        raise UnsafeName(f"{path!r} is more than {MAX_DEPTH} folders deep")
    for name in names:
        _check_name(name, path)
    return names


class CaseFolder:
    """Remembers the paths of one offer, compared as a case-insensitive disk would."""

    def __init__(self):
        self._seen = {}

    def add(self, names):
        """Raise UnsafeName when `names` differs from a path seen before only in case."""
        key = tuple(n.casefold() for n in names)
        first = self._seen.setdefault(key, names)
        if first != names:
            raise UnsafeName(f"{'/'.join(names)!r} and {'/'.join(first)!r} differ only in case: "
                             f"one would overwrite the other on Windows or macOS")
        if first is not names:
            raise UnsafeName(f"{'/'.join(names)!r} is offered twice")
