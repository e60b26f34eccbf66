"""Where pretrained models live and how they are written: ``$SRKERAS_MODEL_DIR`` (default
``~/.srkeras/models``) holds ``NAME.keras`` and its JSON sidecar ``NAME.json``; downloaded packages
are cached in ``$SRKERAS_CACHE_DIR`` (default ``~/.cache/srkeras``) under ``packages/``.

Installation is atomic: model and sidecar are written to temporary files in the models directory
and renamed into place, so a failure leaves nothing half-written. The sidecar records the model
file's sha256, so a sidecar that does not belong to the ``.keras`` beside it is ignored (stale).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from srkeras.inference.sidecar import read_sidecar, sha256_file

SIDECAR_VERSION = 1


def model_dir() -> Path:
    return Path(os.environ.get("SRKERAS_MODEL_DIR") or Path.home() / ".srkeras" / "models").expanduser()


def cache_dir() -> Path:
    return Path(os.environ.get("SRKERAS_CACHE_DIR") or Path.home() / ".cache" / "srkeras").expanduser()


def model_path(name: str) -> Path:
    return model_dir() / f"{name}.keras"


def resolve(name_or_path) -> Path | None:
    """The installed ``.keras`` file for a model name (catalogue or imported), else None.

    Paths (anything with a directory part or a suffix) are not names: None."""
    s = str(name_or_path)
    if not s or os.sep in s or "/" in s or Path(s).suffix:
        return None
    p = model_path(s)
    return p if p.is_file() else None


def sidecar(path) -> dict | None:
    """The JSON sidecar of an installed model (``NAME.json`` beside ``NAME.keras``), or None when it
    is missing, unreadable or stale (its ``model_sha256`` is not the ``.keras`` file's). Serving
    reads it the same way (:func:`srkeras.inference.sidecar.read_sidecar`)."""
    return read_sidecar(path)


def _chmod_default(path: Path) -> None:
    """mkstemp creates 0600 files; give them the permissions a plain open() would."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def install(model, name: str, meta: dict) -> Path:
    """Write ``model`` as ``NAME.keras`` plus ``NAME.json`` (``meta`` + sha256) atomically."""
    d = model_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp_model = tmp_side = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp.keras", dir=d)
        os.close(fd)
        tmp_model = Path(tmp)
        model.save(tmp_model)
        meta = {**meta, "name": name, "sidecar_version": SIDECAR_VERSION, "model_sha256": sha256_file(tmp_model)}
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp.json", dir=d)
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True, default=_json_default)
        tmp_side = Path(tmp)
        _chmod_default(tmp_model)
        _chmod_default(tmp_side)
        final = model_path(name)
        os.replace(tmp_model, final)
        tmp_model = None
        os.replace(tmp_side, final.with_suffix(".json"))
        tmp_side = None
        return final
    finally:
        for t in (tmp_model, tmp_side):
            if t is not None:
                t.unlink(missing_ok=True)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def installed() -> dict[str, Path]:
    d = model_dir()
    return {p.stem: p for p in sorted(d.glob("*.keras")) if not p.name.startswith(".")} if d.is_dir() else {}
