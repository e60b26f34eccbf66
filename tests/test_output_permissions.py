"""Every output file gets the permissions of any new file (0666 minus the umask), streamed PNGs too."""

import os
import stat

import keras
import numpy as np
import pytest
from PIL import Image

from pipelines.upscale import main
from srkeras.data import save_image
from srkeras.files import write_atomically
from srkeras.models.layers import PixelShuffle

RNG = np.random.default_rng(0)


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_atomically_gives_0666_minus_umask(tmp_path, umask):
    for mask, want in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        umask(mask)
        p = write_atomically(tmp_path / f"f{mask:o}.bin", lambda tmp: open(tmp, "wb").write(b"x"))
        assert _mode(p) == want
        save_image(tmp_path / f"i{mask:o}.png", RNG.random((4, 5, 3)))
        assert _mode(tmp_path / f"i{mask:o}.png") == want
    assert not list(tmp_path.glob(".*"))


def test_write_atomically_refuses_to_overwrite_and_cleans_up(tmp_path, umask):
    p = tmp_path / "a.png"
    p.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_atomically(p, lambda tmp: open(tmp, "wb").write(b"new"), overwrite=False)
    with pytest.raises(RuntimeError):
        write_atomically(p, lambda tmp: (_ for _ in ()).throw(RuntimeError("boom")))
    assert p.read_bytes() == b"old" and not list(tmp_path.glob(".*"))


def test_upscale_outputs_streamed_and_not_are_0644(tmp_path, umask):
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, PixelShuffle(2)(keras.layers.Conv2D(12, 3, padding="same")(inp)))
    model.save(tmp_path / "m.keras")
    src = tmp_path / "in"
    src.mkdir()
    px = (RNG.random((12, 10, 3)) * 255).astype(np.uint8)
    Image.fromarray(px).save(src / "rgb.png")  # streamed PNG writer
    Image.fromarray(px).quantize(8).save(src / "pal.png")  # palette writer
    Image.fromarray(px).save(src / "photo.jpg")  # save_image
    out = tmp_path / "out"
    assert main([str(src), "--model", str(tmp_path / "m.keras"), "--out", str(out), "--quiet"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["pal.png", "photo.jpg", "rgb.png"]
    assert {name: _mode(out / name) for name in written} == dict.fromkeys(written, 0o644)
