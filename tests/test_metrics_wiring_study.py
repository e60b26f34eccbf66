"""Issue 13 wiring, study side: ``prepare_study --metric`` stores further metrics per stimulus (table
``stimulus_metric``, migration 0002), ``rating_frames`` returns them as metric columns, and the MOS
report ranks every metric by its agreement with the listeners (``metric_ranking``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _metric_assets import install
from PIL import Image
from sqlalchemy import inspect

from db import MethodSpec, SourceSpec, StimulusSpec, open_database, rating_frames, register_study
from db.frames import METRIC_FRAME
from pipelines import prepare_study
from pipelines import report as report_cli
from srkeras import evaluation, stimulus_set
from srkeras.mos import analyze, correlation, summary
from srkeras.mos.files import report_files
from tests.conftest import write_images
from tests.test_report_db import fill_study


def _fake_metrics(monkeypatch):
    """No assets needed: every further metric is a deterministic function of the pixels."""
    from srkeras.metrics import registry

    def fake(metric, img, ref=None, name=None):
        v = float(np.mean(img)) / 255
        return v if ref is None else float(np.mean(np.abs(img.astype(float) - ref))) / 255 + len(metric) / 100

    monkeypatch.setattr(registry, "compute", fake)
    monkeypatch.setattr(evaluation, "missing_assets", lambda metrics: None)


def test_plan_checks_metric_names_and_niqe_crop():
    assert stimulus_set.plan(4).metrics == ("psnr", "ssim")
    assert stimulus_set.plan(4, metrics=("lpips", "psnr")).metrics == ("psnr", "ssim", "lpips")
    with pytest.raises(stimulus_set.BadOption, match="unknown metric"):
        stimulus_set.plan(4, metrics=("psnr", "pi"))
    with pytest.raises(stimulus_set.BadOption, match="NIQE"):
        stimulus_set.plan(4, crop=128, metrics=("niqe",))


def test_stored_metrics_reach_rating_frames_and_the_report(make_study, db_url, monkeypatch, tmp_path):
    _fake_metrics(monkeypatch)
    st = make_study(db_url, metrics=("psnr", "ssim", "lpips", "niqe"), votes_per_stimulus=6, repeats=1)
    assert set(st.summary["methods"]["bicubic"]) == {"psnr", "ssim", "lpips", "niqe"}
    db = st.open()
    try:
        _, _, met = rating_frames(db, st.name)
        assert list(met.columns) == [*METRIC_FRAME, "lpips", "niqe"]
        assert met[["lpips", "niqe"]].notna().all().all() and len(met) == 3 * 4  # 3 methods x 4 test images
        hr = met[met["method"] == "hr"]
        assert np.isinf(hr["psnr"]).all() and hr["lpips"].tolist() == pytest.approx([0.05] * 4)  # |hr - hr| + 5/100
        fill_study(db, st.name, n_raters=5)
    finally:
        db.close()
    out = tmp_path / "rep"
    assert report_cli.main(["--db", st.url, "--study", st.name, "--out", str(out), "--quiet", "--bootstrap", "200"]) == 0
    summ = json.loads((out / "summary.json").read_text())
    ranking = summ["metric_ranking"]
    assert [r["metric"] for r in sorted(ranking, key=lambda r: r["rank"])] == [r["metric"] for r in ranking]
    assert {r["metric"] for r in ranking} == {"psnr", "ssim", "lpips", "niqe"}
    assert {r["metric"]: r["better"] for r in ranking} == {"psnr": "higher", "ssim": "higher", "lpips": "lower",
                                                            "niqe": "lower"}
    assert "lpips" in summ["methods"]["bicubic"] and "correlation" in summ and "metric_disagreements" in summ
    assert "Which metric would have replaced this survey best" in (out / "report.html").read_text()
    assert (out / "metric_ranking.csv").read_text().startswith("rank,metric,")


def test_missing_metric_asset_stops_the_study_before_any_stimulus(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "no-models"))
    hr = write_images(tmp_path / "hr", 4, size=48)
    url = f"sqlite:///{tmp_path / 'mos.db'}"
    rc = prepare_study.main(["--name", "s", "--hr-dir", str(hr), "--db", url, "--metric", "dists", "--no-progress",
                             "--stimuli-dir", str(tmp_path / "stim")])
    assert rc == 1
    assert "python -m pipelines.pretrained fetch dists vgg16_imagenet" in capsys.readouterr().err
    assert not (tmp_path / "stim").exists() and not (tmp_path / "mos.db").exists()


@pytest.mark.registry
def test_prepare_study_cli_stores_real_lpips(tmp_path, tmp_path_factory, monkeypatch, capsys):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(install(tmp_path_factory, ("lpips_alex",))))
    from srkeras.metrics import lpips

    hr = write_images(tmp_path / "hr", 4, size=64)
    url = f"sqlite:///{tmp_path / 'mos.db'}"
    rc = prepare_study.main(["--name", "s", "--hr-dir", str(hr), "--db", url, "--metric", "lpips", "--no-progress"])
    assert rc == 0 and "lpips" in capsys.readouterr().out
    db = open_database(url)
    try:
        _, _, met = rating_frames(db, "s")
        assert list(met.columns) == ["method", "image", "psnr", "ssim", "lpips"]
        stim_dir = tmp_path / "stimuli"
        from tests.test_prepare_study import stimuli_by

        stim_dir, stims = stimuli_by(db, "s")
        for (src, m), (row, source, _) in stims.items():
            if source.is_calibration:
                continue
            got = met[(met["method"] == m) & (met["image"] == src)]["lpips"].item()
            ref = np.asarray(Image.open(stim_dir / stims[(src, "hr")][0].file_name).convert("RGB"))
            img = np.asarray(Image.open(stim_dir / row.file_name).convert("RGB"))
            assert got == pytest.approx(lpips(img, ref), abs=1e-6)
        assert (met.loc[met["method"] == "hr", "lpips"] == 0).all()
    finally:
        db.close()


def test_migration_0002_upgrades_an_existing_database(make_study, sqlite_url, monkeypatch):
    """A database with a study made before stimulus_metric existed: reports still read it unmigrated,
    and opening it migrates to head keeping every row; new studies then store metrics."""
    from alembic import command

    from db.engine import alembic_config, current_revision, head_revision

    st = make_study(sqlite_url)
    db = open_database(sqlite_url)
    with db.engine.connect() as conn:  # as db.engine.upgrade migrates: foreign keys off while tables are
        conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # rebuilt (DROP TABLE cascades)
        with conn.begin():
            command.downgrade(alembic_config(conn), "0001")
    db.close()
    old = open_database(sqlite_url, migrate=False)  # what pipelines.report opens
    try:
        assert current_revision(old.engine) == "0001" and not inspect(old.engine).has_table("stimulus_metric")
        _, _, before = rating_frames(old, st.name)
        assert list(before.columns) == METRIC_FRAME and len(before) == 12
    finally:
        old.close()
    db = open_database(sqlite_url)  # migrates
    try:
        assert current_revision(db.engine) == head_revision() and inspect(db.engine).has_table("stimulus_metric")
        _, _, after = rating_frames(db, st.name)
        pd.testing.assert_frame_equal(before, after)
    finally:
        db.close()
    _fake_metrics(monkeypatch)
    st2 = make_study(sqlite_url, name="with-metrics", metrics=("lpips",))
    db = open_database(sqlite_url)
    try:
        assert "lpips" in rating_frames(db, st2.name)[2].columns
        assert "lpips" not in rating_frames(db, st.name)[2].columns
    finally:
        db.close()


def test_register_study_checks_metric_names(db, make_study, db_url):
    from tests.test_prepare_study import stimuli_by

    st = make_study(db_url)
    stim_dir, stims = stimuli_by(db, st.name)
    methods = {m.name: MethodSpec(m.name, m.role) for _, _, m in stims.values()}
    sources = {s.name: SourceSpec(s.name, s.hr_sha256, s.width, s.height, s.is_calibration)
               for _, s, _ in stims.values()}

    def specs(metrics):
        return [StimulusSpec(m, src, x.sha256, x.width, x.height, x.psnr, x.ssim, metrics)
                for (src, m), (x, _, _) in stims.items()]

    kw = dict(mode="acr", scale=4, votes_per_stimulus=1, stimuli_dir=stim_dir, methods=list(methods.values()),
              sources=list(sources.values()))
    with pytest.raises(ValueError, match="bad metric name"):
        register_study(db, "other", stimuli=specs({"psnr": 3.0}), **kw)
    register_study(db, "other", stimuli=specs({"lpips": 0.25, "niqe": float("nan")}), **kw)
    _, _, met = rating_frames(db, "other")
    assert (met["lpips"] == 0.25).all() and met["niqe"].isna().all()  # NaN stored as NULL, read back as NaN


def _synthetic(n_images=6, seed=0):
    """ACR votes on 4 test methods + anchors; LPIPS follows quality (lower = better), NIQE runs the
    wrong way, PSNR is noise."""
    rng = np.random.default_rng(seed)
    quality = {"nearest": 1.2, "m1": 2.0, "m2": 2.8, "m3": 3.5, "m4": 4.2, "hr": 4.8}
    role = {"nearest": "low_anchor", "hr": "high_anchor"}
    acr, met = [], []
    for i in range(n_images):
        for m, q in quality.items():
            qi = q + rng.normal(0, 0.3)
            for r in range(8):
                acr.append(dict(rater=f"r{r}", method=m, image=f"i{i}", role=role.get(m, "test"),
                                score=float(np.clip(round(qi + rng.normal(0, 0.5)), 1, 5))))
            met.append(dict(method=m, image=f"i{i}", psnr=rng.normal(25, 2), ssim=rng.uniform(0.5, 0.9),
                            lpips=0.6 - 0.1 * qi + rng.normal(0, 0.01), niqe=2 + qi + rng.normal(0, 0.05)))
    return pd.DataFrame(acr), pd.DataFrame(met)


def test_report_ranks_metrics_with_lower_is_better_flipped():
    from srkeras.mos.schema import validate_acr, validate_metrics

    acr, met = _synthetic()
    rep = analyze(validate_acr(acr, "acr"), None, validate_metrics(met, "met"), n_boot=200)
    ranking = rep.metric_ranking
    assert [r["rank"] for r in ranking] == [1, 2, 3, 4]
    assert ranking[0]["metric"] == "lpips" and ranking[0]["spearman"] > 0.8 and ranking[0]["better"] == "lower"
    assert ranking[-1]["metric"] == "niqe" and ranking[-1]["spearman"] < -0.8  # agrees only when read backwards
    raw = rep.correlation["lpips"]["spearman"]
    assert raw < 0 and ranking[0]["spearman"] == pytest.approx(-raw)
    assert ranking[0]["methods_spearman"] == pytest.approx(-rep.correlation_methods["lpips"]["spearman"])
    assert ranking[0]["n"] == 24 and ranking[0]["basis"] == "stimuli"  # 4 test methods x 6 images
    s = summary(rep)
    old_keys = {"methods", "raters", "wilcoxon_holm", "correlation", "correlation_methods",
                "correlation_within_image", "metric_disagreements", "pairs", "alpha", "split_half", "counts"}
    assert old_keys < set(s) and s["metric_ranking"][0]["metric"] == "lpips"
    html = report_files(rep)["report.html"].decode()
    assert "Which metric would have replaced this survey best" in html and "<b>lpips</b> tracks" in html


def test_ranking_from_pairs_only_and_orientation_names():
    from srkeras.metrics import HIGHER_IS_BETTER, METRICS

    assert correlation.LOWER_IS_BETTER >= set(METRICS) - HIGHER_IS_BETTER
    assert not correlation.LOWER_IS_BETTER & HIGHER_IS_BETTER and "lpips_vgg" in correlation.LOWER_IS_BETTER
    within = {"lpips": {"pearson": -0.5, "spearman": -0.9, "kendall": -0.7, "images": 5},
              "psnr": {"pearson": 0.2, "spearman": 0.1, "kendall": 0.1, "images": 5}}
    r = correlation.metric_ranking({}, {}, within)
    assert [x["metric"] for x in r] == ["lpips", "psnr"] and r[0]["basis"] == "within_image" and r[0]["n"] == 5
    assert r[0]["spearman"] == pytest.approx(0.9)
    assert correlation.metric_ranking({}, {}, {}) == []


def test_mos_package_stays_free_of_tensorflow():
    code = ("import sys, srkeras.mos, srkeras.mos.correlation; "
            "bad = [m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
