"""Changes a partner may make in the host's files folder: new folder, rename, delete.

Theory of operation. The viewer's files panel sends MkDir / Rename / Delete (tagio.protocol.files);
the host's FileEngine hands each to `answer(folder, msg)`, which returns the one Changed reply
("" done, else a sentence). The same safety as for received files holds: every path goes through
files_names.check_path (no "..", no absolute path, no reserved or temporary names) and
files_disk.Folder.place (no symbolic link on the way that leads outside the folder), the folder
itself can be neither renamed nor deleted, a rename never replaces an existing name, and a delete
removes a symbolic link itself, never what it points to (shutil.rmtree does not follow links
inside a folder either). Without a files folder everything is refused.
"""

import os
import shutil

from tagio.protocol import files as f
from tagio.session.files_disk import disk_words
from tagio.session.files_names import FileRefused, check_path


def make_dir(folder, path):
    """Create folder `path` under `folder` (a files_disk.Folder). Raises FileRefused."""
    names = check_path(path)
    parent = folder.place(names[:-1])
    if not parent.is_dir():
        raise FileRefused(f"{'/'.join(names[:-1]) or 'the folder'} is not a folder")
    target = folder.place(names)
    try:
        target.mkdir()
    except FileExistsError:
        raise FileRefused(f"{path} exists already") from None
    except OSError as exc:
        raise FileRefused(disk_words(exc, parent)) from None


def rename(folder, path, new_path):
    """Give `path` the name `new_path` (both relative to `folder`); never over an existing name.
    Raises FileRefused."""
    source = folder.place(check_path(path))
    names = check_path(new_path)
    target = folder.place(names)
    if not os.path.lexists(source):
        raise FileRefused(f"{path} does not exist")
    if os.path.lexists(target):
        raise FileRefused(f"{new_path} exists already: choose another name")
    if not folder.place(names[:-1]).is_dir():
        raise FileRefused(f"{'/'.join(names[:-1])} is not a folder")
    if (new_path + "/").startswith(path + "/"):
        raise FileRefused(f"{path} cannot go inside itself")
    try:
        os.rename(source, target)
    except OSError as exc:
        raise FileRefused(disk_words(exc, target.parent)) from None


def delete(folder, path):
    """Delete file or folder `path` (a folder with everything in it; a link, not its target).
    Raises FileRefused."""
    target = folder.place(check_path(path))
    try:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()
        else:
            raise FileRefused(f"{path} does not exist")
    except OSError as exc:
        raise FileRefused(disk_words(exc, target.parent)) from None


# request message type -> (what it does, its arguments)
ACTIONS = {
    f.MkDir: lambda folder, msg: make_dir(folder, msg.path),
    f.Rename: lambda folder, msg: rename(folder, msg.path, msg.new_path),
    f.Delete: lambda folder, msg: delete(folder, msg.path),
}


def answer(folder, msg, no_permission) -> "f.Changed":
    """Do what `msg` asks in `folder` (None: no files folder, refused with `no_permission`)."""
    if folder is None:
        return f.Changed(msg.req, no_permission)
    try:
        ACTIONS[type(msg)](folder, msg)
    except FileRefused as exc:
        return f.Changed(msg.req, str(exc)[:f.MAX_TEXT])
    return f.Changed(msg.req, "")
