"""PyTorch checkpoints read without torch: fixtures written by real torch 2.13 (zip and legacy
formats, tiny configs; tests/fixtures/pretrained/make_torch_fixtures.py) reproduce torch's output."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.files import sha256_file
from srkeras.inference import find_model
from srkeras.inference.sidecar import ModelSidecar
from srkeras.pretrained import pth
from srkeras.pretrained.torchfile import load_pth

FIX = Path(__file__).parent / "fixtures" / "pretrained" / "torch"
CASES = [
    ("rrdbnet_x4_zip.pth", "rrdbnet_x4", "rrdbnet", 4),
    ("rrdbnet_x4_legacy.pth", "rrdbnet_x4", "rrdbnet", 4),
    ("esrgan_old_x4_legacy.pth", "rrdbnet_x4", "rrdbnet", 4),
    ("rrdbnet_x2_zip.pth", "rrdbnet_x2", "rrdbnet", 2),
    ("srvgg_x4_zip.pth", "srvgg_x4", "srvgg_compact", 4),
    ("srvgg_x4_legacy.pth", "srvgg_x4", "srvgg_compact", 4),
    ("edsr_x2_zip.pth", "edsr_x2", "edsr", 2),
    ("edsr_x3_legacy.pth", "edsr_x3", "edsr", 3),
]


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(d))
    return d


@pytest.mark.parametrize(("file", "key", "arch", "scale"), CASES)
def test_matches_torch_output(file, key, arch, scale):
    expected = np.load(FIX / "expected.npz")
    sd = pth.state_dict(load_pth(FIX / file), file)
    model, s, config, unmapped = pth.convert_state_dict(sd, arch, None, file)
    assert (s, config["arch"], unmapped) == (scale, arch, [])
    y = np.asarray(model(expected["input"]))
    assert np.abs(y - expected[key]).max() <= 1e-5


def test_import_installs_model_and_sidecar(model_dir):
    import keras

    path, unmapped = pretrained.import_pth(FIX / "srvgg_x4_zip.pth", "srvgg_compact", "tiny_srvgg", scale=4, run_probe=False)
    assert unmapped == [] and path == model_dir / "tiny_srvgg.keras"
    assert find_model("tiny_srvgg") == path
    meta = ModelSidecar.read(path)
    assert meta.scale == 4 and meta.arch == "srvgg_compact" and meta.pre_pad == 0
    assert meta.about["source"]["sha256"] == sha256_file(FIX / "srvgg_x4_zip.pth")
    expected = np.load(FIX / "expected.npz")
    y = np.asarray(keras.models.load_model(path)(expected["input"]))
    assert np.abs(y - expected["srvgg_x4"]).max() <= 1e-5
    path.write_bytes(path.read_bytes() + b"x")  # the sidecar no longer belongs to the model: stale
    assert ModelSidecar.read(path) is None


def test_unmapped_keys_reported(tmp_path):
    sd = pth.state_dict(load_pth(FIX / "edsr_x2_zip.pth"), "x")
    sd["extra.running_mean"] = np.zeros(3, np.float32)
    assert pth.convert_state_dict(sd, "edsr", 2, "x")[3] == ["extra.running_mean"]


@pytest.mark.parametrize("file", ["rrdbnet_x4_zip.pth", "rrdbnet_x4_legacy.pth"])
def test_truncated_checkpoint(file, tmp_path, model_dir):
    bad = tmp_path / file
    data = (FIX / file).read_bytes()
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(pretrained.CheckpointError, match=str(bad)):
        pretrained.import_pth(bad, "rrdbnet", "bad", run_probe=False)
    assert not model_dir.exists() or not any(model_dir.iterdir())


def test_refuses_pickled_objects(tmp_path, model_dir):
    with pytest.raises(pretrained.CheckpointError, match="refusing to unpickle torch.nn.modules"):
        pretrained.import_pth(FIX / "module_pickle.pth", None, "m", run_probe=False)

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(pretrained.CheckpointError, match="refusing to unpickle shutil.rmtree"):
        load_pth(evil)
    assert (tmp_path / "victim").is_dir()


def test_unknown_and_wrong_architecture(tmp_path, model_dir):
    with pytest.raises(pretrained.UnknownArchitectureError, match="unknown architecture 'fancynet'"):
        pretrained.import_pth(FIX / "edsr_x2_zip.pth", "fancynet", "m", run_probe=False)
    with pytest.raises(pretrained.UnknownArchitectureError, match="is a edsr state dict, not swinir"):
        pretrained.import_pth(FIX / "edsr_x2_zip.pth", "swinir", "m", run_probe=False)
    with pytest.raises(pretrained.UnknownArchitectureError, match="is a edsr state dict, not rrdbnet"):
        pretrained.import_pth(FIX / "edsr_x2_zip.pth", "rrdbnet", "m", run_probe=False)
    with pytest.raises(pretrained.UnknownArchitectureError, match="no known architecture"):
        pth.convert_state_dict({"foo.weight": np.zeros((2, 2), np.float32)}, None, None, "foo.pth")
    msr = {"conv_first.weight": np.zeros((4, 1, 3, 3)), "body.0.conv1.weight": np.zeros((4, 4, 3, 3)),
           "upconv1.weight": np.zeros((16, 4, 3, 3)), "conv_hr.weight": np.zeros((4, 4, 3, 3)),
           "conv_last.weight": np.zeros((1, 4, 3, 3))}  # a Y-channel MSRResNet: detected, not converted
    with pytest.raises(pretrained.ConversionUnavailableError, match=r"detected MSRResNet \(BasicSR SRResNet\) x2, BasicSR key layout .*in_channels=1.*not available"):
        pth.convert_state_dict(msr, None, None, "msr.pth")
    assert not model_dir.exists() or not any(model_dir.iterdir())


def test_scale_and_shape_mismatch(model_dir):
    with pytest.raises(pretrained.ScaleMismatchError, match=r"rrdbnet_x4_zip.pth: checkpoint is a x4 model, x2"):
        pretrained.import_pth(FIX / "rrdbnet_x4_zip.pth", "rrdbnet", "m", scale=2, run_probe=False)
    sd = pth.state_dict(load_pth(FIX / "edsr_x2_zip.pth"), "x")
    sd["body.0.conv2.weight"] = sd["body.0.conv2.weight"][:, :3]
    with pytest.raises(pretrained.ShapeMismatchError, match="body.0.conv2"):
        pth.convert_state_dict(sd, "edsr", 2, "tampered.pth")
    assert not model_dir.exists() or not any(model_dir.iterdir())


def test_cli_import_and_list(model_dir, capsys):
    from pipelines import pretrained as cli

    assert cli.main(["import", str(FIX / "edsr_x3_legacy.pth"), "--arch", "edsr", "--name", "tiny_edsr", "--no-probe"]) == 0
    assert "installed tiny_edsr" in capsys.readouterr().out
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tiny_edsr" in out and "realesrgan_x4plus" in out
    code = cli.main(["import", str(FIX / "edsr_x3_legacy.pth"), "--arch", "edsr", "--scale", "4", "--name", "x"])
    assert code == pretrained.ScaleMismatchError.exit_code
    assert "x3 model, x4 was asked for" in capsys.readouterr().err


def test_cli_import_refuses_installed_name(model_dir, capsys):
    """Issue 24, item 10: an import under an installed name replaced it silently, and ``list`` kept
    showing the catalogue row. Now it is refused (exit 2, nothing touched) unless --overwrite."""
    from pipelines import pretrained as cli

    args = ["import", str(FIX / "edsr_x3_legacy.pth"), "--arch", "edsr", "--no-probe", "--name"]
    assert cli.main([*args, "tiny_edsr"]) == 0
    first = sha256_file(model_dir / "tiny_edsr.keras")
    capsys.readouterr()
    assert cli.main(["import", str(FIX / "edsr_x2_zip.pth"), "--arch", "edsr", "--no-probe", "--name", "tiny_edsr"]) == 2
    err = capsys.readouterr().err
    assert "installed as 'tiny_edsr' already" in err and "--overwrite" in err and "Traceback" not in err
    assert sha256_file(model_dir / "tiny_edsr.keras") == first
    assert cli.main(["import", str(FIX / "edsr_x2_zip.pth"), "--arch", "edsr", "--no-probe", "--name", "tiny_edsr",
                     "--overwrite"]) == 0
    assert ModelSidecar.read(model_dir / "tiny_edsr.keras").scale == 2
    # A catalogue name holding an imported model is listed as what it holds, not as the catalogue's.
    assert cli.main([*args, "realesrgan_x4plus"]) == 0
    assert cli.main([*args, "realesrgan_x4plus"]) == 2
    capsys.readouterr()
    assert cli.main(["list"]) == 0
    row = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("realesrgan_x4plus ")]
    assert len(row) == 1 and "edsr" in row[0] and "x3" in row[0] and "imported" in row[0], row
