"""Atomic file and folder writes: a reader sees the old content or the new, never a torn mix.

The recipe (POSIX rename semantics, also what ``os.replace`` gives on Windows for files):

1. write into a temporary sibling in the *same* directory (a rename is atomic only within one
   file system),
2. flush and ``os.fsync`` the data, so the rename cannot reach the disk before the bytes do,
3. ``os.replace`` the temporary onto the final name,
4. ``os.fsync`` the directory, so the rename itself survives a power cut.

It lives in ``models`` because both layers save what the user makes (the viewer: labels, exports, settings
files; the models: bundles) and ``viewer`` may import ``models`` but not the reverse. Qt-free, torch-free.

Temporaries are created with mode ``0o666`` / ``0o777`` filtered by the process umask, so the final
file or folder gets the permissions a plain ``open()`` / ``mkdir()`` would have given it (``mkstemp``
and ``mkdtemp`` would leave them private to the owner).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output_path", "atomic_replace_dir", "atomic_write_bytes", "atomic_write_text", "fsync_dir",
           "move_dir_into_place"]


def _temp_sibling(final: Path, kind: str) -> Path:
    """A hidden, unique name next to ``final``, e.g. ``.IM0001.dcm.tmp-3f9a…``."""
    return final.with_name(f".{final.name}.{kind}-{secrets.token_hex(6)}")


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (new names, renames) to disk.

    Windows cannot open a directory for syncing and orders metadata itself; there this is a no-op.
    """
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o666) -> Path:
    """Write ``data`` to ``path`` so that ``path`` always holds either its old or its new content.

    Parameters
    ----------
    path:
        Final file name. Its directory must exist.
    data:
        The complete new content.
    mode:
        Permissions of the new file (less the umask); 0o600 for what only its owner may read.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    final = Path(path)
    tmp = _temp_sibling(final, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    with _replacing(tmp, final):
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return final


@contextlib.contextmanager
def _replacing(tmp: Path, final: Path) -> Iterator[None]:
    """Rename the written ``tmp`` onto ``final`` once the body succeeds, then sync the folder;
    remove ``tmp`` if the body (or the rename) fails."""
    try:
        yield
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8", mode: int = 0o666) -> Path:
    """Text version of :func:`atomic_write_bytes` (no newline translation: ``\\n`` stays ``\\n``)."""
    return atomic_write_bytes(path, text.encode(encoding), mode)


def _fsync_tree(root: Path) -> None:
    """fsync every regular file and every directory below ``root`` (``root`` included)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the system or the file system cannot (other platforms, old kernels or C
    libraries, some network file systems); the caller then falls back to two renames.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))


def move_dir_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``, replacing an existing ``final`` folder whole.

    ``os.replace`` cannot replace a non-empty directory. On Linux the two folders are exchanged in one
    atomic step, so ``final`` is never absent, and the old one (now under ``tmp``'s name) is removed.
    Elsewhere an old ``final`` is first renamed aside, then removed once the new one is in place: in the
    short window between the two renames ``final`` is absent, never partial; if the second rename fails
    the old folder is put back.
    """
    if final.is_dir() and not final.is_symlink() and _exchange(tmp, final):
        fsync_dir(final.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old: Path | None = None
    if final.exists():
        old = _temp_sibling(final, "old")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_replace_dir(final_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place only if the block succeeds.

    Parameters
    ----------
    final_dir:
        Folder to create or replace. Its parent is created if missing.

    Yields
    ------
    Path
        An empty temporary sibling folder to fill.

    Notes
    -----
    On success every file in the temporary folder is fsynced, the folder is renamed to
    ``final_dir`` (replacing a previous one whole) and the parent is fsynced. On any exception,
    including ``KeyboardInterrupt`` and a cancelling progress callback, the temporary folder is removed
    and ``final_dir`` is left exactly as it was. A process killed outright leaves a hidden
    ``.<name>.tmp-*`` sibling behind, which is safe to delete.

    Examples
    --------
    >>> with atomic_replace_dir(out) as tmp:          # doctest: +SKIP
    ...     (tmp / "IM0001.dcm").write_bytes(data)
    """
    final = Path(final_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(final, "tmp")
    os.mkdir(tmp, 0o777)
    try:
        yield tmp
        _fsync_tree(tmp)
        move_dir_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_output_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path for a writer that takes a file name (SimpleITK, Qt's image writer).

    The temporary keeps ``path``'s full suffix (``.nii.gz``) because such writers choose the format
    from it; on success it is fsynced and renamed onto ``path``, on error removed.
    """
    final = Path(path)
    tmp = final.with_name(f".tmp-{secrets.token_hex(6)}-{final.name}")
    with _replacing(tmp, final):
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
