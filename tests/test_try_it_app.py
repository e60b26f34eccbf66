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
    # Band-wise and whole-image bicubic are two float32 computations: at a rounding tie (121.49999 vs
    # 121.5) their 8-bit values differ by one grey level, so 1 is the meaningful tolerance.
    assert np.abs(res["bicubic"].astype(int) - quantize(imresize(photo, 2.0))).max() <= 1
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


def _png_declaring(path, width: int, height: int) -> None:
    """A small, valid grey PNG of ``width`` x ``height`` zeros (compressed row by row)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height):
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


_UPLOAD_PROBE = r"""
import resource, sys
from pathlib import Path
from mos_app.try_it import _load_input
from srkeras.data import ImageLoadError

class Upload:  # what st.file_uploader hands the page
    def __init__(self, path, name):
        self.name, self._path = name, path
    def getvalue(self):
        return Path(self._path).read_bytes()

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    _load_input(Upload(sys.argv[1], "holiday photo.png"), None)
    print("ACCEPTED")
except ImageLoadError as e:
    print("REFUSED", e)
print("PEAK_MB", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_huge_declared_upload_is_refused_from_its_header(tmp_path):
    """A 250 KB PNG declaring 16000x16000 (under the CLI's guard) is refused before decoding: the
    page's peak memory stays small, the message names the upload and suggests no CLI flag."""
    import subprocess
    import sys
    import tempfile

    png = tmp_path / "bomb.png"
    _png_declaring(png, 16000, 16000)
    assert png.stat().st_size < 2_000_000
    root = APP.parents[1]
    r = subprocess.run([sys.executable, "-c", _UPLOAD_PROBE, str(png)], capture_output=True, text=True, cwd=root,
                       env={**__import__("os").environ, "PYTHONPATH": str(root)}, timeout=300)
    assert r.returncode == 0, r.stderr
    refused = next(line for line in r.stdout.splitlines() if line.startswith(("REFUSED", "ACCEPTED")))
    assert refused.startswith("REFUSED holiday photo.png: 16000x16000"), refused
    assert "more than this page accepts" in refused and "--" not in refused
    assert tempfile.gettempdir() not in refused and str(tmp_path) not in refused
    peak = float(r.stdout.split("PEAK_MB")[1])
    assert peak < 100, f"peak memory grew by {peak:.0f} MB on upload"


def test_upload_errors_name_the_upload(tmp_path):
    import tempfile

    from mos_app.try_it import _load_input
    from srkeras.data import ImageLoadError

    class Upload:
        name = "my scan.png"

        def getvalue(self):
            return b"\x89PNG\r\n\x1a\nnot really a png"

    with pytest.raises(ImageLoadError) as e:
        _load_input(Upload(), None)
    assert str(e.value).startswith("my scan.png: ") and tempfile.gettempdir() not in str(e.value)


def test_invalid_memory_budget_is_a_form_error(model_dir):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    at.text_input(key="budget").set_value("abc").run()
    assert not at.exception
    msgs = [e.value for e in at.error]
    assert msgs and all("Memory budget 'abc'" in m and "--" not in m for m in msgs)
    at.text_input(key="budget").set_value("0").run()
    assert not at.exception and at.error
    at.text_input(key="budget").set_value("64GB").run()  # more than MAX_BUDGET: one visitor may not take it
    assert not at.exception and "more than this page allows (2GB)" in at.error[0].value
    at.text_input(key="budget").set_value("512MB").run()
    assert not at.exception and not at.error


def test_visitors_pick_installed_models_only_and_paths_are_an_admin_setting(model_dir, tmp_path_factory, monkeypatch):
    """Issue 24 item 3: no text input takes a path; a model outside the allowed list cannot be loaded; the
    admin's TRYIT_MODEL_PATHS adds folders or files."""
    from streamlit.testing.v1 import AppTest

    from mos_app import try_it
    from srkeras.inference import ModelNotFoundError

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "run1").mkdir()
    save_tiny_model(elsewhere / "run1")
    (elsewhere / "run1" / "tiny_x2.keras").rename(elsewhere / "run1" / "model.keras")
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception
    assert [t.key for t in at.text_input] == ["budget"]  # the only free text: a memory size, never a path
    assert at.selectbox(key="model").options == ["tiny_x2"]
    for outside in (str(elsewhere / "run1"), str(elsewhere / "run1" / "model.keras"), "../run1", "run1"):
        with pytest.raises(ModelNotFoundError):
            try_it.load_choice(outside)
    monkeypatch.setenv("TRYIT_MODEL_PATHS", f"{elsewhere}{__import__('os').pathsep}{tmp_path_factory.mktemp('none')}")
    assert set(try_it.model_choices()) == {"tiny_x2", "run1"}
    assert try_it.load_choice("run1").scale == 2
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert at.selectbox(key="model").options == ["tiny_x2", "run1"] and [t.key for t in at.text_input] == ["budget"]


def test_runs_are_bounded_process_wide_and_waiters_are_told():
    """Issue 24 item 6: one run at a time (the default slot count), whichever session asks; others wait."""
    import threading
    import time

    from mos_app.try_it import run_slot

    active, peak, waited, lock = [0], [0], [], threading.Lock()

    def visitor(k):
        with run_slot(on_wait=lambda: waited.append(k)):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1

    with run_slot():  # a run in progress: every visitor arriving now must wait
        threads = [threading.Thread(target=visitor, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        assert sorted(waited) == [0, 1, 2, 3] and active[0] == 0
    for t in threads:
        t.join(10)
    assert peak[0] == 1 and active[0] == 0


def test_results_leave_the_session_after_download_and_on_a_new_photo(model_dir):
    """Issue 24 item 6: the download hands the PNG over and empties the result; another photo drops it."""
    from streamlit.testing.v1 import AppTest

    from mos_app.try_it import hand_over

    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.selectbox(key="sample").select("coffee").run()
    at.button(key="run").click().run()
    assert not at.exception and "result" in at.session_state
    at.selectbox(key="sample").select(next(s for s in at.selectbox(key="sample").options[1:] if s != "coffee")).run()
    assert not at.exception and "result" not in at.session_state and not at.get("image")
    at.button(key="run").click().run()
    res = at.session_state["result"]
    png = hand_over(res)  # what the download button's deferred data does when the visitor downloads
    assert png.startswith(b"\x89PNG") and not {"png", "sr", "bicubic"} & set(res)
    at.run()
    assert not at.exception and "result" not in at.session_state and "cleared" in at.success[0].value
