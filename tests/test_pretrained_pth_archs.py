"""Full DAT, SPAN (training checkpoints) and Real-CUGAN ``.pth`` files: detected, converted and served
as the original PyTorch code runs them.

Fixtures (tests/fixtures/pretrained/pth_refs/, made by make_arch_fixtures.py with torch 2.13 and
spandrel 0.4.2's copies of the original architectures; README there): tiny random checkpoints whose
weights are strided views of one float16 storage, and the original eval forward's float32 outputs
(``tiny_arch_expected.npz``; Real-CUGAN x3 / x4 at every second row and column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.pretrained import detect, pth
from srkeras.pretrained.pth_custom import fuse_conv3xc

FIX = Path(__file__).parent / "fixtures" / "pretrained"
REFS = FIX / "pth_refs"
#: fixture -> (arch, scale, input array in the npz, Keras config entries)
CASES = {
    "tiny_dat_x2": ("dat", 2, "dat_rgb", {"upsampler": "pixelshuffle", "num_feat": 8, "resi_connection": "3conv"}),
    "tiny_dat_x4_grey": ("dat", 4, "dat_grey", {"channels": 1, "qkv_bias": False, "resi_connection": "1conv"}),
    "tiny_span_x2": ("span", 2, "span", {"feature_channels": 8, "norm": True}),
    "tiny_span_x3_nonorm": ("span", 3, "span", {"feature_channels": 4, "norm": False}),
    "tiny_realcugan_x2": ("realcugan", 2, "realcugan", {"pro": False}),
    "tiny_realcugan_pro_x3": ("realcugan", 3, "realcugan", {"pro": True}),
    "tiny_realcugan_x4": ("realcugan", 4, "realcugan", {"pro": False}),
}


@pytest.fixture(scope="module")
def expected():
    return np.load(REFS / "tiny_arch_expected.npz")


def _kept(name: str, y: np.ndarray) -> np.ndarray:
    """The part of an output the npz keeps (Real-CUGAN x3 / x4: every second row and column)."""
    return y[:, ::2, ::2] if "realcugan" in name and not name.endswith("x2") else y


@pytest.mark.parametrize("name", list(CASES))
def test_tiny_checkpoints_match_torch(name, expected):
    """Detected without --arch, converted, and equal to the original's eval forward on the whole
    image: DAT's pixelshuffle tail (x2 one octave, x4 two) with 3conv / 1conv, one channel, no qkv
    bias; SPAN with and without ``no_norm``; Real-CUGAN's padding, crop and Pro scaling."""
    arch, scale, x, config = CASES[name]
    sd = pth.read_checkpoint(REFS / f"{name}.pth")
    found = detect.detect(sd, name)
    assert (found.arch, found.scale, found.convertible) == (arch, scale, True)
    model, s, got, unmapped = pth.convert_state_dict(sd, None, None, name)
    assert (got["arch"], s, unmapped) == (arch, scale, [])
    assert config.items() <= got.items()
    y = _kept(name, np.asarray(model(expected[x])))
    want = expected[name]
    assert y.shape == want.shape and np.abs(y - want).max() < 1e-4 * max(1.0, float(np.abs(want).max()))
    assert want.std() > 0.02  # the network's output varies with the input: the comparison means something


