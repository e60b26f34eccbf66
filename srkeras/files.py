"""Files written whole or not at all, and file names as text.

Every file srkeras writes goes through :func:`write_atomically`: a temporary beside the target,
renamed onto it once complete, so a reader sees the old file or the whole new one. A run killed
with -9 leaves its temporary behind; each carries :data:`TEMP_MARK` and its process id, so the next
run removes the ones of dead processes (:func:`remove_stale_temporaries`). :func:`destination_problem`
says before any work why a destination cannot be written; :func:`write_error` says why a write
failed. :func:`display_name` is how every path is printed or stored.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import time
from pathlib import Path

#: In every temporary's name (``.<name>.srkeras-tmp-<pid>-<hex><suffix>``): :func:`remove_stale_temporaries`.
TEMP_MARK = ".srkeras-tmp-"
_TEMP_RE = re.compile(r"^\..*" + re.escape(TEMP_MARK) + r"(\d+)-[0-9a-f]+")


def display_name(path) -> str:
    """``path`` (str, bytes or Path) as printable, valid UTF-8 text: every path printed or stored.

    A Linux file name that is not UTF-8 arrives as a str with lone surrogates, which can be neither
    printed to a UTF-8 terminal nor stored in JSON or a database: its bytes are shown as ``\\xNN``.
    """
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def temp_path(path) -> Path:
    """A fresh temporary name beside ``path`` (same suffix, so writers pick the same format)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


def _new_temp_file(path: Path) -> Path:
    """A new empty file beside ``path`` with the permissions of any new file (0666 minus umask)."""
    for _ in range(100):
        tmp = temp_path(path)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{display_name(path)}: could not create a temporary file beside it")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: it exists, owned by another user
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder, older_than: float | None = None) -> list[Path]:
    """Remove from ``folder`` the temporaries (:data:`TEMP_MARK`) of runs that were killed.
    Only entries whose process is gone and last modified before ``older_than`` (``time.time()``
    when this run started; default now) are removed: live runs' temporaries stay. Returns them.
    """
    cutoff = time.time() if older_than is None else older_than
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def destination_problem(path, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or a folder with ``folder=True``) cannot be written, or None: it is a
    folder, a parent is a file, the folder refuses a test file (right for root and read-only mounts)
    or cannot be created (``os.access`` on its nearest existing parent). For checks before any work."""
    p = Path(path)
    if not folder and p.is_dir():
        return f"{display_name(p)}: is a folder, not a file"
    target = p if folder else p.parent
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{display_name(existing)}: is not a folder, so {display_name(p)} cannot be written"
    if existing != target:
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{display_name(target)}: cannot create this folder in {display_name(existing)} (permission denied)"
        return None
    try:
        os.unlink(_new_temp_file(target / "write-test"))
    except OSError as e:
        return f"{display_name(target)}: cannot write in this folder ({e.strerror or e})"
    return None


def write_error(path, e: OSError) -> str:
    """The message for a failed write of ``path``, naming it and the reason (e.g. disk full)."""
    why = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    return f"cannot write {display_name(path)}: {why}"


def write_atomically(path, write, overwrite: bool = True) -> Path:
    """Run ``write(tmp_path)`` on a temp file beside ``path``, then rename it onto ``path``.

    Readers see the old file or the whole new one, never a partial file; on failure (and on
    KeyboardInterrupt) the temp file is removed and ``path`` is untouched (after kill -9, see
    :func:`remove_stale_temporaries`). Mode 0666 minus the umask (``mkstemp`` would give 0600).
    ``overwrite=False``: FileExistsError when ``path`` exists once the new file is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        write(str(tmp))
        if not overwrite and path.exists():
            raise FileExistsError(f"{display_name(path)}: exists (pass overwrite=True / --overwrite to replace it)")
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return path


__all__ = [
    "TEMP_MARK",
    "destination_problem",
    "display_name",
    "remove_stale_temporaries",
    "sha256_file",
    "temp_path",
    "write_atomically",
    "write_error",
]
