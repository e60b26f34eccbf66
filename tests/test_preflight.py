"""Preflight (srkeras.preflight): every long job stops in seconds, before its first step, with ONE
message listing everything it lacks and the commands that fix it (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_images

FETCH = "python -m pipelines.pretrained fetch"


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))


def _one_error(err: str) -> str:
    assert err.count("error:") == 1 and "Traceback" not in err, err
    return err


def test_study_with_a_missing_metric_asset_stops_before_training(tmp_path, no_models, monkeypatch, capsys):
    import pipelines.study as cli
    from srkeras.study import training

    monkeypatch.setattr(training, "train_once", lambda *a, **k: pytest.fail("trained although NIQE is missing"))
    monkeypatch.setattr(training, "cost_plan", lambda *a, **k: pytest.fail("probed although NIQE is missing"))
    data = write_images(tmp_path / "train", 2)
    (tmp_path / "out-file").write_text("x")
    rc = cli.main(["backbones", "--train-dir", str(data), "--test-dir", str(data), "--backbone", "vgg19", "--steps", "2",
                   "--out", str(tmp_path / "out-file"), "--smoke", "--quiet", "--metric", "psnr", "--metric", "niqe",
                   "--metric", "dists"])
    err = _one_error(capsys.readouterr().err)
    assert rc == 2
    assert "pipelines.study backbones cannot start; 2 things are missing" in err
    assert "niqe, dists, vgg16_imagenet" in err and f"{tmp_path / 'out-file'}: is not a folder" in err
    assert f"{FETCH} niqe dists vgg16_imagenet" in err  # one command for all
    # only the asset missing: the same, as a one-line problem and its command; nothing written
    rc = cli.main(["backbones", "--train-dir", str(data), "--test-dir", str(data), "--backbone", "vgg19", "--steps", "2",
                   "--out", str(tmp_path / "study"), "--smoke", "--quiet", "--metric", "niqe"])
    err = _one_error(capsys.readouterr().err)
    assert rc == 2 and f"{FETCH} niqe" in err and "metric asset(s) niqe (for metric(s) niqe) not installed" in err
    assert not (tmp_path / "study").exists()


def test_study_by_default_scores_only_installed_metrics_and_says_which(tmp_path, no_models):
    from srkeras.study import StudyConfig
    from srkeras.study.backbones import preflight

    data = write_images(tmp_path / "train", 2)
    logs = []
    cfg, found = preflight(StudyConfig(train_dirs=(data,), val_dir=None, test_dirs=(data,), backbones=("vgg19",),
                                       steps=1, out=tmp_path / "o", smoke=True), logs.append)
    assert cfg.metric_names == ("psnr", "ssim") and [e.id for e in found] == ["vgg19-deep"]
    assert logs == [f"scoring psnr, ssim; not scoring lpips, niqe (not installed: `{FETCH} lpips_alex niqe` installs them)"]
    # and with no backbone weights outside --smoke: one message, with the folder problem too
    from srkeras.preflight import PreflightError

    (tmp_path / "f").write_text("x")
    with pytest.raises(PreflightError) as e:
        preflight(StudyConfig(train_dirs=(data,), val_dir=None, test_dirs=(data,), backbones=("vgg19",), steps=1,
                              out=tmp_path / "f" / "o", metrics=("psnr", "lpips")), logs.append)
    text = str(e.value)
    assert "3 things are missing" in text and "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in text
    assert "is not a folder" in text and f"{FETCH} lpips_alex" in text


def test_train_lists_missing_backbone_weights_init_model_and_out_at_once(tmp_path, no_models, monkeypatch, capsys):
    import pipelines.train as cli

    monkeypatch.setattr(cli, "run_training", lambda job: pytest.fail("started training"))
    (tmp_path / "f").write_text("x")
    rc = cli.main(["--recipe", "srgan_vgg54", "--train-dir", str(tmp_path / "nothing"), "--init-from",
                   str(tmp_path / "run1"), "--out", str(tmp_path / "f" / "run"), "--quiet"])
    err = _one_error(capsys.readouterr().err)
    assert rc == 2
    assert "pipelines.train cannot start; 4 things are missing" in err, err
    for part in (f"--train-dir {tmp_path / 'nothing'}: no such folder", f"--init-from {tmp_path / 'run1'}: no such model",
                 "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "is not a folder",
                 "--set loss.backbone_weights=/path/to/file.h5"):
        assert part in err, (part, err)
    # a two-stage recipe without --init-from says how to get the first stage
    rc = cli.main(["--recipe", "srgan_vgg54", "--set", "loss.backbone_weights=none", "--out", str(tmp_path / "r2"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--init-from RUN1/model.keras" in err, err


def test_evaluate_names_every_missing_asset_and_model_in_one_fetch(tmp_path, no_models, capsys):
    import pipelines.evaluate as cli

    hr = write_images(tmp_path / "hr", 1)
    rc = cli.main(["--hr-dir", str(hr), "--model", "realesrgan_x4plus", "--metric", "niqe", "--metric", "psnr",
                   "--out", str(tmp_path / "r.json"), "--quiet"])
    err = _one_error(capsys.readouterr().err)
    assert rc == 2 and "2 things are missing" in err
    assert f"{FETCH} niqe realesrgan_x4plus" in err and not (tmp_path / "r.json").exists()


def test_prepare_study_lists_assets_models_and_stimuli_folder(tmp_path, no_models, capsys):
    import pipelines.prepare_study as cli

    hr = write_images(tmp_path / "hr", 3)
    (tmp_path / "f").write_text("x")
    rc = cli.main(["--name", "s", "--hr-dir", str(hr), "--db", f"sqlite:///{tmp_path / 'mos.db'}", "--metric", "brisque",
                   "--model", "realesrgan_x4plus", "--stimuli-dir", str(tmp_path / "f" / "stim"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "pipelines.prepare_study cannot start; 3 things are missing" in err, err
    assert f"{FETCH} brisque realesrgan_x4plus" in err and "--stimuli-dir" in err
    assert not (tmp_path / "mos.db").exists()


def test_upscale_lists_model_and_a_full_disk(tmp_path, no_models, monkeypatch, capsys):
    import pipelines.upscale as cli
    from srkeras import preflight

    d = tmp_path / "in"
    d.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(d / "a.png")
    monkeypatch.setattr(preflight, "free_bytes", lambda path: 50_000)
    rc = cli.main([str(d), "--model", "realesrgan_x4plus", "--out", str(tmp_path / "out"), "--quiet"])
    err = _one_error(capsys.readouterr().err)
    assert rc == 2 and "pipelines.upscale cannot start; 2 things are missing" in err, err
    assert f"{FETCH} realesrgan_x4plus" in err
    assert "49 KB free on its disk, the outputs need about 469 KB" in err and not (tmp_path / "out").exists()


def test_disk_need_estimate_is_half_the_raw_output():
    from srkeras.preflight import disk_need_estimate

    assert disk_need_estimate([(200, 100), (10, 10)], 4) == (200 * 100 + 100) * 16 * 3 // 2


def test_prepare_study_checks_room_for_the_stimuli(tmp_path, monkeypatch, capsys):
    import pipelines.prepare_study as cli
    from srkeras import preflight

    hr = write_images(tmp_path / "hr", 3, size=64)
    monkeypatch.setattr(preflight, "free_bytes", lambda path: 10_000)
    rc = cli.main(["--name", "s", "--hr-dir", str(hr), "--db", f"sqlite:///{tmp_path / 'mos.db'}",
                   "--stimuli-dir", str(tmp_path / "stim"), "--no-progress"])
    err = capsys.readouterr().err
    # 3 images x (nearest, bicubic, hr) x 64*64*3 / 2 bytes = 55,296 bytes: "54 KB"
    assert rc == 1 and "--stimuli-dir" in err and "10 KB free on its disk, the outputs need about 54 KB" in err, err
    assert not (tmp_path / "mos.db").exists()
