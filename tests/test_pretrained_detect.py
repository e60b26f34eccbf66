"""Architecture detection from state-dict keys and shapes (srkeras.pretrained.detect).

Fixtures: keys, shapes (and the few values detection reads) of state dicts of the reference
implementations, made with random weights by tests/fixtures/pretrained/detect/make_detect_fixtures.py
(torch 2.13 + spandrel 0.4.2 in a scratch venv); ``expected`` holds the constructor's
hyper-parameters, and spandrel's loader agreed on the scale when they were made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.pretrained import detect, pth
from srkeras.pretrained.statedict import canonical
from srkeras.pretrained.torchfile import load_pth

FIX = Path(__file__).parent / "fixtures" / "pretrained"
CASES = sorted(p.stem for p in (FIX / "detect").glob("*.json"))
# Constructor argument -> detected config key (None: not a config entry; scale is checked separately).
RENAME = {"num_filters": "num_features", "shuffle_factor": "pixel_unshuffle", "in_nc": None, "scale": None,
          "upscale": None, "up_scale": None, "img_size": None, "num_in_ch": None, "num_out_ch": None}  # fmt: skip


def fixture_state_dict(case: str) -> tuple[dict, dict]:
    doc = json.loads((FIX / "detect" / f"{case}.json").read_text())
    sd = {k: np.zeros(shape, np.float32) for k, shape in doc["shapes"].items()}
    sd.update({k: np.asarray(v, np.float32) for k, v in doc["values"].items()})
    return sd, doc["expected"]


def test_every_listed_architecture_has_fixtures():
    archs = {fixture_state_dict(c)[1]["arch"] for c in CASES}
    assert archs >= {"rrdbnet", "srvgg_compact", "rcan", "swinir", "dat", "dat_light", "omnisr", "span",
                     "realcugan", "msrresnet"}  # fmt: skip  (EDSR: the torch fixtures below)


@pytest.mark.parametrize("case", CASES)
def test_detects_architecture_scale_and_hyperparameters(case):
    sd, want = fixture_state_dict(case)
    got = detect.detect(sd, case)
    assert (got.arch, got.scale) == (want["arch"], want["scale"]), got
    compared = 0
    for key, value in want["config"].items():
        key = RENAME.get(key, key)
        if key is None:
            continue
        if key == "pixel_unshuffle" or key in got.config:
            assert got.config[key] == value, (key, got.config)
            compared += 1
    assert compared >= 1 or want["arch"] == "realcugan"
    if want["arch"] == "realcugan":
        assert got.config["pro"] == ("pro" in sd)


@pytest.mark.parametrize(("file", "arch", "scale", "layout"), [
    ("rrdbnet_x4_zip.pth", "rrdbnet", 4, "BasicSR"), ("rrdbnet_x2_zip.pth", "rrdbnet", 2, "BasicSR"),
    ("esrgan_old_x4_legacy.pth", "rrdbnet", 4, "ESRGAN repo"), ("srvgg_x4_zip.pth", "srvgg_compact", 4, ""),
    ("edsr_x2_zip.pth", "edsr", 2, ""), ("edsr_x3_legacy.pth", "edsr", 3, ""), ("srvgg_x4.safetensors", "srvgg_compact", 4, ""),
])  # fmt: skip
def test_detects_torch_fixtures(file, arch, scale, layout):
    got = detect.detect(pth.read_checkpoint(FIX / "torch" / file), file)
    assert (got.arch, got.scale, got.layout, got.convertible) == (arch, scale, layout, True)
    if file.startswith("rrdbnet_x2"):
        assert got.config["pixel_unshuffle"] == 2 and got.config["in_channels"] == 3


def test_canonical_unwraps_and_strips_prefixes():
    w = np.zeros((2, 3, 3, 3), np.float32)
    assert canonical({"params": {"a.w": w}, "params_ema": {"b.w": w}}, "x") == {"b.w": w}
    assert canonical({"net": {"module.a.w": w, "module.b.w": w}}, "x").keys() == {"a.w", "b.w"}
    assert canonical({"anything": {"netG.a.w": w}}, "x").keys() == {"a.w"}
    assert canonical({"module.a.w": w, "b.w": w}, "x").keys() == {"module.a.w", "b.w"}  # not shared: kept


def test_sequential_esrgan_layout_maps_to_basicsr_names():
    sd, _ = fixture_state_dict("esrgan_sequential_x4")
    new = detect.rrdb_new_layout(sd)
    assert {"conv_first.weight", "body.1.rdb3.conv5.bias", "conv_body.weight", "conv_up1.weight", "conv_up2.weight",
            "conv_hr.weight", "conv_last.weight"} <= set(new) and len(new) == len(sd)  # fmt: skip
    assert not any(k.startswith("model.") for k in new)
    assert new["conv_last.weight"].shape[0] == 3 and new["conv_up2.weight"].shape == (16, 16, 3, 3)


def test_unknown_layout_names_closest_candidates_and_unmatched_keys():
    sd, _ = fixture_state_dict("span_x2")
    del sd["conv_cat.weight"]
    sd["extra_head.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(pretrained.UnknownArchitectureError) as e:
        detect.detect(sd, "odd.pth")
    msg = str(e.value)
    assert msg.startswith("odd.pth: keys match no known architecture; closest: SPAN (86% of its keys; missing conv_cat.weight)")
    assert "extra_head.weight" in msg


@pytest.mark.parametrize("case", ["dat_x2", "dat_light_x3", "span_x2", "span_x4", "realcugan_x2", "realcugan_pro_x3",
                                  "realcugan_x4"])
def test_dat_span_realcugan_layouts_are_convertible(case):
    """Full DAT, SPAN and Real-CUGAN (spandrel's layouts) convert (tests/test_pretrained_pth_archs.py)."""
    sd, want = fixture_state_dict(case)
    found = pth.identify(sd, None, case)
    assert (found.arch, found.scale, found.convertible) == (want["arch"], want["scale"], True)


def test_unconvertible_architecture_reported_not_faked(tmp_path, monkeypatch):
    """ESRGAN+ (nESRGAN+: an extra 1x1 conv in each dense block) is detected with its hyper-parameters
    and refused with ConversionUnavailableError; nothing installed."""
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    case = "esrgan_plus_x4"
    sd, want = fixture_state_dict("esrgan_sequential_x4")
    gc = sd["model.1.sub.0.RDB1.conv1.0.weight"].shape[0]
    sd["model.1.sub.0.RDB1.conv1x1.weight"] = np.zeros((gc, sd["model.0.weight"].shape[0], 1, 1), np.float32)
    path = write_safetensors(tmp_path / f"{case}.safetensors", sd)
    with pytest.raises(pretrained.ConversionUnavailableError) as e:
        pretrained.import_pth(path, None, "m", run_probe=False)
    msg = str(e.value)
    assert msg.startswith(f"{path}: detected ") and f" x{want['scale']}" in msg and "not available" in msg
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_unconvertible_variant_of_a_convertible_architecture_refused(tmp_path, monkeypatch):
    """RCAN converts, but not a 1-colour one (the original's MeanShift is RGB): refused by name, exit 6."""
    from pipelines import pretrained as cli

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    sd, _ = fixture_state_dict("rcan_x2")
    sd = {k: v for k, v in sd.items() if not k.startswith(("sub_mean", "add_mean"))}
    sd["head.0.weight"] = np.zeros((16, 1, 3, 3), np.float32)
    sd["tail.1.weight"], sd["tail.1.bias"] = np.zeros((1, 16, 3, 3), np.float32), np.zeros(1, np.float32)
    assert detect.detect(sd).convertible is False
    path = write_safetensors(tmp_path / "grey_rcan.safetensors", sd)
    assert cli.main(["import", str(path), "--name", "g", "--no-probe"]) == pretrained.ConversionUnavailableError.exit_code
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def write_safetensors(path: Path, sd: dict, header_patch=None) -> Path:
    """A safetensors file written by hand (the format's spec), float32 tensors in order."""
    header, blobs, offset = {}, [], 0
    for k, v in sd.items():
        raw = np.ascontiguousarray(v, "<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(np.shape(v)), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if header_patch:
        header_patch(header)
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))
    return path


