"""Write-then-rename: a killed run leaves the old output or the new one, never half of one.

`atomic_path` (a file) and `atomic_dir` (a folder) are context managers for a
block that writes everything; `AtomicOutput` is the same with an explicit
`AtomicOutput.commit`, for outputs written across several steps (a Tool's
setup, start and finish). The temporary lives in the target's directory, so the
final rename never crosses file systems.
"""

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path

__all__ = ["AtomicOutput", "atomic_dir", "atomic_path"]

#: attempts at a free temporary name before giving up
_MAX_TRIES = 100


@contextlib.contextmanager
def atomic_path(path, *, suffix=".tmp"):
    """Yield a temporary file path next to ``path``; it replaces ``path`` if the block succeeds.

    The temporary exists (empty) when the block starts; on any exception,
    KeyboardInterrupt included, it is removed and an old ``path`` stays as it was.
    """
    with AtomicOutput(path, suffix=suffix) as output:
        yield output.tmp
        output.commit()


@contextlib.contextmanager
def atomic_dir(path, *, suffix=".tmp", overwrite=True):
    """Yield an empty temporary directory next to ``path``; it becomes ``path`` if the block succeeds.

    An existing ``path`` is replaced at the end only (``overwrite=False``:
    `FileExistsError` instead, the temporary removed).
    """
    with AtomicOutput(path, directory=True, suffix=suffix, overwrite=overwrite) as output:
        yield output.tmp
        output.commit()


class AtomicOutput:
    """A temporary file or directory ``tmp`` next to ``path`` that becomes ``path`` on `commit`.

    Leaving the ``with`` block (or calling `discard`) without a commit removes
    the temporary. The temporary gets the permissions of any new file or
    directory (the umask applies), not the owner-only ones of `tempfile`.
    """

    def __init__(self, path, *, directory=False, suffix=".tmp", overwrite=True):
        self.path = Path(path)
        self.directory = directory
        self.overwrite = overwrite
        self.committed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _create_temporary(self.path, suffix, directory)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if not self.committed:
            self.discard()

    def commit(self):
        """Flush the temporary to disk and rename it to ``path``."""
        if self.committed:
            raise RuntimeError(f"{self.path}: already committed")
        if self.directory:
            _fsync_tree(self.tmp)
            _replace_directory(self.tmp, self.path, self.overwrite)
        else:
            _fsync(self.tmp)
            os.replace(self.tmp, self.path)
        self.committed = True
        _fsync_directory(self.path.parent)

    def discard(self):
        """Remove the temporary (nothing happens to ``path``)."""
        _remove(self.tmp)


def _create_temporary(path, suffix, directory):
    """A new hidden ``.<name>.<random><suffix>`` next to ``path``, made with the default modes."""
    for _ in range(_MAX_TRIES):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            if directory:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def _replace_directory(tmp, path, overwrite):
    """Rename ``tmp`` to ``path``; an old ``path`` is moved aside first and removed after.

    A non-empty directory cannot be renamed over: moving the old one aside keeps
    it whole until the new one is in place, and puts it back if that fails.
    """
    if path.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "exists", str(path))
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
    try:
        return _rename_new(tmp, path)
    except FileExistsError:
        if not overwrite:  # another process made it meanwhile
            raise
    old = _create_temporary(path, ".old", directory=True)
    os.replace(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def _rename_new(tmp, path):
    """Rename onto a path that is absent (or an empty directory); `FileExistsError` otherwise."""
    try:
        os.rename(tmp, path)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        raise


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync(path):
    """Flush a file's data to disk (a read-only descriptor is enough on POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path):
    """Make the entries (renames) of a directory durable, where the OS allows opening directories."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _fsync_tree(root):
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                _fsync(path)
        _fsync_directory(directory)
