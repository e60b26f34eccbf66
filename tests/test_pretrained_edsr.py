"""EDSR checkpoints in EDSR-PyTorch's own layout (the authors' released ``edsr_baseline_x2-*.pt`` and
``edsr_x4-*.pt`` use it): detected, converted exactly, imported and served.

Fixtures (tests/fixtures/pretrained/pth_refs/, made by make_edsr_references.py with torch 2.13 CPU):
tiny random state dicts of sanghyun-son/EDSR-PyTorch's ``EDSR`` (x2, x3 saved in the legacy format,
x4, and rgb_range 1), with that code's float outputs on a 6x7 crop of Set5 butterfly
(``tiny_edsr_pt_expected.npz``; input in [0, 1], the network's output divided by rgb_range).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.pretrained import detect, pth

REFS = Path(__file__).parent / "fixtures" / "pretrained" / "pth_refs"
CASES = {  # name: (scale, config items detection reports)
    "x2": (2, {"n_feats": 8, "n_resblocks": 2, "rgb_range": 255, "res_scale": 1.0}),
    "x3": (3, {"n_feats": 8, "n_resblocks": 1, "rgb_range": 255}),
    "x4": (4, {"n_feats": 4, "n_resblocks": 2, "n_colors": 3}),
    "range1_x2": (2, {"n_feats": 4, "n_resblocks": 1, "rgb_range": 1}),
}


@pytest.fixture(scope="module")
def expected():
    return np.load(REFS / "tiny_edsr_pt_expected.npz")


def _sd(name):
    return pth.read_checkpoint(REFS / f"tiny_edsr_pt_{name}.pth")


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiny_edsr_pytorch_nets_match_torch(name, expected):
    scale, config = CASES[name]
    sd = _sd(name)
    found = detect.detect(sd, name)
    assert (found.arch, found.scale, found.layout, found.convertible) == ("edsr", scale, "EDSR-PyTorch", True)
    assert config.items() <= found.config.items(), found.config
    model, s, got, unmapped = pth.convert_state_dict(sd, None, None, name)
    assert (got["arch"], s, unmapped) == ("edsr", scale, [])  # the MeanShifts are read, not left over
    assert got["img_range"] == config.get("rgb_range", 255)
    np.testing.assert_allclose(got["rgb_mean"], (0.4488, 0.4371, 0.4040), atol=1e-6)
    y = np.asarray(model(expected["input"]))
    assert y.shape == expected[name].shape and np.abs(y - expected[name]).max() < 1e-5


def test_rgb_range_is_read_from_the_meanshift(expected):
    """Run as if trained on [0, 255] (BasicSR's default img_range), the rgb_range-1 net is far off."""
    from srkeras.models.edsr import build_edsr

    model = pth.convert_state_dict(_sd("range1_x2"), "edsr", 2, "r")[0]
    as_255 = build_edsr(2, num_feat=4, num_block=1, img_range=255.0)
    as_255.set_weights(model.get_weights())
    x = expected["input"]
    assert np.abs(np.asarray(as_255(x)) - expected["range1_x2"]).max() > 0.05


def test_a_changed_meanshift_is_refused_by_name():
    """rgb_std other than 1 (a non-identity MeanShift weight) is not EDSR-PyTorch's network: refused."""
    sd = dict(_sd("x2"))
    sd["sub_mean.weight"] = np.asarray(sd["sub_mean.weight"]) * 2
    with pytest.raises(pretrained.UnknownArchitectureError, match=r"^odd\.pth: EDSR MeanShifts other than"):
        pth.convert_state_dict(sd, None, None, "odd.pth")
    sd = {k: v for k, v in _sd("x2").items() if not k.startswith("add_mean")}
    with pytest.raises(pretrained.UnknownArchitectureError, match="without its MeanShifts"):
        pth.convert_state_dict(sd, None, None, "odd.pth")


def test_import_serves_it_exactly(expected, tmp_path, monkeypatch):
    """``pipelines.pretrained import`` without --arch, then served by name: the torch output again."""
    from pipelines import pretrained as cli
    from srkeras.inference import load_generator, upscale

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    assert cli.main(["import", str(REFS / "tiny_edsr_pt_x3.pth"), "--name", "edsr_pt_tiny", "--no-probe"]) == 0
    served = load_generator("edsr_pt_tiny")
    y = upscale(served, expected["input"][0], tile=0)
    assert np.abs(y - np.clip(expected["x3"][0], 0, 1)).max() < 1e-5
