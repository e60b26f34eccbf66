"""MSRResNet and RCAN ``.pth`` checkpoints: detected, converted exactly, imported and served.

Fixtures (tests/fixtures/pretrained/pth_refs/, made by make_msr_rcan_references.py with torch 2.13
CPU): tiny random state dicts of BasicSR's MSRResNet code (both key layouts) and of spandrel 0.4.2's
copy of RCAN (x2/x3/x4, pixel-unshuffle x1/x2, rgb_range 1, no MeanShift with 5x5 kernels), with the
original code's float outputs on a 6x7 crop of Set5 butterfly (``tiny_msr_rcan_expected.npz``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.pretrained import detect, pth

REFS = Path(__file__).parent / "fixtures" / "pretrained" / "pth_refs"
CASES = {  # name: (arch, scale, layout, config items detection must report)
    "msrresnet_x2": ("msrresnet", 2, "BasicSR", {"num_feat": 4, "num_block": 2}),
    "msrresnet_x3": ("msrresnet", 3, "BasicSR", {"num_feat": 4, "num_block": 1}),
    "msrresnet_x4": ("msrresnet", 4, "BasicSR", {"num_feat": 4, "num_block": 2}),
    "msrresnet_old_x2": ("msrresnet", 2, "ESRGAN repo", {"num_feat": 4, "num_block": 2}),
    "rcan_x2": ("rcan", 2, "", {"n_resgroups": 2, "n_resblocks": 2, "reduction": 2, "rgb_range": 255, "norm": True}),
    "rcan_x3": ("rcan", 3, "", {"n_resgroups": 1, "n_resblocks": 1, "rgb_range": 255, "unshuffle": False}),
    "rcan_x4": ("rcan", 4, "", {"n_feats": 4, "kernel_size": 3, "rgb_range": 255}),
    "rcan_unshuffle_x2": ("rcan", 2, "", {"unshuffle": True, "rgb_range": 255}),
    "rcan_unshuffle_x1": ("rcan", 1, "", {"unshuffle": True}),
    "rcan_range1_x2": ("rcan", 2, "", {"rgb_range": 1, "norm": True}),
    "rcan_nonorm_k5_x2": ("rcan", 2, "", {"kernel_size": 5, "norm": False, "rgb_range": 1}),
}


@pytest.fixture(scope="module")
def expected():
    return np.load(REFS / "tiny_msr_rcan_expected.npz")


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiny_nets_match_torch(name, expected):
    """Every layout and option against the original code's float output, to float rounding."""
    arch, scale, layout, config = CASES[name]
    sd = pth.read_checkpoint(REFS / f"tiny_{name}.pth")
    found = detect.detect(sd, name)
    assert (found.arch, found.scale, found.layout, found.convertible) == (arch, scale, layout, True)
    assert config.items() <= found.config.items(), found.config
    model, s, got_config, unmapped = pth.convert_state_dict(sd, None, None, name)
    assert (got_config["arch"], s, unmapped) == (arch, scale, [])
    y = np.asarray(model(expected["input"]))
    assert y.shape == expected[name].shape and np.abs(y - expected[name]).max() < 1e-5


def test_rgb_range_matters(expected):
    """The rgb_range-1 checkpoint run as spandrel's loader would (rgb_range 255 assumed) is far off:
    the range is read from the MeanShift bias, not assumed."""
    from srkeras.models import build

    model = pth.convert_state_dict(pth.read_checkpoint(REFS / "tiny_rcan_range1_x2.pth"), "rcan", 2, "r")[0]
    as_255 = build("rcan", 2, n_resgroups=1, n_resblocks=1, n_feats=4, reduction=2, rgb_range=255)
    as_255.set_weights(model.get_weights())  # the checkpoint's MeanShift too, as spandrel's load_state_dict
    x = expected["input"]
    assert np.abs(np.asarray(model(x)) - expected["rcan_range1_x2"]).max() < 1e-5
    assert np.abs(np.asarray(as_255(x)) - expected["rcan_range1_x2"]).max() > 0.05


