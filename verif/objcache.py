"""A compiler wrapper that keeps the objects of Verilator's and cocotb's runtime sources between
builds (Verilator's makefile runs every compile as ``$(OBJCACHE) $(CXX) ...``).

Every Verilator build compiles the same runtime sources (``verilated.cpp``, ``verilated_vpi.cpp``,
cocotb's ``verilator.cpp`` and a few more) with the same flags: about a third of a small design's
build.  This wrapper caches the objects of sources outside the build folder (the design's own C++,
inside it, always compiles) under a key that changes whenever the object could:

    sha256(the compiler's --version, the arguments, the preprocessed source)

so a new Verilator, cocotb or compiler, other flags or other headers make a new entry.  A hit
copies the object and its dependency file (``-MMD``) into the build; a miss compiles and stores
both, each written to a temporary file and renamed, so that builds in parallel share the folder.
Anything unexpected (no ``-c``/``-o``, a failed preprocess, an unwritable folder) compiles as if the
wrapper were not there.

``spikeops.verif.env.prepare`` sets ``OBJCACHE`` to this file (unless ``OBJCACHE`` is set already,
e.g. to ``ccache``, or to the empty string to compile everything) and the folder in
``SPIKEOPS_OBJCACHE_DIR``.  It runs as a script (``python objcache.py g++ ARGS...``) and imports
nothing from spikeops.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["DIR_VARIABLE", "cached_compile", "main"]

#: the environment variable that names the cache folder
DIR_VARIABLE = "SPIKEOPS_OBJCACHE_DIR"
_SOURCES = (".cpp", ".cc", ".cxx", ".c")
_DROP_WITH_VALUE = ("-o", "-MF", "-MT", "-MQ")
_DROP = ("-c", "-MMD", "-MD", "-MP")


def _parse(args):
    """``(output, source)`` of a single-source compile to an object, else None."""
    if "-c" not in args or "-o" not in args:
        return None
    i = args.index("-o")
    if i + 1 >= len(args):
        return None
    sources = [a for a in args if a.endswith(_SOURCES) and not a.startswith("-")]
    if len(sources) != 1:
        return None
    return args[i + 1], sources[0]


def _preprocess_args(args):
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in _DROP_WITH_VALUE:
            skip = True
        elif a not in _DROP:
            out.append(a)
    return out + ["-E"]


def _key(compiler, args, cwd) -> str | None:
    version = subprocess.run([compiler, "--version"], capture_output=True, cwd=cwd)
    pre = subprocess.run([compiler, *_preprocess_args(args)], capture_output=True, cwd=cwd)
    if version.returncode or pre.returncode:
        return None
    h = hashlib.sha256()
    for part in (version.stdout, "\0".join(args).encode(), pre.stdout):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _store(src: Path, dest: Path):
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)                  # as ``open`` would have made it
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_compile(argv, cache_dir, cwd=".") -> int:
    """Run the compile ``argv`` (compiler first) in ``cwd``, from ``cache_dir`` where it can;
    returns the compiler's exit status."""
    cwd = Path(cwd).resolve()
    compiler, args = argv[0], list(argv[1:])
    parsed = _parse(args)
    if parsed is None or cache_dir is None:
        return subprocess.run(argv, cwd=cwd).returncode
    output, source = parsed
    src = (cwd / source).resolve()
    if src.is_relative_to(cwd):                     # the design's own C++: compiled every time
        return subprocess.run(argv, cwd=cwd).returncode
    obj = cwd / output
    dep = obj.with_suffix(".d")
    try:
        key = _key(compiler, args, cwd)
        folder = Path(cache_dir)
        if key is not None:
            folder.mkdir(parents=True, exist_ok=True)
            entry_o, entry_d = folder / f"{key}.o", folder / f"{key}.d"
            if entry_o.exists() and entry_d.exists():
                shutil.copyfile(entry_o, obj)
                shutil.copyfile(entry_d, dep)
                return 0
    except OSError:
        key = None
    status = subprocess.run(argv, cwd=cwd).returncode
    if status == 0 and key is not None and obj.exists() and dep.exists():
        try:
            _store(dep, entry_d)                          # the object last: an entry is whole once it exists
            _store(obj, entry_o)
        except OSError:
            pass
    return status


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("objcache: usage: python objcache.py COMPILER ARGS...", file=sys.stderr)
        return 2
    return cached_compile(argv, os.environ.get(DIR_VARIABLE) or None)


if __name__ == "__main__":
    sys.exit(main())
