"""Hostile ``.pth`` files (issue 24, items 1, 5 and the .pth part of 11): the reader never reads
outside a buffer, never allocates from an unchecked size, and answers every malformed file with a
CheckpointError naming it. Files that crashed or exhausted memory before are read in a child
process limited to 2 GiB of address space (tests/_hostile.py), so a regression fails here instead
of killing pytest or the machine."""

from __future__ import annotations

import json
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from srkeras import pretrained
from srkeras.pretrained import pth
from srkeras.pretrained.torchfile import load_pth
from tests import _hostile as H

FIX = Path(__file__).parent / "fixtures" / "pretrained" / "torch"
MiB = 1 << 20


def _one_tensor(path, numel, offset, size, stride, storage=None, legacy=False, dtype="FloatStorage"):
    storage = storage if storage is not None else H.op_storage("0", numel, dtype, legacy)
    pkl = H.pickle_of(H.op_dict([(H.op_str("w"), H.op_tensor(storage, offset, size, stride))]))
    raw = {"0": np.arange(numel, dtype="<f4").tobytes()}
    return H.write_legacy(path, pkl, raw) if legacy else H.write_zip(path, pkl, raw)


def _hostile_files(d: Path) -> dict[str, Path]:
    legacy_pkl, legacy_raw = H.state_dict_parts({"w": np.ones(6, np.float32)}, legacy=True)
    memo_bomb = H.pickle_of(b"}" + H.op_str("w") + H.op_int(1) + b"r\xff\xff\xff\xff" + b"s")
    bytes_bomb = H.pickle_of(b"\x8e" + struct.pack("<Q", 1 << 40) + b"abc")
    build_storage = H.op_storage("0", 216) + H.op_dict([(H.op_str("numel"), H.op_int(10**6))]) + b"b"
    return {
        "stride_minus_27": _one_tensor(d / "s27.pth", 216, 0, (8, 27), (-27, 1)),
        "stride_minus_1e9": _one_tensor(d / "s1e9.pth", 216, 0, (2,), (-(10**9),)),
        "strides_cancel": _one_tensor(d / "cancel.pth", 216, 0, (2, 2), (10**9, -(10**9))),
        "scalar_past_end": _one_tensor(d / "scalar.pth", 216, 216, (), ()),
        "legacy_stride_minus_27": _one_tensor(d / "l27.pth", 216, 0, (8, 27), (-27, 1), legacy=True),
        "int_storage": _one_tensor(d / "int.pth", 216, 0, (2,), (1,), storage=H.op_int(7)),
        "build_on_storage": _one_tensor(d / "build.pth", 216, 0, (216,), (1,), storage=build_storage),
        "count_2e60": H.write_legacy(d / "count.pth", legacy_pkl, legacy_raw, counts={"0": 1 << 60}),
        "billion_laughs": H.write_zip(d / "laughs.pth", H.laughs_pickle(9, 10), {}),
        "hash_laughs": H.write_zip(d / "hash.pth", H.hash_laughs_pickle(26), {}),
        "nested_200k": H.write_zip(d / "nested.pth", H.nested_lists_pickle(200_000), {}),
        "memo_slot_2e32": H.write_zip(d / "memo.pth", memo_bomb, {}),
        "bytes_length_2e40": H.write_zip(d / "bytes.pth", bytes_bomb, {}),
        "deflate_bomb_storage": H.write_deflate_bomb(d / "bomb.pth", 256 * MiB, 216),
        "deflate_bomb_pickle": H.write_deflate_bomb(d / "pbomb.pth", 128 * MiB, 216, member="pickle"),
        "storage_over_budget": H.write_deflate_bomb(d / "budget.pth", MiB, (1 << 28) + 1),
        "empty_view_far_offset": _one_tensor(d / "empty.pth", 216, 10**9, (0, 4), (10**12, 1)),
        "negative_stride_in_bounds": _one_tensor(d / "reverse.pth", 216, 189, (8, 27), (-27, 1)),
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every hostile file read once, in one memory-limited child; a case the child never reported
    (it crashed on an earlier one) shows as a crash with the child's exit code."""
    files = _hostile_files(tmp_path_factory.mktemp("hostile"))
    proc = H.run_isolated(["load", *(f"{case}={path}" for case, path in files.items())])
    found = {line["case"]: line for line in map(json.loads, proc.stdout.splitlines())}
    crash = {"outcome": "crash", "detail": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
    return {case: found.get(case, crash) | {"path": str(path)} for case, path in files.items()}


REFUSED = {
    "stride_minus_27": r"addresses elements -189\.\.26 of storage 0, which has 216",
    "stride_minus_1e9": r"addresses elements -1000000000\.\.0 of storage 0",
    "strides_cancel": r"addresses elements -1000000000\.\.1000000000",
    "scalar_past_end": r"addresses elements 216\.\.216 of storage 0, which has 216",
    "legacy_stride_minus_27": r"addresses elements -189\.\.26",
    "int_storage": r"a tensor's storage is a int, not a storage",
    "build_on_storage": r"tries to set the state of a Storage",
    "count_2e60": r"storage 0 holds 1,152,921,504,606,846,976 elements where the checkpoint declares 6",
    "hash_laughs": r"shared tuples expand past the item limit",
    "nested_200k": r"nested more than 32 deep",
    "memo_slot_2e32": r"corrupt pickle \(memo slot 4294967295",
    "bytes_length_2e40": r"truncated or corrupt",
    "deflate_bomb_storage": r"archive/data/0 holds 268,435,456 bytes where the checkpoint declares 864",
    "deflate_bomb_pickle": r"data.pkl inflates to 134,217,728 bytes",
    "storage_over_budget": r"storages need more than 1,073,741,824 bytes together",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_file_refused_with_file_named(outcomes, case):
    import re

    got = outcomes[case]
    assert got["outcome"] == "refused", got
    assert got["detail"].startswith(got["path"] + ": ") and re.search(REFUSED[case], got["detail"]), got


def test_billion_laughs_keeps_sharing(outcomes):
    """Shared references are built once (the unpickler's memo semantics): 10**9 references, 10 lists."""
    assert outcomes["billion_laughs"] == outcomes["billion_laughs"] | {"outcome": "loaded", "shared": True}


@pytest.mark.parametrize("case", ["empty_view_far_offset", "negative_stride_in_bounds"])
def test_legal_odd_views_load(outcomes, case):
    assert outcomes[case]["outcome"] == "loaded", outcomes[case]


def _reference_view(flat, offset, size, stride):
    out = np.empty(size, flat.dtype)
    for idx in np.ndindex(*size):
        out[idx] = flat[offset + sum(i * s for i, s in zip(idx, stride))]
    return out


def test_views_match_reference(tmp_path):
    """In-bounds views (negative, zero and overlapping strides, offsets) equal element-by-element
    indexing of the storage, in both formats."""
    rng = random.Random(7)
    for i in range(60):
        size = tuple(rng.randrange(1, 5) for _ in range(rng.randrange(4)))
        stride = tuple(rng.choice((-7, -3, -1, 0, 1, 2, 5)) for _ in size)
        low = -sum((n - 1) * s for n, s in zip(size, stride) if s < 0)
        span = sum((n - 1) * abs(s) for n, s in zip(size, stride))
        offset = low + rng.randrange(3)
        numel = offset + span - low + 1 + rng.randrange(3)
        path = _one_tensor(tmp_path / f"v{i}.pth", numel, offset, size, stride, legacy=i % 2 == 1)
        got = load_pth(path)["w"]
        want = _reference_view(np.arange(numel, dtype=np.float32), offset, size, stride)
        assert got.shape == size and np.array_equal(got, want), (size, stride, offset)
        assert got.flags.writeable and got.dtype.isnative


def test_fuzzed_checkpoints_never_crash(tmp_path):
    """Random strides, offsets, sizes, dtypes, declared vs. actual storage sizes, nesting, shared
    references, truncation and bit flips: every file loads or raises CheckpointError, in a child
    process (a segfault is a non-zero exit, not a dead pytest)."""
    proc = H.run_isolated(["fuzz", "24", "1000", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = json.loads(proc.stdout.splitlines()[-1])
    assert counts["loaded"] > 50 and counts["refused"] > 500, counts


# --- The network is checked against the keys before it is built (item 5; item 11) -------------


@pytest.fixture
def no_build(monkeypatch):
    """Building any network fails the test: refusals must come before the model exists."""
    from srkeras.models import edsr, esrgan, srvgg

    def built(*_a, **_k):
        raise AssertionError("the network was built before the keys were checked")

    for module, name in ((esrgan, "build_rrdbnet"), (edsr, "build_edsr"), (srvgg, "build_srvgg_compact")):
        monkeypatch.setattr(module, name, built)


def _sd(file):
    return pth.state_dict(load_pth(FIX / file), file)


def test_stray_block_key_builds_nothing(no_build):
    sd = _sd("rrdbnet_x4_zip.pth")
    sd["body.300.rdb1.conv1.weight"] = sd["body.0.rdb1.conv1.weight"]
    with pytest.raises(pretrained.UnknownArchitectureError, match=r"x.pth: 2 RRDB blocks \(body.N.\*\) with number\(s\) 300; they must be numbered 0\.\.1"):
        pth.convert_state_dict(sd, "rrdbnet", 4, "x.pth")
    sd["body.200000.rdb1.conv1.weight"] = sd.pop("body.300.rdb1.conv1.weight")
    with pytest.raises(pretrained.UnknownArchitectureError, match=r"x.pth: keys number body.N up to 200000: more than 512"):
        pth.convert_state_dict(sd, "rrdbnet", 4, "x.pth")


def test_implausible_block_count_refused(no_build):
    sd = _sd("edsr_x2_zip.pth")
    for b in range(1, 200):
        sd[f"body.{b}.conv1.weight"], sd[f"body.{b}.conv2.weight"] = sd["body.0.conv1.weight"], sd["body.0.conv2.weight"]
    with pytest.raises(pretrained.UnknownArchitectureError, match=r"200 residual blocks \(body.N.\*\); at most 128"):
        pth.convert_state_dict(sd, None, None, "deep.pth")


def test_shapes_checked_before_building(no_build):
    """A wide conv_first would make every layer wide: its partners' shapes are checked first."""
    sd = _sd("rrdbnet_x4_zip.pth")
    sd["conv_first.weight"] = np.zeros((10_000, 3, 3, 3), np.float32)
    sd["conv_first.bias"] = np.zeros(10_000, np.float32)
    with pytest.raises(pretrained.ShapeMismatchError, match=r"body\.0\.rdb1\.conv1\.weight has shape"):
        pth.convert_state_dict(sd, "rrdbnet", 4, "wide.pth")


@pytest.mark.parametrize(("file", "key"), [("rrdbnet_x4_zip.pth", "conv_first.weight"),
                                           ("edsr_x2_zip.pth", "body.0.conv1.weight"),
                                           ("srvgg_x4_zip.pth", "body.2.weight")])
@pytest.mark.parametrize("ndim", [1, 2])
def test_low_rank_conv_kernels(no_build, file, key, ndim):
    sd = _sd(file)
    sd[key] = sd[key].reshape(sd[key].shape[0], -1) if ndim == 2 else sd[key].reshape(-1)
    with pytest.raises(pretrained.ShapeMismatchError, match=f"{file}: {key.replace('.', '[.]')} has shape"):
        pth.convert_state_dict(sd, None, None, file)


def test_swinir_blocks_checked_before_building(monkeypatch):
    """A SwinIR whose key numbers promise more (or wider) Swin layers than the file holds is refused
    before the network is built: one stray key would otherwise build a 128-layer network."""
    from srkeras.models import swinir

    monkeypatch.setattr(swinir, "build_swinir", lambda *a, **k: pytest.fail("built before the keys were checked"))
    refs = FIX.parent / "pth_refs"
    sd = pth.read_checkpoint(refs / "tiny_swinir_x4_nearest.pth")
    stray = dict(sd, **{"layers.0.residual_group.blocks.127.norm1.weight": np.ones(8, np.float32)})
    with pytest.raises(pretrained.UnknownArchitectureError, match=r"^s.pth: missing key 'layers.0.residual_group.blocks.2.attn.qkv.weight'"):
        pth.convert_state_dict(stray, None, None, "s.pth")
    wide = dict(sd, **{"layers.0.residual_group.blocks.1.mlp.fc1.weight": np.zeros((4096, 8), np.float32)})
    with pytest.raises(pretrained.ShapeMismatchError, match=r"^w.pth: layers.0.residual_group.blocks.1.mlp.fc1.weight has shape \(4096, 8\), this SwinIR needs \(16, 8\)"):
        pth.convert_state_dict(wide, None, None, "w.pth")


def test_missing_and_odd_keys(no_build):
    sd = _sd("rrdbnet_x4_zip.pth")
    del sd["conv_first.weight"]
    with pytest.raises(pretrained.UnknownArchitectureError, match=r"m.pth: keys match no known architecture; closest: RRDBNet \(75% of its keys; missing conv_first.weight\)"):
        pth.convert_state_dict(sd, None, None, "m.pth")
    with pytest.raises(pretrained.CheckpointError, match="no state dict of tensors"):
        pth.state_dict({1: np.zeros(2), "b": np.zeros(2)}, "int_keys.pth")
    with pytest.raises(pretrained.CheckpointError, match="no state dict of tensors"):
        pth.state_dict({"params": {"a": [1, 2]}}, "lists.pth")


def test_cli_answers_hostile_files_with_messages(tmp_path, monkeypatch, capsys):
    """``pipelines.pretrained import`` on the item-11 files: an exit code and one line, no traceback."""
    from pipelines import pretrained as cli

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    sd = _sd("edsr_x2_zip.pth")
    sd["conv_first.weight"] = sd["conv_first.weight"].reshape(-1)
    flat = H.write_zip(tmp_path / "flat.pth", *H.state_dict_parts(sd))
    legacy_pkl, legacy_raw = H.state_dict_parts({"w": np.ones(6, np.float32)}, legacy=True)
    cases = [
        (_one_tensor(tmp_path / "int.pth", 6, 0, (2,), (1,), storage=H.op_int(7)), pretrained.CheckpointError),
        (H.write_legacy(tmp_path / "count.pth", legacy_pkl, legacy_raw, counts={"0": 1 << 60}), pretrained.CheckpointError),
        (H.write_zip(tmp_path / "nested.pth", H.nested_lists_pickle(200_000), {}), pretrained.CheckpointError),
        (flat, pretrained.ShapeMismatchError),
    ]
    for path, error in cases:
        assert cli.main(["import", str(path), "--arch", "edsr", "--name", "m", "--no-probe"]) == error.exit_code, path
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: ") and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


# --- safetensors, pickle payloads and zip-slip names on the auto-detect path (issue 22) ----------------


def _safetensors(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes((len(head) if length is None else length).to_bytes(8, "little") + head + data)
    return path


def _f32(shape, begin, end):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, end]}


SAFETENSORS = {
    "header_length_2e60": ({}, b"", 1 << 60, r"declares a 1,152,921,504,606,846,976-byte header"),
    "header_past_end": ({"w": _f32((2,), 0, 8)}, b"\0" * 8, 4096, r"declares a 4,096-byte header in a"),
    "not_json": (b"{not json", b"", None, r"not a readable safetensors file"),
    "duplicate_name": (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", '
                       b'"shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4, None, r"the header names 'w' twice"),
    "tensor_larger_than_file": ({"w": _f32((1 << 40,), 0, 4 << 40)}, b"\0" * 16, None,
                                r"tensor 'w': bytes 0..4,398,046,511,104 lie outside the file's 16 data bytes"),
    "shape_vs_offsets": ({"w": _f32((3, 3), 0, 16)}, b"\0" * 36, None, r"needs 36 bytes, offsets give 16"),
    "overlap": ({"a": _f32((4,), 0, 16), "b": _f32((4,), 8, 24)}, b"\0" * 24, None, r"tensors 'a' and 'b' overlap"),
    "bad_dtype": ({"w": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None, r"unsupported dtype 'OBJ'"),
    "negative_dim": ({"w": _f32((-1, 4), 0, 16)}, b"\0" * 16, None, r"is not a list of at most 32 sizes"),
    "deep_json": (b"[" * 100_000 + b"]" * 100_000, b"", None, r"not a readable safetensors file"),
    "extra_fields": ({"w": {**_f32((1,), 0, 4), "code": "os.system"}}, b"\0" * 4, None, r"is not \{dtype, shape"),
}


@pytest.mark.parametrize("case", sorted(SAFETENSORS))
def test_hostile_safetensors_refused(case, tmp_path, monkeypatch, capsys):
    """Each answered by ``import`` without --arch: exit 5, one line naming the file, nothing installed."""
    from pipelines import pretrained as cli

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    header, data, length, pattern = SAFETENSORS[case]
    path = _safetensors(tmp_path / f"{case}.safetensors", header, data, length)
    with pytest.raises(pretrained.CheckpointError, match=f"{path}: .*{pattern}"):
        pth.read_checkpoint(path)
    assert cli.main(["import", str(path), "--name", "m", "--no-probe"]) == pretrained.CheckpointError.exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "models").exists()


def test_truncated_safetensors_refused(tmp_path):
    data = (FIX / "srvgg_x4.safetensors").read_bytes()
    for cut in (4, 100, len(data) - 10):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(pretrained.CheckpointError, match=str(path)):
            pth.read_checkpoint(path)


def _payload_pickles(marker: Path) -> dict[str, bytes]:
    """Pickles that run code when loaded by pickle.load / torch.load(weights_only=False)."""
    import pickle

    class Reduce:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    system = H.op_global("os", "system") + H.op_tuple([H.op_str(f"touch {marker}")]) + b"R"
    posix = H.op_global("posix", "system") + H.op_tuple([H.op_str(f"touch {marker}")]) + b"R"
    return {"os_system": H.pickle_of(system), "posix_system": H.pickle_of(posix),
            "eval_reduce": pickle.dumps({"params": Reduce()}), "inside_state_dict": H.pickle_of(
                H.op_dict([(H.op_str("conv_first.weight"), system)]))}  # fmt: skip


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_pickle_payloads_refused_and_never_run(container, tmp_path, monkeypatch, capsys):
    from pipelines import pretrained as cli

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    marker = tmp_path / "pwned"
    for case, pkl in _payload_pickles(marker).items():
        path = tmp_path / f"{case}.pth"
        if container == "zip":
            H.write_zip(path, pkl, {})
        else:
            H.write_legacy(path, pkl, {})
        assert cli.main(["import", str(path), "--name", "m", "--no-probe"]) == pretrained.CheckpointError.exit_code
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: ") and "Traceback" not in err, err
        assert "refusing to unpickle" in err or "bad magic" in err, err
        assert not marker.exists(), f"{case}: the payload ran"
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("name", ["../../evil/data.pkl", "/abs/archive/data.pkl", "archive/../../data.pkl",
                                  "C:/archive/data.pkl", "archive\\..\\data.pkl"])
def test_zip_slip_names_refused(name, tmp_path):
    pkl, raw = H.state_dict_parts({"w": np.ones(4, np.float32)})
    path = tmp_path / "slip.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, pkl)
        zf.writestr("archive/data/0", raw["0"])
    with pytest.raises(pretrained.CheckpointError, match=r"slip.pth: zip member name .* points outside the archive \(zip-slip\)"):
        load_pth(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slip.pth"]
