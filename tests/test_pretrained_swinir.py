"""SwinIR in Keras against the original PyTorch code; import + upscale end to end; tiling.

Fixtures (tests/fixtures/pretrained/pth_refs/, made by make_swinir_references.py with torch 2.13 and
spandrel 0.4.2's copy of JingyunLiang/SwinIR in a scratch venv): tiny random SwinIR state dicts (zip
.pth) of every upsampler, 1conv / 3conv, a grayscale window-7 JPEG layout and a start_unshuffle one,
with torch's float outputs on an 11 x 9 crop of ncnn_input.png (padded to the window: reflect, masks
of the padded size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras.pretrained import detect, pth

REFS = Path(__file__).parent / "fixtures" / "pretrained" / "pth_refs"
TINY = {  # name: (scale, detected hyper-parameters checked)
    "tiny_swinir_x2_pixelshuffle": (2, {"upsampler": "pixelshuffle", "depths": [2, 2], "num_heads": [2, 4],
                                        "window_size": 4, "num_feat": 8}),
    "tiny_swinir_x3_direct_3conv": (3, {"upsampler": "pixelshuffledirect", "resi_connection": "3conv", "mlp_ratio": 1.5}),
    "tiny_swinir_x4_nearest": (4, {"upsampler": "nearest+conv", "num_heads": [4]}),
    "tiny_swinir_x1_gray_jpeg": (1, {"upsampler": "", "in_chans": 1, "window_size": 7, "img_range": 255.0}),
    "tiny_swinir_x2_unshuffle_pixelshuffle": (2, {"upsampler": "pixelshuffle", "start_unshuffle": 2}),
}  # fmt: skip


@pytest.fixture(scope="module")
def expected():
    return np.load(REFS / "tiny_swinir_expected.npz")


def _input(expected, name, scale):
    want = expected[name]
    x = expected["input_gray" if want.shape[-1] == 1 else "input_rgb"]
    return np.ascontiguousarray(x[:, : want.shape[1] // scale, : want.shape[2] // scale]), want


def _convert(name):
    return pth.convert_state_dict(pth.read_checkpoint(REFS / f"{name}.pth"), None, None, name)


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_swinir_matches_torch(name, expected):
    """Every tail, shifted windows with the masks of the padded (reflect) size, window 7 on [0, 255]."""
    scale, hp = TINY[name]
    found = detect.detect(pth.read_checkpoint(REFS / f"{name}.pth"), name)
    assert found.convertible and found.scale == scale and hp.items() <= found.config.items(), found
    model, s, config, unmapped = _convert(name)
    assert (config["arch"], s, unmapped) == ("swinir", scale, [])  # masks and position indices are computed
    x, want = _input(expected, name, scale)
    y = np.asarray(model(x))
    assert y.shape == want.shape and np.abs(y - want).max() < 1e-5


def test_any_size_in_a_traced_graph_and_after_save(expected, tmp_path):
    """A tf.function with None spatial dims (as serving traces it) takes sizes that need padding and
    sizes that do not, and matches torch; so does the model reloaded from .keras."""
    import keras
    import tensorflow as tf

    name = "tiny_swinir_x2_pixelshuffle"
    model = _convert(name)[0]
    traced = tf.function(lambda t: model(t), input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    x, want = _input(expected, name, 2)
    assert np.abs(np.asarray(traced(x)) - want).max() < 1e-5
    big = np.random.default_rng(0).random((2, 16, 12, 3), dtype=np.float32)
    assert traced(big).shape == (2, 32, 24, 3)
    assert np.abs(np.asarray(traced(big)) - np.asarray(model(big))).max() < 1e-5
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert np.abs(np.asarray(again(x)) - want).max() < 1e-5


def test_windows_anchor_at_the_image_origin():
    """The served-model invariant behind running SwinIR untiled: cropping the input by a whole window
    (4 px) keeps the window grid, so outputs far from the borders agree; a 1-px crop moves every window
    and the outputs differ: a tile's output depends on where the tile starts, not only on the pixels
    within a receptive field, so no tiling reproduces the untiled output in general."""
    model = _convert("tiny_swinir_x2_pixelshuffle")[0]
    x = np.random.default_rng(1).random((1, 64, 64, 3), dtype=np.float32)
    full = np.asarray(model(x))[0]
    m = 24  # LR px from every border: beyond this tiny net's reach (4 Swin layers x 3 px + convs)
    for off, same in ((4, True), (1, False)):
        crop = np.asarray(model(x[:, off:, off:]))[0]
        a = full[2 * m : 2 * (64 - m), 2 * m : 2 * (64 - m)]
        b = crop[2 * (m - off) : 2 * (64 - m - off), 2 * (m - off) : 2 * (64 - m - off)]
        assert bool(np.abs(a - b).max() < 1e-5) is same, (off, np.abs(a - b).max())


def test_served_untiled_global_field(expected):
    """The graph says global (no probe): the attention layer declares reads_whole_image; tiled plans
    of large images are flagged inexact (serving warns; --tile 0 runs whole)."""
    from srkeras.inference.planning import plan
    from srkeras.inference.receptive import analytic_receptive_field, reads_whole_image
    from srkeras.inference.served import ServedModel
    from srkeras.pretrained.fetching import analytic_bounds

    model = _convert("tiny_swinir_x3_direct_3conv")[0]
    assert reads_whole_image(model) and analytic_receptive_field(model) is None
    assert analytic_bounds(model) == {"whole_image": True}
    served = ServedModel(model)
    assert served.receptive_field is None
    with pytest.warns(UserWarning, match="receptive field is global"):
        assert plan(served, (1000, 800), tile=256).exact is False
    assert plan(served, (1000, 800), tile=0).exact is True


def test_cli_import_detects_then_upscale_serves_it(tmp_path, monkeypatch, capsys, expected):
    """``pipelines.pretrained import FILE`` (no --arch, no probe needed) then ``pipelines.upscale
    --model NAME``: the PNG is torch's output within 1 grey level."""
    import json

    from PIL import Image

    from pipelines import pretrained as cli
    from pipelines import upscale

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    name = "tiny_swinir_x2_pixelshuffle"
    assert cli.main(["import", str(REFS / f"{name}.pth"), "--name", "sw"]) == 0
    out = capsys.readouterr().out
    assert "detected SwinIR (Liang et al. 2021) x2" in out and "installed sw" in out
    sidecar = json.loads((tmp_path / "models" / "sw.json").read_text())
    assert sidecar["whole_image"] is True and sidecar["arch"] == "swinir" and "receptive_field" not in sidecar
    x, want = _input(expected, name, 2)
    Image.fromarray(np.round(x[0] * 255).astype(np.uint8)).save(tmp_path / "in.png")
    assert upscale.main([str(tmp_path / "in.png"), "--model", "sw", "--out", str(tmp_path / "o"), "--quiet",
                         "--precision", "float32"]) == 0  # fmt: skip
    (png,) = (tmp_path / "o").glob("*.png")
    got = np.asarray(Image.open(png), np.float32)
    assert got.shape == want.shape[1:] and np.abs(got - np.clip(np.round(want[0] * 255), 0, 255)).max() <= 1.0


