"""The disk side of file transfer: the one folder a partner may use, walking trees, resume hashes.

Theory of operation. `Folder(root)` is the only way the engine (tagio.session.files) turns a path a
partner sent into a place on disk: `place(names)` joins the already-checked names (files_names) under
the root and refuses a symlink on the way that points outside the root, so nothing is ever read or
written outside it. `make_dirs` creates folders one name at a time with the same check. A file
being received is written to `<name>.tagio-part` next to its final place and only `commit()`ed to
the final name after its SHA-256 matched; commit never replaces a file unless the receiver decided
to overwrite (a hard link fails when the name exists, so no check-then-rename race).

`walk(path)` lists what a sender offers: the folder itself, then what it holds (folders before their
content, so empty folders are kept), never following symlinks (a link is skipped and reported). A
resume compares `block_hashes` of the part the receiver holds with the sender's own file.

`PARTS` makes each part single-writer in this process: two sessions that receive the same name,
or a session resumed after a reconnect while the broken one is still being torn down, take turns
instead of writing one part at once (the second waits for the first to close it).
"""

import errno
import hashlib
import os
import stat
import threading
from pathlib import Path

from tagio.protocol import files as f
from tagio.session.files_names import MAX_DEPTH, PART_SUFFIX, FileRefused

READ_SIZE = 1 << 20
CLAIM_WAIT = 5.0            # seconds a part waits for the transfer that still writes it


class PartClaims:
    """Which transfer writes which part (paths, any thread)."""

    def __init__(self):
        self._owners = {}
        self._cond = threading.Condition()

    def claim(self, part, owner, timeout=None) -> bool:
        """Make `owner` the part's one writer, waiting up to `timeout` (None: CLAIM_WAIT) seconds
        for another to let go."""
        key = os.path.abspath(part)
        wait = CLAIM_WAIT if timeout is None else timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._owners.get(key, owner) is owner, wait):
                return False
            self._owners[key] = owner
            return True

    def release(self, part, owner):
        key = os.path.abspath(part)
        with self._cond:
            if self._owners.get(key) is owner:
                del self._owners[key]
                self._cond.notify_all()


PARTS = PartClaims()


class Folder:
    """A root folder and the checked paths under it."""

    def __init__(self, root):
        self.root = Path(root).absolute()
        self.real = Path(os.path.realpath(self.root))
        if not self.root.is_dir():
            raise FileRefused(f"the folder {self.root} does not exist")

    def place(self, names) -> Path:
        """root/names..., refusing a symlink on the way that leads outside the root."""
        path = self.root
        for name in names:
            path = path / name
            if path.is_symlink():
                self._check_link(path)
        return path

    def _check_link(self, path):
        target = Path(os.path.realpath(path))
        if target != self.real and self.real not in target.parents:
            raise FileRefused(f"{path.relative_to(self.root)} is a symbolic link that points outside "
                              f"the folder ({target})")

    def make_dirs(self, names):
        """Create root/names... one folder at a time (existing folders are fine)."""
        for depth in range(1, len(names) + 1):
            path = self.place(names[:depth])
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise FileRefused(f"{'/'.join(names[:depth])} exists and is not a folder") from None
            except OSError as exc:
                raise FileRefused(disk_words(exc, path.parent)) from None
        return self.place(names)

    def relative(self, path) -> str:
        return Path(path).relative_to(self.root).as_posix()


def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def keep_both_name(target: Path) -> Path:
    """"name (1).ext", "name (2).ext", ... : the first that does not exist (nor its part)."""
    stem, suffix = target.stem, target.suffix
    for n in range(1, 1000):
        candidate = target.with_name(f"{stem} ({n}){suffix}")
        if not candidate.exists() and not part_path(candidate).exists():
            return candidate
    raise FileRefused(f"{target.name}: too many copies already")


def commit(part: Path, target: Path, replace: bool):
    """Give the verified part its final name. Without `replace` an existing file is never touched."""
    if replace:
        os.replace(part, target)
        return
    try:
        os.link(part, target)       # fails if the name exists: no window between check and rename
    except FileExistsError:
        raise FileRefused(f"{target.name} appeared while it was being received; kept as "
                          f"{part.name}") from None
    except OSError:                 # a file system without hard links
        if target.exists():
            raise FileRefused(f"{target.name} appeared while it was being received") from None
        os.rename(part, target)
        return
    os.unlink(part)


DISK_WORDS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is on a read-only disk",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
}


