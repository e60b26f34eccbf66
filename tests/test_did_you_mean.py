"""Unknown model names get a "did you mean" (difflib) in every command that takes --model; TensorFlow's
start-up notices are filtered out of standard error."""

import os

import pytest

from srkeras import pretrained
from srkeras.pretrained import catalogue


def test_catalogue_and_close_names():
    with pytest.raises(pretrained.UnknownModelError, match="did you mean 'realesrgan_x4plus'"):
        catalogue.get("realesrgan_x4")
    assert pretrained.close_names("realesrgan_x4")[0] == "realesrgan_x4plus"
    assert "rdn_div2k_x4" in pretrained.close_names("rdn_div2k_4x")
    assert pretrained.did_you_mean("realesrgan_x4plus") == ""  # known: it only needs fetching
    assert pretrained.did_you_mean("runs/srgan/model.keras") == ""  # a path, not a name
    assert pretrained.did_you_mean("zzzz") == ""


def test_upscale_evaluate_export_say_did_you_mean(tmp_path, monkeypatch, capsys):
    from pipelines import evaluate, export, upscale

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "my_srgan.keras").write_bytes(b"")  # an installed name is a candidate too
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    assert upscale.main([str(img), "--model", "realesrgan_x4", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'realesrgan_x4' is not installed" in err and "Did you mean 'realesrgan_x4plus'" in err
    assert upscale.main([str(img), "--model", "my_srgn", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "Did you mean 'my_srgan'" in capsys.readouterr().err
    assert export.main(["--model", "realesrgan_x4", "--format", "keras", "--out", str(tmp_path / "e")]) == 2
    assert "Did you mean 'realesrgan_x4plus'" in capsys.readouterr().err
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.new("RGB", (16, 16)).save(hr / "a.png")
    assert evaluate.main(["--hr-dir", str(hr), "--model", "realesrgan_x4", "--quiet"]) == 2
    assert "Did you mean 'realesrgan_x4plus'" in capsys.readouterr().err


def test_prepare_study_says_did_you_mean(tmp_path, monkeypatch, capsys):
    from pipelines import prepare_study

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    hr = tmp_path / "hr"
    hr.mkdir()
    from PIL import Image

    Image.new("RGB", (16, 16)).save(hr / "a.png")
    rc = prepare_study.main(["--name", "s", "--hr-dir", str(hr), "--model", "esr=realesrgan_x4", "--db",
                             f"sqlite:///{tmp_path / 'mos.db'}", "--no-progress"])  # fmt: skip
    assert rc == 1 and "Did you mean 'realesrgan_x4plus'" in capsys.readouterr().err


def test_tensorflow_notices_are_filtered_and_other_lines_kept(capfd):
    from srkeras.inference.quiet import NOISE, stderr_filtered

    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796523815.316661    9240 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1796523815.998965    9240 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
        "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, "
        "rebuild TensorFlow with the appropriate compiler flags.",
    ]
    assert all(NOISE.search(line) for line in noise)
    with stderr_filtered():
        os.write(2, ("\n".join(noise) + "\nImportError: a real problem\n").encode())
    err = capfd.readouterr().err
    assert err == "ImportError: a real problem\n"
