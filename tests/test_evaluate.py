"""pipelines.evaluate: the bicubic baseline reproduces published tables; bad files are reported."""

import json

import numpy as np
import pytest
from PIL import Image

from pipelines import evaluate
from tests._shared import shared_dir

# MATLAB protocol bicubic baselines (e.g. EDSR/RCAN tables; ../shared/README.md).
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}


@pytest.mark.parametrize("dataset, scale", sorted(PUBLISHED))
def test_bicubic_reproduces_published_table(dataset, scale, tmp_path):
    hr_dir = shared_dir(dataset)
    out = tmp_path / "r.json"
    rc = evaluate.main(["--hr-dir", str(hr_dir), "--scale", str(scale), "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())
    p, s = PUBLISHED[(dataset, scale)]
    got = res["methods"]["bicubic"]
    assert got["psnr"] == pytest.approx(p, abs=0.02)
    assert got["ssim"] == pytest.approx(s, abs=0.002)
    assert got["n_images"] == len(list(hr_dir.glob("*.png")))


def test_json_contract_and_bad_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    d = tmp_path / "hr"
    d.mkdir()
    for name in ("a", "b"):
        Image.fromarray((rng.random((64, 48, 3)) * 255).astype(np.uint8)).save(d / f"{name}.png")
    Image.fromarray((rng.random((64, 48, 3)) * 255).astype(np.uint8)).save(d / "trunc.png")
    (d / "trunc.png").write_bytes((d / "trunc.png").read_bytes()[:200])
    (d / "text.png").write_text("not an image")
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(d / "tiny.png")
    out = tmp_path / "res.json"
    rc = evaluate.main(
        ["--hr-dir", str(d), "--scale", "4", "--method", "bicubic", "--method", "nearest", "--out", str(out), "--quiet"]
    )
    assert rc == 1  # something was skipped, but the rest was scored and written
    res = json.loads(out.read_text())
    assert res["scale"] == 4 and "protocol" in res
    assert set(res["methods"]) == {"bicubic", "nearest"}
    for m in res["methods"].values():
        assert set(m["images"]) == {"a", "b"}
        assert m["psnr"] == pytest.approx(np.mean([v["psnr"] for v in m["images"].values()]))
        assert set(m["images"]["a"]) == {"psnr", "ssim"}
    assert res["methods"]["bicubic"]["psnr"] > res["methods"]["nearest"]["psnr"]
    assert set(res["skipped"]) == {"trunc", "text", "tiny"}
    err = capsys.readouterr().err
    assert "trunc.png: truncated or corrupt" in err and "text.png: not an image" in err and "tiny: too small" in err


def test_empty_dir_is_an_error(tmp_path, capsys):
    assert evaluate.main(["--hr-dir", str(tmp_path), "--quiet"]) == 2
    assert "contains no image files" in capsys.readouterr().err


def _hr_folder(tmp_path, n=2, size=(40, 36)):
    rng = np.random.default_rng(1)
    d = tmp_path / "hr"
    d.mkdir()
    for i in range(n):
        Image.fromarray((rng.random(size + (3,)) * 255).astype(np.uint8)).save(d / f"img{i}.png")
    return d


def test_models_scored_by_file_and_run_dir_name(tmp_path):
    from srkeras.models import build

    d = _hr_folder(tmp_path)
    model = build("espcn", scale=2, channels=3)
    model.save(tmp_path / "my_espcn.keras")
    run_dir = tmp_path / "run_42"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    out = tmp_path / "r.json"
    rc = evaluate.main(
        ["--hr-dir", str(d), "--scale", "2", "--method", "bicubic", "--model", str(tmp_path / "my_espcn.keras"),
         "--model", str(run_dir), "--out", str(out), "--quiet"]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"bicubic", "my_espcn", "run_42"}
    # The same weights loaded two ways score the same, image by image.
    assert res["methods"]["my_espcn"]["images"] == res["methods"]["run_42"]["images"]
    rc = evaluate.main(["--hr-dir", str(d), "--scale", "2", "--model", str(run_dir), "--name", "espcn_x2",
                        "--out", str(out), "--quiet"])
    assert rc == 0 and set(json.loads(out.read_text())["methods"]) == {"espcn_x2"}


def test_model_scale_mismatch_is_refused(tmp_path):
    from srkeras.models import build

    d = _hr_folder(tmp_path, n=1)
    build("espcn", scale=2, channels=3).save(tmp_path / "x2.keras")
    with pytest.raises(SystemExit, match="upscales x2, but --scale is 4"):
        evaluate.main(["--hr-dir", str(d), "--scale", "4", "--model", str(tmp_path / "x2.keras"), "--quiet"])


@pytest.mark.parametrize("flag, value, least", [("--tile", "-5", 0), ("--max-pixels", "0", 1)])
def test_out_of_range_numbers_exit_2_before_any_work(capsys, flag, value, least):
    with pytest.raises(SystemExit) as e:
        evaluate.main([flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}: {value} is not allowed: give an integer >= {least}" in err, err


def test_sr_equal_to_hr_writes_valid_json_with_null_and_a_note(tmp_path, capsys):
    hr, sr = tmp_path / "hr", tmp_path / "sr"
    hr.mkdir(), sr.mkdir()
    pixels = (np.random.default_rng(0).random((24, 20, 3)) * 255).astype(np.uint8)
    for d in (hr, sr):
        Image.fromarray(pixels).save(d / "a.png")  # 24x20 is a multiple of the scale: SR == mod-cropped HR
    out = tmp_path / "r.json"
    args = ["--hr-dir", str(hr), "--sr-dir", str(sr), "--method", "bicubic", "--scale", "2", "--out", str(out), "--quiet"]
    assert evaluate.main(args) == 0

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    result = json.loads(out.read_text(), parse_constant=refuse)  # strict JSON: no Infinity / NaN
    same = result["methods"]["sr"]
    assert same["images"]["a"]["psnr"] is None and same["psnr"] is None and same["images"]["a"]["ssim"] == pytest.approx(1.0)
    assert isinstance(result["methods"]["bicubic"]["psnr"], float)
    assert result["notes"] == ["null where the score is infinite: the PSNR of an SR image identical to its HR (zero error)"]
