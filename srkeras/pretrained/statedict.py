"""The state dict inside a loaded PyTorch checkpoint: BasicSR's ``params_ema`` / ``params``, a
``state_dict`` / ``model`` / ``net`` wrapper or a single-key wrapper unwrapped, and a ``module.`` /
``netG.`` prefix shared by every key dropped (as spandrel, MIT, does)."""

from __future__ import annotations

import numpy as np

from srkeras.pretrained.errors import CheckpointError

_UNWRAP = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net")
_PREFIXES = ("module.", "netG.")


def canonical(obj, source: str) -> dict:
    """The state dict (names -> arrays) inside a loaded checkpoint; BasicSR's ``params_ema`` is
    preferred to ``params``; a ``module.`` / ``netG.`` prefix on every key is dropped."""
    if isinstance(obj, dict):
        for key in _UNWRAP:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
            obj = next(iter(obj.values()))
    if (
        not isinstance(obj, dict) or not obj
        or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
    ):
        found = [f"{k!s:.60}" for k in list(obj)[:8]] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{source}: no state dict of tensors (names -> tensors) found (keys: {found})")
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return dict(obj)
