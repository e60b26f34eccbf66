"""Model zoo: published/hand-computed parameter counts, MATLAB-exact BicubicUpsample, shapes on odd and
dynamic sizes, .keras round trips, registry errors and ESRGAN network interpolation."""

import keras
import numpy as np
import pytest

from srkeras import models
from srkeras.data import imresize
from srkeras.models.layers import BicubicUpsample, PixelShuffle, ScaledHeNormal, bicubic_phase_taps

GENERATORS = ["srcnn", "srcnn_955", "espcn", "srresnet", "rrdbnet", "johnson"]
DISCRIMINATORS = ["srgan_discriminator", "esrgan_discriminator"]
# Reduced variants (same layer types) where the full model is too slow for a unit test.
SMALL = {
    "srresnet": {"num_blocks": 2, "num_features": 16},
    "rrdbnet": {"num_blocks": 1, "num_features": 16, "growth": 8},
    "johnson": {"num_blocks": 2, "num_features": 16},
    "srgan_discriminator": {"num_features": 8},
    "esrgan_discriminator": {"num_features": 8},
}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _kernels_only(model):
    # Paper parameter counts of SRCNN exclude biases.
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights if len(w.shape) == 4)


def _rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


@pytest.fixture(scope="module")
def rrdbnet_x4():
    return models.build("rrdbnet", scale=4)


# ------------------------------------------------------------------------------------------ registry


def test_names_lists_the_zoo():
    assert set(GENERATORS + DISCRIMINATORS) <= set(models.names())
    assert set(models.names("discriminator")) == set(DISCRIMINATORS)


def test_unknown_name_lists_available_models():
    with pytest.raises(ValueError, match="unknown model 'vdsr'.*rrdbnet.*srresnet"):
        models.build("vdsr")


def test_unsupported_scale_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'johnson' does not support scale 3; supported scales: 2, 4, 8"):
        models.build("johnson", scale=3)
    with pytest.raises(ValueError, match="does not support scale"):
        models.build("srresnet", scale=2.5)
    with pytest.raises(ValueError, match="does not support scale"):
        models.build("srcnn", scale="x4")


def test_unknown_option_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no option\(s\) \['blocks'\].*num_blocks"):
        models.build("srresnet", blocks=3)


def test_generator_names_carry_the_scale():
    assert models.build("srresnet", scale=4, **SMALL["srresnet"]).name == "srresnet_x4"
    assert models.build("srcnn", scale=3).name == "srcnn_915_y_x3"
    assert models.build("srcnn", scale=2, channels=3).name == "srcnn_915_rgb_x2"
    assert models.build("rrdbnet", scale=2, **SMALL["rrdbnet"]).name == "rrdbnet_x2"


# ------------------------------------------------------------------------------------ parameter counts


def test_srcnn_parameter_counts_match_the_paper():
    # Dong et al. 2016, sec. 4.3: 9-1-5 has 8,032 weights, 9-5-5 has 57,184 (biases excluded).
    m915 = models.build("srcnn", scale=3, channels=1)
    m955 = models.build("srcnn_955", scale=3, channels=1)
    assert m915.count_params() == 8129
    assert _kernels_only(m915) == 8032
    assert m955.count_params() == 57281
    assert _kernels_only(m955) == 57184
    assert models.build("srcnn", scale=3, variant="955").count_params() == 57281
    # RGB: the first and last layers see 3 channels.
    assert models.build("srcnn", scale=3, channels=3).count_params() == 8129 + 2 * 81 * 64 + 2 * 25 * 32 + 2


def test_srresnet_x4_has_1550659_trainable_parameters():
    m = models.build("srresnet", scale=4)
    assert _trainable(m) == 1_550_659
    # Non-trainable: BN moving mean/variance of 33 BN layers x 64 channels x 2.
    assert m.count_params() - _trainable(m) == 33 * 64 * 2


def test_rrdbnet_x4_has_16697987_parameters(rrdbnet_x4):
    assert rrdbnet_x4.count_params() == 16_697_987
    assert _trainable(rrdbnet_x4) == 16_697_987  # no BN


def test_rrdbnet_full_size_runs_on_a_tiny_input(rrdbnet_x4):
    y = rrdbnet_x4(_rand((1, 12, 10, 3)))
    assert tuple(y.shape) == (1, 48, 40, 3)


def test_rrdbnet_dense_convs_use_scaled_he_init(rrdbnet_x4):
    layer = rrdbnet_x4.get_layer("rrdb0_rdb0_conv5")  # 3x3 conv, fan_in 9 * (64 + 4 * 32)
    assert isinstance(layer.kernel_initializer, ScaledHeNormal)
    std = float(np.std(np.asarray(layer.kernel)))
    assert std == pytest.approx(0.1 * np.sqrt(2.0 / (9 * 192)), rel=0.03)


