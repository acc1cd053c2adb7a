"""Files written so that no reader ever sees half of one, and where spikeops keeps its caches.

Output paths are checked before a command does any work (:func:`check_writable`); a file is
written under a temporary name and renamed into place (:func:`write_atomic`), a command's folder of
files is written into a hidden temporary folder and moved into its destination when whole (:func:`staged_folder`), and
the folders a failed command made before it found the error are removed again when empty
(:func:`first_missing`, :func:`remove_empty_folders`).

One variable moves every cache (:func:`spikeops.verif.env.cache_root`): ``$SPIKEOPS_CACHE``
(default ``~/.cache/spikeops``) holds the dequantised model checkpoints, under ``sweep/`` the
sweeps' stage results (a sweep without the variable keeps its cache beside its output,
``<out>/cache``; ``--cache`` overrides both) and under ``verilator-objects/`` Verilator's runtime
objects."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from spikeops.verif.env import CACHE_VARIABLE, cache_root

__all__ = ["write_atomic", "file_mode", "cache_root", "CACHE_VARIABLE", "check_writable", "first_missing", "remove_empty_folders",
           "staged_folder"]


def file_mode() -> int:
    """The mode ``open`` gives a new file here: ``0o666`` less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file of this process in the same folder,
    renamed into place: a killed writer leaves no torn file, and of two processes writing the same
    file one whole version wins."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would make every output private to its writer
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def staged_folder(out):
    """A temporary folder (hidden, in ``out`` or its nearest existing folder) to write a command's
    files into: when the block ends without an error, every file in it is renamed into the same
    place under ``out`` (made when missing; files already there and not written stay); on an
    error nothing lands in ``out``.  The temporary folder is removed either way."""
    out = Path(out)
    base = out  # inside out when it exists, else in its nearest existing folder (the same file system)
    while not base.is_dir() and base != base.parent:
        base = base.parent
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".spikeops-", suffix=".tmp"))
    try:
        yield tmp
        for f in sorted(p for p in tmp.rglob("*") if not p.is_dir()):
            dest = out / f.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path, option: str, *, folder: bool = False) -> Path:
    """Refuse an output path that cannot be written before any work is done: ValueError naming the
    option, the path, why, and what is allowed.  ``path`` may not exist yet (its folders are made
    when it is written); then its nearest existing ancestor must be a writable folder.  An existing
    ``path`` must be a folder when ``folder`` is true (an output folder), else not a folder."""
    path = Path(path)
    what = "folder" if folder else "file"
    allowed = f"allowed: a {what} path in a writable folder (missing folders are made)"
    if path.exists():
        if folder and not path.is_dir():
            raise ValueError(f"{option} {str(path)!r}: it is a file, not a folder; {allowed}")
        if not folder and path.is_dir():
            raise ValueError(f"{option} {str(path)!r}: it is a folder, not a file; {allowed}")
        place = path if folder else path.parent
    else:
        place = path.parent
        while not place.exists() and place != place.parent:
            place = place.parent
        if not place.is_dir():
            raise ValueError(f"{option} {str(path)!r}: {str(place)!r} is a file, so no folder can be made "
                             f"under it; {allowed}")
    if not os.access(place, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(path)!r}: the folder {str(place)!r} is not writable; {allowed}")
    return path


def first_missing(path) -> Path | None:
    """The outermost folder on the way to ``path`` (or ``path`` itself) that does not exist yet;
    None when ``path`` exists.  What a failed command may remove again (:func:`remove_empty_folders`)."""
    path = Path(path)
    if path.exists():
        return None
    top = path
    while not top.parent.exists() and top.parent != top.parent.parent:
        top = top.parent
    return top


def remove_empty_folders(paths) -> None:
    """Remove each of ``paths`` that is a folder holding nothing but empty folders (innermost first):
    what a command that failed made before it found the error.  Files are never removed; a folder
    with any file in it stays whole."""
    for p in paths:
        if p is None or not Path(p).is_dir() or Path(p).is_symlink():
            continue
        for folder, _, _ in os.walk(p, topdown=False):  # rmdir refuses a folder that is not empty
            try:
                os.rmdir(folder)
            except OSError:
                pass
