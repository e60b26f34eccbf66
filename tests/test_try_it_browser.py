"""The Try-it page in a real browser: upload a photo through the file widget, upscale, zoom, download.

Playwright drives Debian's Chromium against ``streamlit run mos_app/try_it.py`` (AppTest cannot
drive ``st.file_uploader``). The uploaded file is an RGBA PNG with an odd size; the downloaded PNG
must be the tiled model output (within 1/255 of untiled) with the alpha channel upscaled bicubically,
exactly what ``pipelines.upscale`` writes for the same file.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from tests._browser import ROOT, free_port, launch_chromium, require_browser, start_app, stop
from tests.test_try_it_app import save_tiny_model

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

sync_api = require_browser()


@pytest.fixture
def served_try_it(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    save_tiny_model(models)
    port = free_port()
    proc = start_app(ROOT / "mos_app" / "try_it.py", {"SRKERAS_MODEL_DIR": str(models)}, port, tmp_path / "st.log")
    try:
        yield models / "tiny_x2.keras", f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


def test_upload_upscale_download_in_browser(served_try_it, tmp_path):
    from srkeras.data import imresize, quantize, read_image
    from srkeras.inference import load_generator, upscale

    model_path, base = served_try_it
    rng = np.random.default_rng(3)
    rgba = (rng.random((47, 61, 4)) * 255).astype(np.uint8)
    rgba[..., 3] = np.linspace(0, 255, 61, dtype=np.uint8)[None, :]  # a smooth alpha ramp
    photo = tmp_path / "holiday photo.png"
    Image.fromarray(rgba, "RGBA").save(photo)

    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(base)
            page.locator("input[type='file']").wait_for(state="attached", timeout=60000)
            page.locator("input[type='file']").set_input_files(str(photo))
            page.get_by_text(re.compile(r"Input 61x47 \S+ output 122x94")).wait_for(timeout=60000)
            page.get_by_role("button", name="Upscale").click()
            dl_button = page.get_by_role("button", name="Download SR PNG")
            dl_button.wait_for(timeout=60000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).length == 2", timeout=30000)
            with page.expect_download(timeout=60000) as info:
                dl_button.click()
            download = info.value
            assert download.suggested_filename == "holiday photo_x2.png"
            got = np.asarray(Image.open(io.BytesIO(open(download.path(), "rb").read())))
        finally:
            browser.close()

    img = read_image(photo)
    want_rgb = quantize(upscale(load_generator(str(model_path)), img.pixels, tile=0))
    want_alpha = quantize(np.clip(imresize(img.alpha, 2.0), 0, 1))
    assert got.shape == (94, 122, 4)
    assert np.abs(got[..., :3].astype(int) - want_rgb).max() <= 1
    assert np.abs(got[..., 3].astype(int) - want_alpha).max() <= 1
