"""The 'Try it' page: pick model + sample, upscale, synchronised crops, PNG download."""

import io

import keras
import numpy as np
import pytest
from PIL import Image

from srkeras.models.layers import PixelShuffle

APP = __import__("pathlib").Path(__file__).resolve().parents[1] / "mos_app" / "try_it.py"


def save_tiny_model(folder) -> None:
    """folder/tiny_x2.keras: conv 3x3 -> PixelShuffle x2 (random weights), for the Try-it tests."""
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(12, 3, padding="same")(inp)
    keras.Model(inp, PixelShuffle(2)(x)).save(folder / "tiny_x2.keras")


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    save_tiny_model(tmp_path)
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))
    return tmp_path


def test_try_it_page(model_dir):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").options == ["tiny_x2"]
    at.selectbox(key="sample").select("coffee").run()  # 400x600
    at.button(key="run").click().run()
    assert not at.exception
    imgs = at.get("image")
    assert len(imgs) == 2
    dl = at.get("download_button")[0]
    assert dl.label.startswith("Download SR PNG (")
    at.slider(key="zoom").set_value(4).run()
    at.slider(key="cx").set_value(10).run()
    assert not at.exception and len(at.get("image")) == 2
    # Synchronised zoom: the two crops come from the same window of the bicubic and SR images.
    from mos_app.try_it import VIEW, _crop  # noqa: F401 - imports the page module's helper
    res = at.session_state["result"]
    assert res["sr"].shape == res["bicubic"].shape == (800, 1200, 3) and res["sr"].dtype == np.uint8
    a, b = _crop(res["bicubic"], 0.5, 0.1, 4), _crop(res["sr"], 0.5, 0.1, 4)
    assert a.shape == b.shape == (VIEW, VIEW, 3)
    # What is shown and downloaded is the untiled model output and MATLAB bicubic, 8-bit.
    from srkeras.data import imresize, quantize
    from srkeras.data.samples import sample_image
    from srkeras.inference import load_generator, upscale

    photo = sample_image("coffee")
    want = quantize(upscale(load_generator(str(model_dir / "tiny_x2.keras")), photo, tile=0))
    assert np.abs(res["sr"].astype(int) - want).max() <= 1
    assert np.array_equal(res["bicubic"], quantize(imresize(photo, 2.0)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(res["png"]))), res["sr"])


def test_super_resolve_keeps_alpha_and_16_bit(model_dir):
    """The download PNG keeps the input's alpha (bicubic) and bit depth, like pipelines.upscale."""
    from mos_app.try_it import super_resolve
    from srkeras.data import imresize, quantize
    from srkeras.data.png16 import decode
    from srkeras.inference import load_generator, upscale

    m = load_generator(str(model_dir / "tiny_x2.keras"))
    rng = np.random.default_rng(0)
    px, alpha = rng.random((37, 29, 3), dtype=np.float32), rng.random((37, 29), dtype=np.float32)
    res = super_resolve(m, px, alpha, max_memory="50MB", bit_depth=16)
    sr = upscale(m, px, tile=0)
    assert res["sr"].shape == (74, 58, 3)
    d = decode(res["png"])
    png = d["samples"]
    assert d["depth"] == 16 and png.dtype == np.uint16 and png.shape == (74, 58, 4)
    assert np.abs(png[..., 3].astype(int) - quantize(np.clip(imresize(alpha, 2.0), 0, 1), 16)).max() <= 1
    assert np.abs(png[..., :3].astype(int) - quantize(sr, 16)).max() <= 257  # 1/255, tiled vs untiled


def test_try_it_without_models(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    assert "No models" in at.warning[0].value and "pipelines.train" in at.warning[0].value