def test_saved_models_reload(expected, tmp_path):
    """RCAN's nested residual groups and the unshuffle head's custom layers survive a .keras round trip."""
    import keras

    for name in ("rcan_unshuffle_x2", "msrresnet_x4"):
        model = pth.convert_state_dict(pth.read_checkpoint(REFS / f"tiny_{name}.pth"), None, None, name)[0]
        model.save(tmp_path / f"{name}.keras")
        again = keras.models.load_model(tmp_path / f"{name}.keras")
        assert np.abs(np.asarray(again(expected["input"])) - expected[name]).max() < 1e-5


def test_bilinear_upsample_is_half_pixel_with_clamped_edges():
    """Hand-computed: x2 of [0, 1] samples positions -0.25, 0.25, 0.75, 1.25 -> 0, 0.25, 0.75, 1 (edge
    clamped); x3 of [0, 3] samples -1/3, 0, 1/3, 2/3, 1, 4/3 -> 0, 0, 1, 2, 3, 3."""
    from srkeras.models.layers import BilinearUpsample

    row = np.asarray(BilinearUpsample(2)(np.array([0.0, 1.0], np.float32).reshape(1, 1, 2, 1)))
    np.testing.assert_allclose(row.reshape(2, 4), [[0, 0.25, 0.75, 1]] * 2, atol=1e-7)
    col = np.asarray(BilinearUpsample(3)(np.array([0.0, 3.0], np.float32).reshape(1, 2, 1, 1)))
    np.testing.assert_allclose(col[0, :, 0, 0], [0, 0, 1, 2, 3, 3], atol=1e-6)