def test_safetensors_written_by_the_library_matches_pth(tmp_path):
    """srvgg_x4.safetensors: safetensors.torch.save_file of srvgg_x4_zip.pth's tensors (keys prefixed
    'module.'), made in the scratch venv; the reader gives the same arrays, the import the same output."""
    a = pth.read_checkpoint(FIX / "torch" / "srvgg_x4.safetensors")
    b = pth.state_dict(load_pth(FIX / "torch" / "srvgg_x4_zip.pth"), "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    expected = np.load(FIX / "torch" / "expected.npz")
    model, s, config, unmapped = pth.convert_state_dict(a, None, None, "st")
    assert (s, config["arch"], unmapped) == (4, "srvgg_compact", [])
    assert np.abs(np.asarray(model(expected["input"])) - expected["srvgg_x4"]).max() <= 1e-5


def test_cli_import_without_arch_detects(tmp_path, monkeypatch, capsys):
    from pipelines import pretrained as cli

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    assert cli.main(["import", str(FIX / "torch" / "esrgan_old_x4_legacy.pth"), "--name", "tiny", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "detected RRDBNet (ESRGAN / Real-ESRGAN) x4, ESRGAN repo key layout" in out and "installed tiny" in out
    sd, _ = fixture_state_dict("omnisr_x3")
    path = write_safetensors(tmp_path / "o.safetensors", {**sd, "input.weight": np.zeros((16, 4, 3, 3), np.float32)})
    assert cli.main(["import", str(path), "--name", "o", "--no-probe"]) == pretrained.ConversionUnavailableError.exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: detected OmniSR") and "Traceback" not in err


@pytest.mark.parametrize(("case", "key"), [("swinir_x2", "layers.999999999.residual_group.blocks.0.norm1.weight"),
                                           ("dat_light_x3", "layers.0.blocks.4000.norm1.weight"),
                                           ("esrgan_sequential_x4", "model.1.sub.77777.RDB1.conv1.0.weight")])
def test_absurd_sequence_numbers_refused_quickly(case, key):
    """A hostile key numbering a module 10**9 is refused from the numbers, before any loop over them."""
    sd, _ = fixture_state_dict(case)
    sd[key] = np.zeros(4, np.float32)
    with pytest.raises(pretrained.UnknownArchitectureError, match=r"^odd.pth: keys number .* more than 512"):
        detect.detect(sd, "odd.pth")
