"""Architectures behind the pretrained models: parameter counts of the originals, layouts, I/O."""

from __future__ import annotations

import numpy as np
import pytest

from srkeras import models
from srkeras.models.esrgan import PixelUnshuffle

# Counts of the original implementations (Real-ESRGAN/BasicSR, idealo ISR via the UpscalerJS
# manifests, BasicSR EDSR and MSRResNet, RCAN as spandrel 0.4.2 counts it: its MeanShift convs are
# parameters); the ncnn/TF.js files hold exactly these many weights.
COUNTS = [
    ("rrdbnet", 4, {}, 16_697_987),  # RealESRGAN_x4plus / ESRGAN
    ("rrdbnet", 4, {"num_blocks": 6}, 4_467_779),  # RealESRGAN_x4plus_anime_6B
    ("rrdbnet", 2, {"pixel_unshuffle": True}, 16_703_171),  # RealESRGAN_x2plus
    ("srvgg_compact", 4, {}, 621_424),  # realesr-animevideov3
    ("srvgg_compact", 4, {"num_conv": 32}, 1_213_296),  # realesr-general-x4v3
    ("rdn", 4, {"C": 1, "D": 2, "G": 4}, 233_451),  # esrgan-slim x4
    ("rdn", 3, {"C": 1, "D": 10, "G": 64}, 697_975),  # esrgan-medium x3
    ("rrdn", 4, {}, 7_260_740),  # esrgan-thick x4
    ("edsr", 4, {}, 1_517_571),  # EDSR baseline x4
    ("edsr", 2, {}, 1_369_859),  # EDSR baseline x2
    ("msrresnet", 4, {}, 1_517_571),  # BasicSR MSRResNet x4 (EDSR baseline's shape, conv_hr for conv_after_body)
    ("rcan", 4, {}, 15_592_379),  # RCAN x4: 10 groups x 20 RCABs, 1,600 layers deep (nested groups build)
]


@pytest.mark.parametrize(("name", "scale", "options", "count"), COUNTS)
def test_parameter_counts(name, scale, options, count):
    assert models.build(name, scale, **options).count_params() == count


def test_rrdbnet_defaults_unchanged():
    """Existing RRDBNet options keep their defaults: x2/x3 single nearest stage, no unshuffle."""
    m = models.build("rrdbnet", 2, num_blocks=1, num_features=8, growth=4)
    assert "pixel_unshuffle" not in [layer.name for layer in m.layers]
    assert m(np.zeros((1, 5, 7, 3), np.float32)).shape == (1, 10, 14, 3)


def test_pixel_unshuffle_is_pytorch_order():
    x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
    y = np.asarray(PixelUnshuffle(2)(x))
    # torch.pixel_unshuffle on NCHW: out[n, c*4 + dy*2 + dx, i, j] = in[n, c, 2i + dy, 2j + dx]
    nchw = x.transpose(0, 3, 1, 2)
    ref = nchw.reshape(2, 3, 2, 2, 3, 2).transpose(0, 1, 3, 5, 2, 4).reshape(2, 12, 2, 3).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(y, ref)


def test_rrdbnet_pixel_unshuffle_scales():
    x1 = models.build("rrdbnet", 2, pixel_unshuffle=True, num_blocks=1, num_features=8, growth=4)
    assert x1(np.zeros((1, 8, 12, 3), np.float32)).shape == (1, 16, 24, 3)
    from srkeras.models.esrgan import build_rrdbnet

    m = build_rrdbnet(1, pixel_unshuffle=True, num_blocks=1, num_features=8, growth=4)
    assert m.get_layer("conv_first").kernel.shape == (3, 3, 48, 8)
    assert m(np.zeros((1, 8, 12, 3), np.float32)).shape == (1, 8, 12, 3)
    with pytest.raises(ValueError, match="pixel_unshuffle"):
        build_rrdbnet(4, pixel_unshuffle=True, num_blocks=1)


@pytest.mark.parametrize(
    ("name", "scale", "options"),
    [
        ("rdn", 3, {"C": 2, "D": 2, "G": 4, "G0": 8}),
        ("rrdn", 2, {"C": 2, "D": 1, "G": 4, "G0": 8, "T": 1}),
        ("srvgg_compact", 3, {"num_feat": 8, "num_conv": 2}),
        ("edsr", 3, {"num_feat": 8, "num_block": 1}),
        ("edsr", 8, {"num_feat": 8, "num_block": 1, "res_scale": 0.1}),
        ("msrresnet", 3, {"num_feat": 8, "num_block": 1}),
        ("rcan", 8, {"n_resgroups": 2, "n_resblocks": 1, "n_feats": 8, "reduction": 4}),
    ],
)
def test_odd_sizes_and_save_load(name, scale, options, tmp_path):
    import keras

    m = models.build(name, scale, **options)
    x = np.random.default_rng(0).random((1, 5, 7, 3), dtype=np.float32)
    y = np.asarray(m(x))
    assert y.shape == (1, 5 * scale, 7 * scale, 3)
    m.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(again(x)), y, atol=1e-6)


def test_srvgg_is_residual_over_nearest():
    """With a zero last conv, SRVGGNetCompact is nearest-neighbour upscaling of its input."""
    m = models.build("srvgg_compact", 2, num_feat=4, num_conv=1)
    last = m.get_layer("conv2")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    x = np.random.default_rng(1).random((1, 3, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(m(x)), x.repeat(2, 1).repeat(2, 2), atol=1e-7)


def test_edsr_mean_shift_identity():
    """EDSR's mean shift in and out cancel: with a zero conv_last the output is the DIV2K mean."""
    m = models.build("edsr", 2, num_feat=4, num_block=1)
    last = m.get_layer("conv_last")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    y = np.asarray(m(np.zeros((1, 2, 2, 3), np.float32)))
    np.testing.assert_allclose(y[0, 0, 0], [0.4488, 0.4371, 0.4040], atol=1e-6)
