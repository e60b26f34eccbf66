"""The 'Try it' page: pick model + sample, upscale, synchronised crops, PNG download."""

import io

import keras
import numpy as np
import pytest
from PIL import Image

from srkeras.models.layers import PixelShuffle

APP = __import__("pathlib").Path(__file__).resolve().parents[1] / "mos_app" / "try_it.py"


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(12, 3, padding="same")(inp)
    keras.Model(inp, PixelShuffle(2)(x)).save(tmp_path / "tiny_x2.keras")
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
    assert dl.label == "Download SR PNG"
    at.slider(key="zoom").set_value(4).run()
    at.slider(key="cx").set_value(10).run()
    assert not at.exception and len(at.get("image")) == 2
    # Synchronised zoom: the two crops come from the same window of the bicubic and SR images.
    from mos_app.try_it import VIEW, _crop  # noqa: F401 - imports the page module's helper
    res = at.session_state["result"]
    assert res["sr"].shape == res["bicubic"].shape == (800, 1200, 3)
    a, b = _crop(res["bicubic"], 0.5, 0.1, 4), _crop(res["sr"], 0.5, 0.1, 4)
    assert a.shape == b.shape == (VIEW, VIEW, 3)


def test_try_it_without_models(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    assert "No models" in at.warning[0].value and "pipelines.train" in at.warning[0].value