def test_span_uses_the_recomputed_eval_conv_not_the_stored_one(expected):
    """The original's eval forward calls ``update_params`` before ``eval_conv``: the stored one (stale
    in a training checkpoint, as here) must not be used. The fused conv equals the three convs plus
    the 1x1 skip on an input (zero padding, as eval_conv), and loading the stored one instead moves
    the output far from torch's."""
    sd = pth.read_checkpoint(REFS / "tiny_span_x2.pth")
    w, b = fuse_conv3xc(sd, "block_1.c2_r", "t")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6, 5))  # C, H, W

    def conv(x, w, b, pad):
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        k = w.shape[-1]
        h, wd = x.shape[1] - k + 1, x.shape[2] - k + 1
        patches = np.stack([x[:, i : i + h, j : j + wd] for i in range(k) for j in range(k)], 1)  # C, k*k, H, W
        return np.einsum("oik,ikhw->ohw", w.reshape(w.shape[0], w.shape[1], -1), patches) + b[:, None, None]

    p = {k: np.asarray(sd[f"block_1.c2_r.{k}"], np.float64) for k in
         ("conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias", "conv.2.weight", "conv.2.bias", "sk.weight", "sk.bias")}  # fmt: skip
    t = conv(x, p["conv.0.weight"], p["conv.0.bias"], 0)
    # eval_conv pads its input with zeros; the 1x1 conv.0 of a zero pixel is its bias, so the fused
    # conv matches the chain on the interior only (the original's eval path is the fused conv)
    chain = conv(conv(t, p["conv.1.weight"], p["conv.1.bias"], 0), p["conv.2.weight"], p["conv.2.bias"], 0)
    chain += conv(x, p["sk.weight"], p["sk.bias"], 0)[:, 1:-1, 1:-1]
    np.testing.assert_allclose(conv(x, w, b, 1)[:, 1:-1, 1:-1], chain, atol=1e-4)
    stored = np.asarray(sd["block_1.c2_r.eval_conv.weight"], np.float32)
    assert np.abs(stored - w).max() > 0.05

    from srkeras.pretrained.convert import conv_arrays

    model = pth.convert_state_dict(sd, None, None, "t")[0]
    model.get_layer("block_1_c2").set_weights(conv_arrays(stored, sd["block_1.c2_r.eval_conv.bias"]))
    assert np.abs(np.asarray(model(expected["span"])) - expected["tiny_span_x2"]).max() > 1e-2


def _detect_fixture(case: str) -> dict:
    import json

    doc = json.loads((FIX / "detect" / f"{case}.json").read_text())
    sd = {k: np.zeros(shape, np.float32) for k, shape in doc["shapes"].items()}
    sd.update({k: np.asarray(v, np.float32) for k, v in doc["values"].items()})
    return sd


def test_full_dat_real_layout_is_convertible():
    """dat_x2.json (spandrel's DAT defaults: 4 groups, 1conv, pixelshuffle with 64 features) is
    reported convertible with the hyper-parameters the Keras DAT takes."""
    found = detect.detect(_detect_fixture("dat_x2"), "dat_x2")
    assert (found.arch, found.scale, found.convertible) == ("dat", 2, True)
    assert found.config["upsampler"] == "pixelshuffle" and found.config["num_feat"] == 64


@pytest.mark.parametrize(("what", "edit", "message"), [
    ("UpCunet2x_fast", lambda sd: sd.update({"unet1.conv1.conv.0.weight": np.zeros((32, 12, 3, 3), np.float32)}),
     r"detected Real-CUGAN \(UpCunet\) x2 .*fast=True.*not available"),
    ("SPAN with a mean on 1 channel", lambda sd: sd.update({"conv_1.sk.weight": np.zeros((48, 1, 1, 1), np.float32)}),
     r"detected SPAN \(Wan et al. 2024\) x\d .*in_channels=1.*norm=True.*not available"),
])  # fmt: skip
def test_layouts_the_original_cannot_run_as_srkeras_builds_are_refused(what, edit, message):
    sd = _detect_fixture("realcugan_x4" if "Cunet" in what else "span_x2")
    edit(sd)
    with pytest.raises(pretrained.ConversionUnavailableError, match=message):
        pth.identify(sd, None, "odd.pth")


