"""Files written so that no reader ever sees half of one, and where spikeops keeps its caches.

One variable moves every cache: ``$SPIKEOPS_CACHE`` (default ``~/.cache/spikeops``) holds the
dequantised model checkpoints and, under ``sweep/``, the sweeps' stage results (a sweep without the
variable keeps its cache beside its output, ``<out>/cache``; ``--cache`` overrides both)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic", "cache_root", "CACHE_VARIABLE"]

CACHE_VARIABLE = "SPIKEOPS_CACHE"


def cache_root() -> Path:
    """``$SPIKEOPS_CACHE``, or ``~/.cache/spikeops`` when it is unset or empty."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "spikeops")


def write_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file of this process in the same folder,
    renamed into place: a killed writer leaves no torn file, and of two processes writing the same
    file one whole version wins."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
