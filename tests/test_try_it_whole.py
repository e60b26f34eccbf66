"""Try-it (issue 23): a whole-image view beside the 384-px crops, and a progress bar that moves
during the first tile."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.test_try_it_app import APP, save_tiny_model


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    save_tiny_model(tmp_path)
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))
    return tmp_path


def test_whole_image_view(model_dir):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.selectbox(key="sample").select("coffee").run()  # 400x600 -> 800x1200
    at.button(key="run").click().run()
    at.radio(key="view").set_value("Whole image").run()
    assert not at.exception
    imgs = at.get("image")
    assert len(imgs) == 2 and not at.get("slider")  # the crops' zoom and centre are gone
    caption = next(c.value for c in at.caption if c.value.startswith("Whole "))
    assert caption.startswith("Whole 1200x800 output shown at 1200x800")
    res = at.session_state["result"]
    assert np.array_equal(res["preview_sr"], res["sr"]) and np.array_equal(res["preview_bicubic"], res["bicubic"])
    at.radio(key="view").set_value("Crops (pixel-exact)").run()
    assert not at.exception and len(at.get("image")) == 2 and at.slider(key="zoom").value == 1


def test_preview_is_the_block_mean_without_a_full_copy():
    from mos_app.try_it import preview

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2500, 301, 3), dtype=np.uint8)
    got = preview(img, longest=1200)  # factor 3: 833 x 100 blocks
    assert got.shape == (833, 100, 3) and got.dtype == np.uint8
    want = img[:2499, :300].reshape(833, 3, 100, 3, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(got.astype(float) - want).max() <= 0.5
    small = img[:100, :100]
    assert preview(small) is small


def test_progress_moves_during_the_first_tile():
    from mos_app.try_it import progress_fraction, run_with_progress

    shown = []

    def one_slow_tile(tick):
        time.sleep(0.8)
        tick(1)
        return "done"

    assert run_with_progress(one_slow_tile, 1, lambda f, text: shown.append((f, text)), poll_s=0.05,
                             first_tile_s=0.5) == "done"
    fractions = [f for f, _ in shown]
    assert len(fractions) >= 5 and 0 < fractions[0] < fractions[-1] < 1, fractions
    assert all(b >= a for a, b in zip(fractions, fractions[1:])) and "tile 1/1 running" in shown[-1][1]
    # a finished tile's mark is never passed before the next tile is done
    assert progress_fraction(1, 4, 1e6, 1.0) < 2 / 4 and progress_fraction(4, 4, 0, 1.0) == 1.0