def test_discriminator_parameter_counts_hand_computed():
    # SRGAN D, 96x96 input: 8 convs + 7 BN (gamma, beta) + dense 6*6*512 -> 1024 -> 1.
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    expected = sum(9 * a * b + b for a, b in convs) + 2 * sum(b for _, b in convs[1:])
    expected += 6 * 6 * 512 * 1024 + 1024 + 1024 + 1
    assert expected == 23_565_505
    assert _trainable(models.build("srgan_discriminator")) == expected
    # BasicSR VGGStyleDiscriminator128 (PyTorch parameter count, BN buffers excluded): 14,499,401.
    assert _trainable(models.build("esrgan_discriminator")) == 14_499_401


def test_espcn_and_johnson_parameter_counts_hand_computed():
    # ESPCN x3 Y: 5*5*1*64+64, 3*3*64*32+32, 3*3*32*9+9.
    assert models.build("espcn", scale=3).count_params() == 1664 + 18464 + 2601
    # Johnson x4: conv9 3->64, 4 blocks of 2 conv3 + 2 BN, 2 deconv3 + BN, conv9 64->3; BN gamma/beta only.
    expected = (81 * 3 * 64 + 64 + 128) + 4 * (2 * (9 * 64 * 64 + 64) + 256) + 2 * (9 * 64 * 64 + 64 + 128)
    expected += 81 * 64 * 3 + 3
    assert _trainable(models.build("johnson", scale=4)) == expected == 401_859


def test_upsampling_stages_follow_the_scale():
    m3 = models.build("srresnet", scale=3, **SMALL["srresnet"])
    assert m3.get_layer("up0_shuffle").scale == 3
    assert "up1_shuffle" not in [layer.name for layer in m3.layers]
    m4 = models.build("srresnet", scale=4, **SMALL["srresnet"])
    assert [m4.get_layer(f"up{i}_shuffle").scale for i in range(2)] == [2, 2]
    j8 = models.build("johnson", scale=8, **SMALL["johnson"])
    assert sum(isinstance(layer, keras.layers.Conv2DTranspose) for layer in j8.layers) == 3


# ------------------------------------------------------------------------------------- custom layers


def test_bicubic_taps_hand_computed_for_x2():
    # Output phase 0 samples LR offset -0.25: cubic at distances 1.75, 0.75, 0.25, 1.25, 2.25.
    taps = bicubic_phase_taps(2)
    np.testing.assert_allclose(taps[0], [-0.0234375, 0.2265625, 0.8671875, -0.0703125, 0.0], atol=1e-15)
    np.testing.assert_allclose(taps[1], taps[0][::-1], atol=1e-15)
    for s in (2, 3, 4):
        np.testing.assert_allclose(bicubic_phase_taps(s).sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (7, 5), (37, 53)])
def test_bicubic_upsample_equals_matlab_imresize(scale, hw):
    lr = _rand((2, *hw, 3), seed=scale)
    expected = imresize(lr.astype(np.float64), scale)
    got = np.asarray(BicubicUpsample(scale)(lr))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_bicubic_upsample_on_a_photo_grey_and_overshoot():
    from srkeras.data.samples import SAMPLE_NAMES, sample_image

    img = sample_image(SAMPLE_NAMES[0])[:60, :45]
    lr = imresize(img, 1 / 3)  # MATLAB degradation, then back up by 3
    y = lr[..., :1]
    for x in (lr, y):
        got = np.asarray(BicubicUpsample(3)(x[None].astype("float32")))[0]
        np.testing.assert_allclose(got, imresize(x.astype(np.float64), 3), atol=1e-5, rtol=0)


def test_custom_layers_trace_with_unknown_height_and_width():
    import tensorflow as tf

    for layer, c in ((BicubicUpsample(3), 2), (PixelShuffle(2), 8)):
        fn = tf.function(layer, input_signature=[tf.TensorSpec([None, None, None, c], tf.float32)])
        for h, w in ((5, 7), (9, 4)):
            assert tuple(fn(tf.zeros((1, h, w, c))).shape)[1:3] == (h * layer.scale, w * layer.scale)


def test_pixel_shuffle_order_is_tensorflow_dcr():
    x = np.arange(8, dtype="float32").reshape(1, 1, 1, 8)  # C=2, r=2: channel (dy*2 + dx)*2 + c
    y = np.asarray(PixelShuffle(2)(x))
    np.testing.assert_array_equal(y[0, :, :, 0], [[0, 2], [4, 6]])
    np.testing.assert_array_equal(y[0, :, :, 1], [[1, 3], [5, 7]])


def test_srcnn_starts_with_matlab_bicubic():
    m = models.build("srcnn", scale=3)
    lr = _rand((1, 11, 13, 1))
    up = keras.Model(m.input, m.get_layer("bicubic").output)(lr)
    np.testing.assert_allclose(np.asarray(up)[0], imresize(lr[0].astype(np.float64), 3), atol=1e-5)


# ------------------------------------------------------------------------ shapes, channels, round trip


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_on_odd_sizes(name):
    opts = SMALL.get(name, {})
    for scale in models.spec(name).scales:
        if scale == 8:
            continue
        m = models.build(name, scale=scale, **opts)
        c = m.input_shape[-1]
        y = m(_rand((2, 37, 53, c)))
        assert tuple(y.shape) == (2, 37 * scale, 53 * scale, c), (name, scale)