def _png(tmp_path, x: np.ndarray) -> Path:
    from PIL import Image

    path = tmp_path / "in" / "lr.png"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(np.round(x[0] * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize(("name", "tile"), [("tiny_dat_x2", None), ("tiny_span_x2", 5), ("tiny_realcugan_x4", None),
                                            ("tiny_realcugan_x2", None)])  # fmt: skip
def test_import_then_upscale_equals_torch(name, tile, expected, tmp_path, monkeypatch, capsys):
    """The user's path: ``pipelines.pretrained import FILE`` (no --arch) then ``pipelines.upscale
    --model NAME`` gives the original's whole-image forward to the PNG's rounding. The served model
    runs as the catalogue entries of its family do: DAT and Real-CUGAN (global: channel attention,
    SE means) whole, with Real-CUGAN's padding inside the model (``pre_pad`` 0); SPAN (local) in
    exactly-stitched 5 px tiles."""
    from PIL import Image

    from pipelines import pretrained as cli
    from pipelines import upscale
    from srkeras.inference.sidecar import ModelSidecar

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    arch, scale, x, _config = CASES[name]
    assert cli.main(["import", str(REFS / f"{name}.pth"), "--name", "m", "--no-probe"]) == 0
    assert "installed m" in capsys.readouterr().out
    meta = ModelSidecar.read(tmp_path / "models" / "m.keras")
    assert (meta.arch, meta.scale, meta.pre_pad) == (arch, scale, 0)
    facts = meta.network_facts()
    if arch == "span":
        assert meta.whole_image is not True and facts.receptive_field_bound == 21  # 21 chained 3x3 convs
    else:
        assert meta.whole_image is True and facts.receptive_field is None
    if arch == "realcugan":
        from srkeras.pretrained import catalogue

        assert meta.about["architecture"] == dict(catalogue.get(f"realcugan_se_x{scale}_conservative").extra)
    out = tmp_path / "out"
    args = [str(_png(tmp_path, expected[x])), "--model", "m", "--out", str(out), "--quiet", "--precision", "float32"]
    assert upscale.main(args + (["--tile", str(tile)] if tile else [])) == 0
    got = _kept(name, np.asarray(Image.open(out / "lr.png"), np.float32)[None])
    want = np.round(np.clip(expected[name], 0, 1) * 255)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1
    assert np.unique(want).size > 20  # not a clipped constant


@pytest.mark.parametrize("name", ["tiny_dat_x2", "tiny_realcugan_x2"])
def test_global_models_tiled_differ_so_they_are_served_whole(name, expected):
    """Why DAT and Real-CUGAN are served whole: the top half of the image with a margin below it
    (Real-CUGAN: 20 px, more than its 18 px of convolutions) differs from the whole-image output on
    that half (the channel attention / SE means see the whole input)."""
    model = pth.convert_state_dict(pth.read_checkpoint(REFS / f"{name}.pth"), None, None, name)[0]
    arch, s, key, _config = CASES[name]
    x = np.concatenate([expected[key], 1 - expected[key][:, ::-1]], axis=1)  # 22 / 44 rows, halves unalike
    h = x.shape[1] // 2
    whole = np.asarray(model(x))
    top = np.asarray(model(x[:, : h + 8 if arch == "dat" else h + 20]))[:, : h * s]
    assert np.abs(top - whole[:, : h * s]).max() > 1e-6


@pytest.mark.parametrize(("name", "edit", "error", "message"), [
    ("tiny_span_x2", lambda sd: sd.pop("block_3.c2_r.conv.1.weight"), pretrained.UnknownArchitectureError,
     r"^bad.pth: missing key\(s\) \['block_3.c2_r.conv.1.weight'\] of SPAN's block_3.c2_r$"),
    ("tiny_span_x2", lambda sd: sd.update({"block_2.c1_r.conv.1.weight": np.zeros((16, 16, 5, 5), np.float32)}),
     pretrained.ShapeMismatchError, r"^bad.pth: block_2.c1_r.conv.1 has weight \(16, 16, 5, 5\).*Conv3XC needs \(16, 16, 3, 3\)"),
    ("tiny_realcugan_x2", lambda sd: sd.pop("unet2.conv5.bias"), pretrained.UnknownArchitectureError,
     r"^bad.pth: missing key\(s\) \['unet2.conv5.bias'\] of Real-CUGAN x2$"),
    ("tiny_realcugan_x2", lambda sd: sd.update({"unet2.conv3_up.weight": np.zeros((128, 64, 2, 2), np.float32)}),
     pretrained.ShapeMismatchError, r"^bad.pth: unet2.conv3_up has shape \(2, 2, 64, 128\), layer u2_up3 needs"),
])  # fmt: skip
def test_damaged_checkpoints_name_the_key(name, edit, error, message):
    sd = pth.read_checkpoint(REFS / f"{name}.pth")
    edit(sd)
    with pytest.raises(error, match=message):
        pth.convert_state_dict(sd, None, None, "bad.pth")
