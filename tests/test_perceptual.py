"""Perceptual losses: backbones, preprocessing, pre-activation taps, offline weight loading, presets.

Nothing downloads: backbones are built with ``weights=None`` or from small files saved in tmp.
"""

import functools
import socket
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from srkeras import losses
from srkeras.losses import backbones
from srkeras.losses.backbones import BACKBONES, WeightsNotFoundError, build_backbone, preprocess
from srkeras.losses.features import FeatureExtractor


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    """A random-weight VGG19 (include_top=False) saved as .weights.h5: shared by the preset tests."""
    keras.utils.set_random_seed(19)
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("w") / "vgg19_random.weights.h5"
    model.save_weights(path)
    return path, model


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test loudly instead of hanging."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# ----------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_preprocessing_matches_keras_applications(name):
    spec = BACKBONES[name]
    ref_fn = getattr(keras.applications, spec.module).preprocess_input
    if spec.mode == "torch" and name.endswith("_torch"):  # torchvision weights: torch preprocessing
        ref_fn = functools.partial(keras.applications.imagenet_utils.preprocess_input, mode="torch")
    x01 = _images(2, 8, seed=3)
    ref = np.asarray(ref_fn(x01 * 255.0))
    np.testing.assert_allclose(_np(preprocess(x01, spec.mode)), ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(_np(preprocess(2 * x01 - 1, spec.mode, input_range=(-1, 1))), ref, rtol=1e-5, atol=1e-4)
    assert spec.min_size <= 75 and hasattr(keras.applications, spec.constructor)


def test_preprocessing_modes_are_distinct_and_differentiable():
    x = tf.Variable(_images(1, 4))
    outs = {m: _np(preprocess(x, m)) for m in backbones.MODES}
    # caffe is BGR on 0..255 minus mean: channel 0 is blue - 103.939.
    np.testing.assert_allclose(outs["caffe"][..., 0], x.numpy()[..., 2] * 255 - 103.939, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs["tf"], x.numpy() * 2 - 1, atol=1e-5)
    np.testing.assert_allclose(outs["none"], x.numpy() * 255, rtol=1e-6)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(preprocess(x, "torch"))
    np.testing.assert_allclose(tape.gradient(y, x).numpy()[0, 0, 0], 1 / np.array(backbones.TORCH_STD), rtol=1e-5)


# ----------------------------------------------------------------------------- pre-activation graph


def test_preactivation_rebuild_reproduces_fused_vgg():
    bb = build_backbone("vgg19", weights=None)
    taps = ["block2_conv2:pre", "block2_conv2", "block3_conv1", "block5_conv4:pre", "block5_conv4"]
    fx = FeatureExtractor(bb, taps, preprocessing="caffe")
    # The rebuilt graph shares the backbone's variables (no copies) and is frozen.
    assert {id(w) for w in fx.model.weights} <= {id(w) for w in bb.weights}
    assert fx.model.count_params() == bb.count_params() and not fx.model.trainable_weights
    x = preprocess(_images(2, 32), "caffe")
    pre22, post22, post31, pre54, post54 = (_np(f) for f in fx.model(x))
    names = ["block2_conv2", "block3_conv1", "block5_conv4"]
    ref22, ref31, ref54 = (_np(f) for f in keras.Model(bb.input, [bb.get_layer(n).output for n in names])(x))
    np.testing.assert_array_equal(np.maximum(pre22, 0), ref22)  # relu(pre) == fused output, bit for bit
    np.testing.assert_array_equal(np.maximum(pre54, 0), ref54)
    for got, ref in ((post22, ref22), (post31, ref31), (post54, ref54)):  # downstream of the split too
        np.testing.assert_array_equal(got, ref)
    assert (pre54 < 0).mean() > 0.1 and not np.array_equal(pre54, post54)


def test_layer_errors():
    bb = build_backbone("vgg16", weights=None)
    with pytest.raises(ValueError, match="no layer"):
        FeatureExtractor(bb, "block9_conv9")
    with pytest.raises(ValueError, match="no activation"):
        FeatureExtractor(bb, "block1_pool:pre")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("alexnet", weights=None)


# One build per heavy backbone: keras' own constructor with weights="imagenet" and get_file patched
# (records what keras.applications would download; no network) checks our file table, then the
# model (random init) is used for the feature taps. `taps`: (layer, pre) checked as act(pre) == post.
HEAVY = {
    "resnet152": (["conv4_block36_out", "conv2_block1_1_relu"], 32),
    "resnet152v2": (["post_relu", "conv3_block8_1_relu"], 32),
    "densenet201": (["relu", "pool2_relu"], 32),
    "inception_v3": (["mixed5"], 75),
    "convnext_tiny": (["convnext_tiny_stage_1_block_2_gelu"], 32),
    "efficientnetv2_s": (["block6o_se_reduce", "top_activation"], 32),
    "vgg16": (["block2_conv2"], 32),
}


@pytest.mark.timeout(240)  # a few seconds each; heavy graphs (ResNet152, DenseNet201) on a busy CPU
@pytest.mark.parametrize("name", list(HEAVY))
def test_backbone_weights_file_and_feature_taps(name, monkeypatch):
    from keras.src.utils import file_utils

    spec = BACKBONES[name]
    seen = {}

    def fake_get_file(fname=None, origin=None, **kwargs):
        seen.update(fname=fname, origin=origin, file_hash=kwargs.get("file_hash"))
        return "never-read.h5"

    monkeypatch.setattr(file_utils, "get_file", fake_get_file)
    monkeypatch.setattr(keras.Model, "load_weights", lambda self, *a, **k: None)
    ctor = getattr(keras.applications, spec.constructor)
    model = ctor(include_top=False, weights="imagenet", input_shape=(None, None, 3))
    monkeypatch.undo()
    assert seen == dict(fname=spec.file_name, origin=spec.url, file_hash=spec.file_hash)

    layers, size = HEAVY[name]
    taps = []
    for layer in layers:
        taps += [f"{layer}:post"] + ([f"{layer}:pre"] if name != "inception_v3" else [])
    loss = losses.PerceptualLoss(model, taps, preprocessing=spec.mode)
    x, y = _images(2, size, 1), _images(2, size, 2)
    feats = loss.features(x)
    for i, layer in enumerate(layers):
        if name != "inception_v3":
            post, pre = feats[2 * i], feats[2 * i + 1]
            act = model.get_layer(layer).activation
            np.testing.assert_allclose(_np(act(pre)), _np(post), rtol=1e-6, atol=1e-6)
            assert not np.allclose(_np(pre), _np(post))
    apart = _np(loss(x, y))  # identical images: 0 up to the rounding of the batched pass (see test_study)
    assert apart > 0 and abs(_np(loss(x, x))) <= 1e-9 * apart


# ----------------------------------------------------------------------------- loss values


def _ref_features(model, layer, images):
    sub = keras.Model(model.input, model.get_layer(layer).output)
    return _np(sub(keras.applications.vgg19.preprocess_input(images * 255.0)))


def test_presets_match_hand_computed_features(vgg19_file):
    path, model = vgg19_file
    x, y = _images(2, 32, 4), _images(2, 32, 5)
    fx, fy = _ref_features(model, "block5_conv4", x), _ref_features(model, "block5_conv4", y)
    # SRGAN VGG54: MSE of feature maps rescaled by 1/12.75 (eq. 5), per image.
    vgg54 = losses.perceptual_loss("vgg54", weights=path)
    per_image = (((fx - fy) / 12.75) ** 2).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(_np(vgg54.call(y, x)), per_image, rtol=2e-3)
    np.testing.assert_allclose(_np(vgg54(y, x)), per_image.mean(), rtol=2e-3)
    f22x, f22y = _ref_features(model, "block2_conv2", x), _ref_features(model, "block2_conv2", y)
    vgg22 = losses.perceptual_loss("vgg22", weights=path)
    np.testing.assert_allclose(_np(vgg22(y, x)), np.mean(((f22x - f22y) / 12.75) ** 2), rtol=2e-3)
    # Per-layer weights add up.
    layer_weights = {"block2_conv2": 2.0, "block5_conv4": 0.5}
    both = losses.PerceptualLoss("vgg19", layer_weights, weights=path, feature_scale=1 / 12.75)
    np.testing.assert_allclose(_np(both(y, x)), 2 * _np(vgg22(y, x)) + 0.5 * _np(vgg54(y, x)), rtol=1e-5)


def test_preactivation_loss_differs_from_post(vgg19_file):
    path, _ = vgg19_file
    x, y = _images(2, 32, 6), _images(2, 32, 7)
    pre = losses.perceptual_loss("vgg54_preact", weights=path)
    post = losses.PerceptualLoss("vgg19", "block5_conv4", weights=path, criterion="l1")
    assert pre.extractor.taps == [("block5_conv4", True)] and pre.criterion == "l1"
    assert _np(pre(x, x)) == 0.0
    lp, lq = float(_np(pre(y, x))), float(_np(post(y, x)))
    # ReLU is 1-Lipschitz, so |relu(a) - relu(b)| <= |a - b|: strictly smaller once features go negative.
    assert lp > lq > 0


def test_johnson_relu2_2_preset():
    keras.utils.set_random_seed(16)
    vgg16 = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    loss = losses.perceptual_loss("vgg16_relu2_2", weights=None)
    assert loss.extractor.taps == [("block2_conv2", False)] and loss.criterion == "l2"
    loss.extractor.backbone.set_weights(vgg16.get_weights())  # extractor shares the backbone variables
    x, y = _images(1, 32, 8), _images(1, 32, 9)
    sub = keras.Model(vgg16.input, vgg16.get_layer("block2_conv2").output)
    fx, fy = (_np(sub(keras.applications.vgg16.preprocess_input(v * 255.0))) for v in (x, y))
    # Johnson eq. 2: ||phi(y^) - phi(y)||_2^2 / (C H W).
    np.testing.assert_allclose(_np(loss(y, x)), np.sum((fx - fy) ** 2) / fx.size, rtol=2e-3)


def test_gradients_grey_inputs_fit_and_serialization(vgg19_file, tmp_path):
    path, _ = vgg19_file
    loss = losses.PerceptualLoss("vgg19", "block2_conv2:pre", weights=path, criterion="l1", input_range=(-1, 1))
    y_true = tf.Variable(_images(2, 16, 10) * 2 - 1)
    y_pred = tf.Variable(_images(2, 16, 11) * 2 - 1)
    with tf.GradientTape() as tape:
        value = loss(y_true, y_pred)
    g_true, g_pred = tape.gradient(value, [y_true, y_pred])
    assert g_true is None or not np.any(g_true.numpy())  # targets are constants
    assert np.all(np.isfinite(g_pred.numpy())) and np.abs(g_pred.numpy()).sum() > 0
    # Grey (Y) images are replicated to RGB.
    grey = _images(1, 16, 12)[..., :1]
    np.testing.assert_array_equal(_np(loss.features(grey)[0]), _np(loss.features(np.repeat(grey, 3, -1))[0]))
    # Works inside model.fit (tf.function graph mode, pre-activation split traced).
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 3, padding="same")])
    model.compile(optimizer="sgd", loss=loss)
    hist = model.fit(_images(2, 16, 13), _images(2, 16, 14), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    # Config round trip rebuilds the same loss from the weights file.
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.extractor.taps == loss.extractor.taps and clone.extractor.input_range == (-1.0, 1.0)
    np.testing.assert_allclose(_np(clone(y_true, y_pred)), _np(value), rtol=1e-6)


# ----------------------------------------------------------------------------- offline weights


def test_weights_from_local_files(tmp_path, monkeypatch, no_network):
    keras.utils.set_random_seed(7)
    src = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    x = preprocess(_images(1, 32, 15), "caffe")
    ref = _np(keras.Model(src.input, src.get_layer("block3_conv3").output)(x))

    new_format = tmp_path / "vgg16_random.weights.h5"
    src.save_weights(new_format)
    fx = FeatureExtractor("vgg16", "block3_conv3", weights=new_format)
    np.testing.assert_array_equal(_np(fx.model(x)), ref)
    assert not fx.backbone.trainable and not fx.backbone.trainable_weights

    # weights="imagenet" reads the Keras cache: a legacy .h5 under $KERAS_HOME/models with the right name.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    cached = tmp_path / "keras_home" / "models" / BACKBONES["vgg16"].file_name
    cached.parent.mkdir(parents=True)
    src.save(cached)  # legacy HDF5, the format of the keras.applications files
    bb = build_backbone("vgg16", weights="imagenet", check_hash=False)
    np.testing.assert_array_equal(_np(keras.Model(bb.input, bb.get_layer("block3_conv3").output)(x)), ref)
    # With the hash check (default) a file that is not the published one is rejected, naming it and the URL.
    with pytest.raises(WeightsNotFoundError) as err:
        build_backbone("vgg16", weights="imagenet")
    assert str(cached) in str(err.value) and BACKBONES["vgg16"].url in str(err.value)

    with pytest.raises(WeightsNotFoundError, match="nowhere.weights.h5"):
        FeatureExtractor("vgg16", "block1_conv1", weights=tmp_path / "nowhere.weights.h5")


@pytest.mark.parametrize(
    "name, file_name",
    [
        ("vgg54", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("vgg16_relu2_2", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ],
)
def test_missing_imagenet_weights_fail_fast_with_instructions(name, file_name, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # a real cached file must not interfere
    folder = file_name.split("_weights")[0]
    url = f"https://storage.googleapis.com/tensorflow/keras-applications/{folder}/{file_name}"
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as err:
        losses.perceptual_loss(name)  # weights="imagenet" by default
    assert time.perf_counter() - start < 1.0
    msg = str(err.value)
    assert file_name in msg and url in msg and str(tmp_path / "models" / file_name) in msg
    assert isinstance(err.value, FileNotFoundError)