def disk_words(exc: OSError, where) -> str:
    """One sentence for a disk error, naming the folder."""
    words = DISK_WORDS.get(exc.errno, exc.strerror or str(exc))
    return f"{words} ({where})"


def writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    except (AttributeError, OSError):   # no statvfs (Windows): the write itself will tell
        import shutil
        return shutil.disk_usage(folder).free


def mtime_ns(st) -> int:
    return st.st_mtime_ns


def walk(path: Path, base: str, skipped: list):
    """Offer entries for local file or folder `path`, named `base` on the wire:
    [(relpath, kind, size, mtime_ns, local path)], folders before their content. `path` itself
    may be a symlink (a person picked it; on the host, Folder.place checked that it stays inside
    the folder); inside it, symlinks and other non-regular files are not followed: their relative
    paths go to `skipped`."""
    entries = []
    _walk(Path(path), base, entries, skipped, 1)
    return entries


def _walk(path, rel, entries, skipped, depth):
    st = os.stat(path) if depth == 1 else os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        entries.append((rel, f.KIND_FILE, st.st_size, st.st_mtime_ns, path))
    elif stat.S_ISDIR(st.st_mode):
        if depth > MAX_DEPTH:
            raise FileRefused(f"{rel} is more than {MAX_DEPTH} folders deep")
        entries.append((rel, f.KIND_DIR, 0, st.st_mtime_ns, path))
        with os.scandir(path) as items:
            names = sorted(item.name for item in items)
        for name in names:
            _walk(path / name, f"{rel}/{name}", entries, skipped, depth + 1)
    else:
        skipped.append(rel)


def block_size(offset: int) -> int:
    """Resume blocks: whole chunks, at most MAX_BLOCKS of them over `offset` bytes."""
    chunks = -(-offset // (f.CHUNK * f.MAX_BLOCKS))
    return max(1, chunks) * f.CHUNK


def block_hashes(fileobj, offset: int, block: int) -> bytes:
    """SHA-256 of each `block` bytes of the first `offset` bytes of `fileobj` (from its start), the
    last one partial; fewer when the file is shorter."""
    fileobj.seek(0)
    digests, done = [], 0
    while done < offset:
        want, h = min(block, offset - done), hashlib.sha256()
        got = _hash_into(fileobj, h, want)
        if got < want:
            break
        digests.append(h.digest())
        done += got
    return b"".join(digests)


def _hash_into(fileobj, h, count) -> int:
    """Read `count` bytes into hash `h` (streaming); the number read."""
    done = 0
    while done < count:
        data = fileobj.read(min(READ_SIZE, count - done))
        if not data:
            break
        h.update(data)
        done += len(data)
    return done


def hash_prefix(fileobj, count):
    """(sha256 object over the first `count` bytes, bytes read)."""
    fileobj.seek(0)
    h = hashlib.sha256()
    return h, _hash_into(fileobj, h, count)


def resume_start(fileobj, offset: int, block: int, hashes: bytes) -> int:
    """Where the sender starts: the first block whose hash differs from the receiver's (0 when the
    receiver's part is longer than our file)."""
    mine = block_hashes(fileobj, offset, block)
    start = 0
    for i in range(len(hashes) // 32):
        if mine[i * 32:(i + 1) * 32] != hashes[i * 32:(i + 1) * 32]:
            break
        start = min(offset, (i + 1) * block)
    return start


def listing(place, folder=None):
    """(entries [(name, kind, size, mtime_ns)], truncated) of a folder. A symlink is listed as what
    it points to only when that is inside `folder` (a Folder; without one, no link is listed): a
    link that leads out, or nowhere, is never shown, so never opened or followed."""
    entries = []
    with os.scandir(place) as items:
        for item in items:
            if len(entries) >= f.MAX_LISTING:
                return entries, True
            follow = item.is_symlink()
            if follow and not _link_inside(item.path, folder):
                continue
            try:
                st = item.stat(follow_symlinks=follow)
            except OSError:         # gone while listed
                continue
            kind = f.KIND_DIR if stat.S_ISDIR(st.st_mode) else f.KIND_FILE
            entries.append((item.name, kind, 0 if kind == f.KIND_DIR else st.st_size, st.st_mtime_ns))
    return sorted(entries), False


def _link_inside(path, folder) -> bool:
    if folder is None:
        return False
    target = Path(os.path.realpath(path))
    return os.path.exists(target) and folder.real in target.parents