def test_ape_layout_refused():
    """Absolute position embeddings fix the input size: detected, named and refused."""
    from srkeras import pretrained

    sd = pth.read_checkpoint(REFS / "tiny_swinir_x4_nearest.pth")
    sd["absolute_pos_embed"] = np.zeros((1, 64, 8), np.float32)
    with pytest.raises(pretrained.ConversionUnavailableError, match=r"^ape.pth: detected SwinIR .* x4"):
        pth.convert_state_dict(sd, None, None, "ape.pth")


def test_registry_builds_the_paper_configs():
    """Lightweight SR x4 (60 channels, 4 RSTBs x 6 layers, pixelshuffledirect) has torch's parameter
    count, 929,628 (spandrel 0.4.2's SwinIR counted in the scratch venv; the paper's 897K leaves out the
    position-bias tables); a tail that cannot make the scale is refused by name."""
    from srkeras import models

    light = models.build("swinir", 4, embed_dim=60, depths=(6,) * 4, num_heads=(6,) * 4, upsampler="pixelshuffledirect")
    assert light.count_params() == 929_628
    with pytest.raises(ValueError, match="upsampler 'nearest\\+conv' does not upscale x3"):
        models.build("swinir", 3, embed_dim=8, depths=(1,), num_heads=(2,), upsampler="nearest+conv")


@pytest.mark.parametrize(("name", "npz", "scale"), [("tiny_swinir_x2_pixelshuffle", "tiny_swinir_expected.npz", 2),
                                                    ("tiny_dat_light_x2", "tiny_expected.npz", 2)])  # fmt: skip
def test_window_attention_runs_in_bfloat16(name, npz, scale):
    """Under the serving's mixed_bfloat16 policy (srkeras.inference.precision) the position biases
    and shift masks follow the logits' dtype (they were float32 and the addition failed, DAT too):
    within 2.5 grey levels of torch's float32."""
    from srkeras.inference.precision import float32_layers, with_policies

    expected = np.load(REFS / npz)
    model = _convert(name)[0]
    want = expected[name]
    x = expected["input_rgb" if "input_rgb" in expected else "input"][
        :, : want.shape[1] // scale, : want.shape[2] // scale
    ]
    y = np.asarray(with_policies(model, "mixed_bfloat16", float32_layers(model))(x), np.float32)
    assert np.abs(y - want).max() < 0.01
