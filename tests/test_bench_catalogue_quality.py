"""Smoke test of benchmarks.bench_catalogue_quality: one small catalogue model and its bicubic baseline on
one Set5 and one Set14 image, one JSON each, resumed without rescoring."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_catalogue_quality as bench
from tests._shared import shared_dir

MODEL = "span_x2"  # 0.41 M params, bicubic-trained (Set5 x2 38.00 dB against 33.65): must beat bicubic clearly


@pytest.fixture
def data(tmp_path):
    from srkeras.inference.store import installed
    from srkeras.pretrained import metric_assets

    if not metric_assets.is_installed("lpips_alex"):
        pytest.skip("lpips_alex not installed (python -m pipelines.pretrained fetch lpips_alex)")
    if installed(MODEL) is None:
        pytest.skip(f"{MODEL} not installed (python -m pipelines.pretrained fetch {MODEL})")
    d = tmp_path / "data"
    for s, image in (("Set5", "head.png"), ("Set14", "comic.png")):  # the smallest of each set
        (d / s).mkdir(parents=True)
        (d / s / image).symlink_to(shared_dir(s) / image)
    return d


def test_model_and_bicubic_scored_written_and_resumed(data, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["--results", str(out), "--data", str(data), "--model", "bicubic_x2", "--model", MODEL, "--no-fetch"]
    assert bench.main(argv) == 0
    got = {n: json.loads((out / f"{n}.json").read_text()) for n in ("bicubic_x2", MODEL)}
    for s in bench.SETS:
        b, m = got["bicubic_x2"]["sets"][s], got[MODEL]["sets"][s]
        assert b["n_images"] == m["n_images"] == 1
        assert m["psnr"] > b["psnr"] + 1 and m["ssim"] > b["ssim"]
        assert 0 < m["lpips"] < b["lpips"] < 1
    assert got[MODEL]["scale"] == 2
    table = capsys.readouterr().out
    assert f"| `{MODEL}` | x2 |" in table and "| bicubic_x2 | x2 |" in table
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert bench.main(argv) == 0  # resumed: nothing scored again
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    assert f"{got[MODEL]['sets']['Set5']['lpips']:.4f}" in capsys.readouterr().out