def test_full_srresnet_on_odd_size():
    y = models.build("srresnet", scale=4)(_rand((1, 37, 53, 3)))
    assert tuple(y.shape) == (1, 148, 212, 3)


@pytest.mark.parametrize("name", ["srcnn", "srcnn_955", "espcn"])
def test_y_only_defaults_take_grey_input(name):
    m = models.build(name, scale=3)
    assert m.input_shape == (None, None, None, 1)
    assert tuple(m(_rand((1, 9, 11, 1))).shape) == (1, 27, 33, 1)


@pytest.mark.parametrize("name", ["srresnet", "rrdbnet", "johnson"])
def test_rgb_generators_have_a_grey_variant(name):
    m = models.build(name, scale=4, channels=1, **SMALL[name])
    assert tuple(m(_rand((1, 9, 11, 1))).shape) == (1, 36, 44, 1)


def test_johnson_output_is_in_unit_range():
    y = np.asarray(models.build("johnson", scale=4, **SMALL["johnson"])(_rand((1, 8, 8, 3)) * 50 - 25))
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_discriminators_return_one_logit_per_image():
    d = models.build("srgan_discriminator", **SMALL["srgan_discriminator"])
    assert tuple(d(_rand((2, 96, 96, 3))).shape) == (2, 1)
    e = models.build("esrgan_discriminator", **SMALL["esrgan_discriminator"])
    assert tuple(e(_rand((2, 128, 128, 3))).shape) == (2, 1)
    assert models.build("srgan_discriminator", input_size=64, num_features=8).input_shape == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="128 or 256"):
        models.build("esrgan_discriminator", input_size=96)


@pytest.mark.parametrize("name", GENERATORS + DISCRIMINATORS)
def test_keras_round_trip(name, tmp_path):
    opts = SMALL.get(name, {})
    m = models.build(name, **opts) if name in DISCRIMINATORS else models.build(name, scale=3 if name != "johnson" else 4, **opts)
    shape = (2, *m.input_shape[1:3], 3) if name in DISCRIMINATORS else (2, 7, 9, m.input_shape[-1])
    x = _rand(shape, seed=1)
    path = tmp_path / f"{name}.keras"
    m.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: layers are registered
    assert loaded.name == m.name
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(m(x)))
    if name not in DISCRIMINATORS:  # dynamic H, W survive the round trip
        assert tuple(loaded(_rand((1, 5, 6, shape[-1]))).shape)[1:3] == tuple(m(_rand((1, 5, 6, shape[-1]))).shape)[1:3]


# --------------------------------------------------------------------------------------- interpolation


def _pair(**opts):
    keras.utils.set_random_seed(1)
    a = models.build("srresnet", scale=2, **opts)
    keras.utils.set_random_seed(2)
    b = models.build("srresnet", scale=2, **opts)
    return a, b


def test_interpolate_endpoints_and_midpoint():
    a, b = _pair(**SMALL["srresnet"])
    x = _rand((1, 6, 7, 3))
    np.testing.assert_allclose(np.asarray(models.interpolate(a, b, 0.0)(x)), np.asarray(a(x)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(models.interpolate(a, b, 1.0)(x)), np.asarray(b(x)), atol=1e-6)
    assert not np.allclose(np.asarray(a(x)), np.asarray(b(x)))  # the test can fail
    mid = models.interpolate(a, b, 0.5)
    for wm, wa, wb in zip(mid.get_weights(), a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wm, (wa + wb) / 2, atol=1e-7)
    # The inputs are left untouched.
    assert not np.allclose(a.get_weights()[0], mid.get_weights()[0])


def test_interpolate_rejects_different_architectures():
    a, _ = _pair(**SMALL["srresnet"])
    deeper = models.build("srresnet", scale=2, num_blocks=3, num_features=16)
    wider = models.build("srresnet", scale=2, num_blocks=2, num_features=8)
    with pytest.raises(ValueError, match="different architectures"):
        models.interpolate(a, deeper, 0.5)
    with pytest.raises(ValueError, match="layer 1 differs"):
        models.interpolate(a, wider, 0.5)


# ------------------------------------------------------------------------------ benchmark MAC counter


def test_mac_count_hand_computed():
    from benchmarks.bench_models import count_macs

    # SRCNN 9-1-5 Y: 81*64 + 64*32 + 25*32 = 8,032 MACs per HR pixel (Dong et al. 2016, sec. 4.3)
    # plus 25 for the bicubic layer's 5x5 phase filter.
    assert count_macs(models.build("srcnn", scale=3), (1, 10, 10, 1)) == (8032 + 25) * 30 * 30
    # Johnson x4 on 10x10 LR: conv9 at LR, 8 conv3 at LR, deconvs on 10x10 and 20x20 inputs, conv9 at HR.
    expected = 100 * 81 * 3 * 64 + 8 * 100 * 9 * 64 * 64 + (100 + 400) * 9 * 64 * 64 + 1600 * 81 * 64 * 3
    assert count_macs(models.build("johnson", scale=4), (1, 10, 10, 3)) == expected
