"""Image loading copes with what users have and says clearly what it did or why it refused."""

import numpy as np
import pytest
from PIL import Image

from srkeras.data import ImageLoadError, load_image, modcrop, read_image, save_image


@pytest.fixture
def rgb_u8():
    return (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)


def test_rgb_png(tmp_path, rgb_u8):
    p = tmp_path / "a.png"
    Image.fromarray(rgb_u8).save(p)
    img = read_image(p)
    assert img.source_mode == "RGB" and img.bit_depth == 8 and img.alpha is None and img.notes == ()
    np.testing.assert_array_equal(np.round(img.pixels * 255).astype(np.uint8), rgb_u8)


def test_grey_kept_or_replicated(tmp_path, rgb_u8):
    p = tmp_path / "g.png"
    Image.fromarray(rgb_u8[..., 0]).save(p)
    assert read_image(p).pixels.shape == (12, 10, 1)
    rgb = load_image(p, channels=3)
    assert rgb.shape == (12, 10, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_rgba_keeps_alpha(tmp_path, rgb_u8):
    a = np.full((12, 10), 128, np.uint8)
    p = tmp_path / "a.png"
    Image.fromarray(np.dstack([rgb_u8, a])).save(p)
    img = read_image(p)
    assert img.pixels.shape == (12, 10, 3)
    np.testing.assert_allclose(img.alpha, 128 / 255)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 4))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.info["transparency"] = 1
    im.putpixel((0, 0), 1)
    p = tmp_path / "p.png"
    im.save(p, transparency=1)
    img = read_image(p)
    assert "expanded palette to RGBA" in img.notes
    assert img.alpha[0, 0] == 0 and img.alpha[1, 1] == 1
    np.testing.assert_allclose(img.pixels[1, 1], [1, 0, 0])


def test_16bit_grey(tmp_path):
    arr = np.array([[0, 1000, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(arr).save(p)
    img = read_image(p)
    assert img.bit_depth == 16
    np.testing.assert_allclose(img.pixels[..., 0], arr / 65535, atol=1e-7)


def test_cmyk_jpeg_converted(tmp_path):
    p = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p)  # pure red in CMYK
    img = read_image(p)
    assert img.source_mode == "CMYK" and "converted CMYK to RGB" in img.notes
    np.testing.assert_allclose(img.pixels.mean(axis=(0, 1)), [1, 0, 0], atol=0.02)


def test_exif_rotation_applied(tmp_path, rgb_u8):
    p = tmp_path / "r.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb_u8).save(p, exif=exif, quality=100)
    img = read_image(p)
    assert img.pixels.shape == (10, 12, 3)
    assert any("EXIF orientation 6" in n for n in img.notes)


def test_truncated_file_named(tmp_path, rgb_u8):
    p = tmp_path / "trunc.png"
    Image.fromarray(np.tile(rgb_u8, (20, 20, 1))).save(p)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(ImageLoadError, match="trunc.png: truncated or corrupt"):
        read_image(p)


def test_not_an_image_named(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello")
    with pytest.raises(ImageLoadError, match="notes.png: not an image"):
        read_image(p)


def test_pixel_limit(tmp_path, rgb_u8):
    p = tmp_path / "big.png"
    Image.fromarray(rgb_u8).save(p)
    with pytest.raises(ImageLoadError, match="exceeds the limit of 100"):
        read_image(p, max_pixels=100)


def test_save_is_atomic_and_refuses_overwrite(tmp_path):
    p = tmp_path / "out.png"
    save_image(p, np.zeros((4, 4, 3)))
    with pytest.raises(FileExistsError):
        save_image(p, np.ones((4, 4, 3)))
    assert read_image(p).pixels.max() == 0  # the first file is intact
    save_image(p, np.ones((4, 4, 3)), overwrite=True)
    assert read_image(p).pixels.min() == 1
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]  # no temp file left behind


def test_modcrop():
    assert modcrop(np.zeros((13, 10, 3)), 4).shape == (12, 8, 3)