def _write_png(path, x):
    from PIL import Image

    Image.fromarray(np.round(x * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize(("name", "whole_image"), [("msrresnet_x4", False), ("rcan_x3", True)])
def test_import_without_arch_then_upscale(name, whole_image, expected, tmp_path, monkeypatch, capsys):
    """``pipelines.pretrained import FILE`` (no --arch) detects and installs; ``pipelines.upscale
    --model NAME`` then reproduces the original code's output on the fixture image (uint8 exactly:
    the crop is ncnn_input.png / 255) to 1 grey level. RCAN is recorded as a whole-image model."""
    from PIL import Image

    from pipelines import pretrained as cli
    from pipelines import upscale
    from srkeras.inference.sidecar import ModelSidecar

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    assert cli.main(["import", str(REFS / f"tiny_{name}.pth"), "--name", f"tiny_{name}"]) == 0
    out = capsys.readouterr().out
    assert f"detected {detect.detect(pth.read_checkpoint(REFS / f'tiny_{name}.pth')).name}" in out
    meta = ModelSidecar.read(tmp_path / "models" / f"tiny_{name}.keras")
    assert meta.arch == CASES[name][0] and meta.scale == CASES[name][1]
    assert (meta.whole_image is True) is whole_image
    assert whole_image or meta.receptive_field_bound is not None  # tiles from the graph, no probe
    img = _write_png(tmp_path / "in.png", expected["input"][0])
    assert upscale.main([str(img), "--model", f"tiny_{name}", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    y = np.asarray(Image.open(tmp_path / "o" / "in.png"), np.float32)
    want = np.clip(np.round(expected[name][0] * 255), 0, 255)
    assert y.shape == want.shape and np.abs(y - want).max() <= 1


def test_msrresnet_tiles_exactly():
    """Convolutions and the bilinear input residual: the analytic receptive field bounds the reach, so
    tiles reproduce the untiled output (to float rounding of different conv sizes)."""
    from srkeras.inference.receptive import analytic_receptive_field, reads_whole_image
    from srkeras.inference.running import upscale

    model = pth.convert_state_dict(pth.read_checkpoint(REFS / "tiny_msrresnet_x3.pth"), None, None, "m")[0]
    assert not reads_whole_image(model) and analytic_receptive_field(model) == 4 + 1  # 4 LR convs + 2 HR convs / 3
    img = np.random.default_rng(3).random((23, 19, 3), dtype=np.float32)
    full = upscale(model, img, tile=0)
    assert full.shape == (69, 57, 3)
    assert np.abs(upscale(model, img, tile=6) - full).max() < 1e-6


def test_rcan_is_global_and_tiles_with_a_warning():
    """Channel attention averages every feature map over the whole image: a far pixel moves the
    output, the graph says so (no probe), and tiling warns as for the other global models."""
    from srkeras.inference.receptive import reads_whole_image
    from srkeras.inference.running import upscale

    model = pth.convert_state_dict(pth.read_checkpoint(REFS / "tiny_rcan_x2.pth"), None, None, "r")[0]
    assert reads_whole_image(model)
    x = np.full((1, 24, 24, 3), 0.5, np.float32)
    x2 = x.copy()
    x2[0, 0, 0] = 1.0
    assert np.abs(np.asarray(model(x))[0, -4:, -4:] - np.asarray(model(x2))[0, -4:, -4:]).max() > 1e-6
    img = np.random.default_rng(4).random((96, 88, 3), dtype=np.float32)  # wider than a tile + its margins
    with pytest.warns(UserWarning, match="receptive field is global"):
        tiled = upscale(model, img, tile=16)
    assert tiled.shape == (192, 176, 3) and np.abs(tiled - upscale(model, img, tile=0)).max() > 1e-6


def _state_dict(name):
    return pth.read_checkpoint(REFS / f"tiny_{name}.pth")


@pytest.mark.parametrize(("name", "edit", "error", "match"), [
    ("rcan_x2", lambda sd: sd.pop("body.1.body.0.body.3.conv_du.2.bias"), pretrained.UnknownArchitectureError,
     r"missing key\(s\) \['body.1.body.0.body.3.conv_du.2.bias'\]"),
    ("rcan_x2", lambda sd: sd.update({"body.0.body.0.body.2.weight": np.zeros((4, 4, 5, 5), np.float32)}),
     pretrained.ShapeMismatchError, r"body.0.body.0.body.2.weight has shape \(4, 4, 5, 5\), layer .* needs \(4, 4, 3, 3\)"),
    ("rcan_x4", lambda sd: sd.update({"body.300.weight": sd["body.1.weight"]}), pretrained.UnknownArchitectureError,
     r"with number\(s\) 300; they must be numbered 0\.\.2"),
    ("rcan_x2", lambda sd: sd.update({"body.1.body.3.weight": sd["body.1.body.2.weight"]}),
     pretrained.UnknownArchitectureError, r"residual groups hold different numbers of blocks: \[3, 4\]"),
    ("msrresnet_x3", lambda sd: sd.update({"upconv1.weight": np.zeros((20, 4, 3, 3), np.float32)}),
     pretrained.ConversionUnavailableError, r"detected MSRResNet .* not available"),
    ("msrresnet_x4", lambda sd: sd.pop("body.1.conv2.bias"), pretrained.UnknownArchitectureError,
     r"missing key\(s\) \['body.1.conv2.bias'\] for layer body.1.conv2"),
])  # fmt: skip
def test_bad_checkpoints_refused_before_building(name, edit, error, match, monkeypatch):
    """Keys and shapes are checked against the detected configuration before any layer exists."""
    from srkeras.models import msrresnet, rcan

    def built(*_a, **_k):
        raise AssertionError("the network was built before the keys were checked")

    monkeypatch.setattr(msrresnet, "build_msrresnet", built)
    monkeypatch.setattr(rcan, "build_rcan", built)
    sd = _state_dict(name)
    edit(sd)
    with pytest.raises(error, match=f"^bad.pth: .*{match}"):
        pth.convert_state_dict(sd, None, None, "bad.pth")


def test_scale_checked():
    with pytest.raises(pretrained.ScaleMismatchError, match=r"r.pth: checkpoint is a x1 model, x2 was asked for"):
        pth.convert_state_dict(_state_dict("rcan_unshuffle_x1"), "rcan", 2, "r.pth")
