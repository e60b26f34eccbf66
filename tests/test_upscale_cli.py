"""`python -m pipelines.upscale`: modes kept, metadata carried, bad files reported, no overwrites."""

import keras
import numpy as np
import pytest
from PIL import Image

from pipelines.upscale import main
from srkeras.data import imresize, png16, quantize, read_image
from srkeras.inference import load_generator, upscale
from srkeras.models.layers import PixelShuffle

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(12, 3, padding="same")(x)
    p = tmp_path_factory.mktemp("m") / "tiny.keras"
    keras.Model(inp, PixelShuffle(2)(x)).save(p)
    return p


def _u8(h, w, c):
    return (RNG.random((h, w, c)) * 255).astype(np.uint8)


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(_u8(20, 23, 3)).save(d / "rgb.png", icc_profile=b"my-icc-profile")
    Image.fromarray(_u8(18, 15, 4), "RGBA").save(d / "rgba.png")
    Image.fromarray(_u8(16, 17, 1)[..., 0], "L").save(d / "grey.png")
    Image.fromarray(_u8(14, 12, 3)).quantize(16).save(d / "pal.png")
    png16.write_png16(d / "deep.png", RNG.random((13, 11, 3)), alpha=RNG.random((13, 11)))
    im = Image.fromarray(_u8(10, 16, 3))
    ex = Image.Exif()
    ex[0x0112] = 6
    im.save(d / "rot.jpg", exif=ex.tobytes(), quality=95)
    (d / "text.png").write_text("not an image")
    good = (d / "rgb.png").read_bytes()
    (d / "trunc.png").write_bytes(good[: len(good) // 2])
    Image.fromarray(_u8(40, 40, 3)).save(d / "big.png")
    return d


def test_cli_modes_metadata_and_failures(tmp_path, inputs, model_path, capsys):
    out = tmp_path / "out"
    rc = main([str(inputs), "--model", str(model_path), "--scale", "2", "--out", str(out), "--tile", "6",
               "--max-pixels", "1000", "--quiet"])
    text = capsys.readouterr()
    assert rc == 1  # something failed
    assert "written 6, skipped 0, failed 3" in text.out
    for bad, why in [("text.png", "not an image"), ("trunc.png", "truncated"), ("big.png", "--max-pixels")]:
        assert any(bad in line and why in line for line in text.out.splitlines()), (bad, text.out)
    with Image.open(out / "rgb.png") as im:
        assert im.mode == "RGB" and im.size == (46, 40) and im.info.get("icc_profile") == b"my-icc-profile"
        model = load_generator(model_path)
        src = read_image(inputs / "rgb.png").pixels
        # Tiled (--tile 6) vs untiled float32: 1 grey level where a rounding tie can flip.
        assert np.abs(np.asarray(im).astype(int) - quantize(upscale(model, src, tile=0), 8)).max() <= 1
    with Image.open(out / "rgba.png") as im:
        assert im.mode == "RGBA" and im.size == (30, 36)
        a_src = np.asarray(Image.open(inputs / "rgba.png"))[..., 3] / 255.0
        expected = quantize(np.clip(imresize(a_src, 2.0), 0, 1), 8)
        assert np.abs(np.asarray(im)[..., 3].astype(int) - expected).max() <= 1  # alpha: bicubic
    with Image.open(out / "grey.png") as im:
        assert im.mode == "L" and im.size == (34, 32)
    with Image.open(out / "pal.png") as im:
        assert im.mode == "P" and im.size == (24, 28)
    deep = read_image(out / "deep.png")
    assert deep.bit_depth == 16 and deep.alpha is not None and deep.pixels.shape == (26, 22, 3)
    with Image.open(out / "rot.jpg") as im:
        assert im.size == (20, 32)  # EXIF orientation 6 applied: 16x10 stored -> 10x16 upright -> x2
    assert not list(out.glob(".*"))  # no temp files left behind


def test_cli_never_overwrites_without_flag(tmp_path, inputs, model_path, capsys):
    out = tmp_path / "out"
    args = [str(inputs / "rgb.png"), str(inputs / "g*.png"), "--model", str(model_path), "--out", str(out), "--quiet"]
    assert main(args) == 0
    before = (out / "rgb.png").read_bytes()
    (out / "grey.png").write_bytes(b"keep me")
    capsys.readouterr()
    assert main(args) == 0
    assert "written 0, skipped 2" in capsys.readouterr().out
    assert (out / "grey.png").read_bytes() == b"keep me" and (out / "rgb.png").read_bytes() == before
    assert main(args + ["--overwrite"]) == 0
    assert (out / "grey.png").read_bytes() != b"keep me"


def test_cli_model_errors(tmp_path, inputs, model_path, monkeypatch, capsys):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "zoo"))
    assert main([str(inputs / "rgb.png"), "--model", "srresnet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "srresnet.keras" in err and "pipelines.train" in err
    assert main([str(inputs / "rgb.png"), "--model", str(model_path), "--scale", "4", "--out", str(tmp_path / "o")]) == 2
    assert "x2" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.png"), "--model", str(model_path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "missing.png: no such file" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value, least", [("--batch-size", "0", 1), ("--tile", "-5", 0), ("--max-pixels", "0", 1)])
def test_out_of_range_numbers_exit_2_before_any_work(tmp_path, capsys, flag, value, least):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "a.png"), "--model", "m", "--out", str(tmp_path / "o"), flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}: {value} is not allowed: give an integer >= {least}" in err, err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
