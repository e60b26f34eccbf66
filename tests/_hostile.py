"""Hostile files built in code, with the standard library only (no torch, no binaries committed):
PyTorch checkpoints assembled from pickle opcodes and zip records by hand, zlib bombs built from one
compressed block repeated (seconds, not the minutes compressing gigabytes takes). Shared by
tests/test_pth_hostile.py, tests/test_png16_bomb.py and benchmarks/bench_hostile.py."""

from __future__ import annotations

import random
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_ITEMSIZE = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
                    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
                    "ByteStorage": 1, "BoolStorage": 1}
_BLOCK = 1 << 20

# ---------------------------------------------------------------------------------------------
# zlib / deflate streams of zeros
# ---------------------------------------------------------------------------------------------


def deflate_zeros(total: int) -> tuple[bytes, int, int]:
    """(raw deflate stream, adler-32, crc-32) of ``total`` zero bytes, ``total`` a multiple of 1 MiB.

    One 1 MiB block compressed and closed with a full flush is byte aligned and refers to nothing
    before it, so the same bytes repeated decode to the same MiB again; a final empty fixed-Huffman
    block (0x03 0x00) ends the stream."""
    if total % _BLOCK:
        raise ValueError("total must be a multiple of 1 MiB")
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(_BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)
    zero = bytes(_BLOCK)
    adler, crc = 1, 0
    for _ in range(total // _BLOCK):
        adler, crc = zlib.adler32(zero, adler), zlib.crc32(zero, crc)
    return block * (total // _BLOCK) + b"\x03\x00", adler, crc


def zlib_zeros(total: int) -> bytes:
    """A zlib stream (header, deflate, adler-32) of ``total`` zero bytes."""
    raw, adler, _ = deflate_zeros(total)
    return b"\x78\xda" + raw + struct.pack(">I", adler)


# ---------------------------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------------------------


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def png_bomb(where: str, inflated: int, depth: int = 16, width: int = 8, height: int = 8) -> bytes:
    """An RGB PNG declaring ``width`` x ``height`` whose IDAT (``where="idat"``) or iCCP profile
    (``"iccp"``) inflates to ``inflated`` zero bytes; the pixels of an honest file are black."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0)
    honest = zlib.compress(bytes(height * (1 + width * 3 * depth // 8)))
    chunks = [png_chunk(b"IHDR", ihdr)]
    if where == "iccp":
        chunks.append(png_chunk(b"iCCP", b"bomb\0\0" + zlib_zeros(inflated)))
    chunks.append(png_chunk(b"IDAT", zlib_zeros(inflated) if where == "idat" else honest))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + png_chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------
# Pickle opcodes (protocol 2), as torch.save writes them
# ---------------------------------------------------------------------------------------------


def op_str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def op_int(i: int) -> bytes:
    if 0 <= i < 256:
        return b"K" + bytes([i])
    if -(1 << 31) <= i < 1 << 31:
        return b"J" + struct.pack("<i", i)
    n = (i.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + i.to_bytes(n, "little", signed=True)


def op_tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def op_dict(pairs) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


def op_list(items) -> bytes:
    return b"](" + b"".join(items) + b"e"


def op_storage(key: str, numel: int, dtype: str = "FloatStorage", legacy: bool = False) -> bytes:
    """A persistent id: ("storage", type, key, location, element count[, view metadata])."""
    fields = [op_str("storage"), op_global("torch", dtype), op_str(key), op_str("cpu"), op_int(numel)]
    return op_tuple(fields + ([b"N"] if legacy else [])) + b"Q"


def op_tensor(storage: bytes, offset: int, size, stride) -> bytes:
    args = [storage, op_int(offset), op_tuple(op_int(n) for n in size), op_tuple(op_int(s) for s in stride),
            b"\x89", op_global("collections", "OrderedDict") + b")R"]
    return op_global("torch._utils", "_rebuild_tensor_v2") + op_tuple(args) + b"R"


def pickle_of(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def contiguous(size) -> tuple:
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def state_dict_parts(arrays: dict, legacy: bool = False) -> tuple[bytes, dict]:
    """(pickle, {storage key: raw bytes}) of a state dict of float32 arrays, one storage each."""
    pairs, storages = [], {}
    for i, (name, a) in enumerate(arrays.items()):
        a = np.ascontiguousarray(a, dtype="<f4")
        storages[str(i)] = a.tobytes()
        tensor = op_tensor(op_storage(str(i), a.size, legacy=legacy), 0, a.shape, contiguous(a.shape))
        pairs.append((op_str(name), tensor))
    return pickle_of(op_dict(pairs)), storages


# ---------------------------------------------------------------------------------------------
# Checkpoint files
# ---------------------------------------------------------------------------------------------


def write_zip(path, pkl: bytes, storages: dict) -> Path:
    """torch's zip format: ``archive/data.pkl`` and ``archive/data/<key>``, stored."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        for key, raw in storages.items():
            zf.writestr(f"archive/data/{key}", raw)
    return Path(path)


def write_legacy(path, pkl: bytes, storages: dict, counts: dict | None = None) -> Path:
    """torch's legacy format: magic, protocol, system info, object, storage keys, then per storage
    an int64 element count (``counts`` overrides it) and the raw bytes."""
    counts = counts or {}
    head = [pickle_of(op_int(LEGACY_MAGIC)), pickle_of(op_int(1001)), pickle_of(op_dict([(op_str("little_endian"), b"\x88")]))]
    keys = pickle_of(op_list([op_str(k) for k in storages]))
    body = b"".join(struct.pack("<q", counts.get(k, len(raw) // 4)) + raw for k, raw in storages.items())
    Path(path).write_bytes(b"".join(head) + pkl + keys + body)
    return Path(path)


def _zip_record(name: str, data: bytes, crc: int, size: int, method: int, offset: int) -> tuple[bytes, bytes]:
    n = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 33, crc, len(data), size, len(n), 0) + n
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 33, crc, len(data), size,
                          len(n), 0, 0, 0, 0, 0, offset) + n
    return local + data, central


def write_zip_raw(path, members) -> Path:
    """A zip of ``(name, data as stored, crc-32, size once inflated, method)`` members, by hand
    (zipfile cannot store data compressed elsewhere); sizes under 4 GiB, no zip64."""
    out, centrals = b"", []
    for name, data, crc, size, method in members:
        local, central = _zip_record(name, data, crc, size, method, len(out))
        out += local
        centrals.append(central)
    cd = b"".join(centrals)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(cd), len(out), 0)
    Path(path).write_bytes(out + cd + eocd)
    return Path(path)


def write_deflate_bomb(path, inflated: int, declared_numel: int, member: str = "storage") -> Path:
    """A zip checkpoint with one deflated member that inflates to ``inflated`` zero bytes (at most
    4 GiB - 1 MiB): the storage (data.pkl declaring ``declared_numel`` floats) or data.pkl itself."""
    pkl = pickle_of(op_dict([(op_str("w"), op_tensor(op_storage("0", declared_numel), 0, (declared_numel,), (1,)))]))
    raw, _, crc = deflate_zeros(inflated)
    if member == "pickle":
        return write_zip_raw(path, [("archive/data.pkl", raw, crc, inflated, 8)])
    return write_zip_raw(path, [("archive/data.pkl", pkl, zlib.crc32(pkl), len(pkl), 0),
                                ("archive/data/0", raw, crc, inflated, 8)])


def laughs_pickle(levels: int = 9, fanout: int = 10) -> bytes:
    """"Billion laughs": list k holds ``fanout`` references to list k-1 (memo), ``fanout**levels``
    leaves in a few hundred bytes; wrapped in a dict as a state dict's value."""
    body = b"](" + op_str("lol") * fanout + b"e" + b"q\x00" + b"0"
    for k in range(1, levels + 1):
        body += b"](" + (b"h" + bytes([k - 1])) * fanout + b"e" + b"q" + bytes([k]) + b"0"
    return pickle_of(body + b"}" + op_str("x") + b"h" + bytes([levels]) + b"s")


def hash_laughs_pickle(levels: int = 60) -> bytes:
    """Shared tuples ``t_k = (t_{k-1}, t_{k-1})`` used as a dict key: hashing walks 2**levels leaves."""
    body = op_int(0) + b"q\x00" + b"0"
    for k in range(1, levels + 1):
        body += b"h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"\x86" + b"q" + bytes([k]) + b"0"
    return pickle_of(body + b"}" + b"h" + bytes([levels]) + op_int(1) + b"s")


def nested_lists_pickle(depth: int) -> bytes:
    """``depth`` lists, each inside the next, as a state dict's value."""
    return pickle_of(b"}" + op_str("x") + b"]" * (depth + 1) + b"a" * depth + b"s")


# ---------------------------------------------------------------------------------------------
# Fuzzing
# ---------------------------------------------------------------------------------------------

_SIZES = (0, 1, 2, 3, 5, 8, 1 << 31, 10**9)
_STRIDES = (-(10**9), -27, -5, -1, 0, 1, 2, 3, 7, 10**12, 1 << 62)
_OFFSETS = (0, 0, 1, 3, 100, -1, 10**9, 1 << 62, 1 << 70)


def _fuzz_tensor(rng: random.Random, storages: dict, legacy: bool) -> bytes:
    dtype = rng.choice(list(STORAGE_ITEMSIZE))
    numel = rng.choice((0, 1, 6, 24, 216, rng.randrange(64)))
    key = str(len(storages))
    actual = numel if rng.random() < 0.8 else rng.choice((0, numel + 1, max(numel - 1, 0), 1 << 60))
    storages[key] = (dtype, actual, bytes(rng.getrandbits(8) for _ in range(min(actual, 512) * STORAGE_ITEMSIZE[dtype])))
    storage = op_storage(key, numel, dtype, legacy)
    if rng.random() < 0.05:
        storage = rng.choice((op_int(7), op_str("x"), b"N", op_tuple([op_int(1)])))
    ndim = rng.randrange(5)
    size = tuple(rng.choice(_SIZES[:6]) if rng.random() < 0.9 else rng.choice(_SIZES) for _ in range(ndim))
    stride = contiguous(size) if rng.random() < 0.4 else tuple(rng.choice(_STRIDES) for _ in range(ndim))
    if rng.random() < 0.05:
        stride = stride[:-1]
    offset = rng.choice(_OFFSETS) if rng.random() < 0.5 else rng.randrange(max(numel, 1))
    return op_tensor(storage, offset, size, stride)


def _fuzz_value(rng: random.Random, storages: dict, legacy: bool, depth: int) -> bytes:
    kind = rng.random()
    if depth > 3 or kind < 0.5:
        return _fuzz_tensor(rng, storages, legacy)
    items = [_fuzz_value(rng, storages, legacy, depth + 1) for _ in range(rng.randrange(4))]
    if kind < 0.7:
        return op_list(items)
    if kind < 0.8:
        return op_tuple(items)
    return op_dict([(op_str(f"k{i}"), v) for i, v in enumerate(items)])


def fuzz_checkpoint(rng: random.Random, path: Path) -> Path:
    """A random, mostly malformed checkpoint: random strides, offsets, sizes, dtypes, declared and
    actual storage sizes, nesting, shared references; then sometimes truncated or bit-flipped."""
    legacy = rng.random() < 0.4
    storages: dict = {}
    pairs = [(op_str(f"t{i}"), _fuzz_value(rng, storages, legacy, 0)) for i in range(rng.randrange(1, 5))]
    if rng.random() < 0.2:  # the same tensor object twice, through the memo
        pairs.append((op_str("shared"), b"h\x00"))
        pairs[0] = (pairs[0][0], pairs[0][1] + b"q\x00")
    pkl = pickle_of(op_dict(pairs))
    raw = {k: data for k, (_dtype, _n, data) in storages.items()}
    if legacy:
        write_legacy(path, pkl, raw, counts={k: n for k, (_dtype, n, _data) in storages.items()})
    else:
        write_zip(path, pkl, raw)
    data = bytearray(path.read_bytes())
    if rng.random() < 0.15:
        data = data[: rng.randrange(len(data))]
    for _ in range(rng.choice((0, 0, 0, 1, 3))):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return path


# ---------------------------------------------------------------------------------------------
# Running the reader where a crash cannot take the caller down
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _read(command: str, path: str):
    """What a user's command does with the file: ``load`` (the .pth reader), ``import`` (reader,
    key check and conversion, as ``pipelines.pretrained import``) or ``png`` (``read_image``)."""
    if command == "png":
        from srkeras.data.io import read_image

        return read_image(path)
    if command == "import":
        from srkeras import pretrained

        return pretrained.import_pth(path, None, "hostile", run_probe=False)
    from srkeras.pretrained.torchfile import load_pth

    return load_pth(path)


def _report(command: str, case: str, path: str) -> None:
    """One JSON line: the outcome of ``command`` on ``path`` (loaded / refused / error)."""
    import json

    from srkeras.data.io import ImageLoadError
    from srkeras.pretrained.errors import PretrainedError

    try:
        obj = _read(command, path)
        shared = isinstance(obj, dict) and isinstance(obj.get("x"), list) and len(obj["x"]) > 1 and obj["x"][0] is obj["x"][1]
        line = {"case": case, "outcome": "loaded", "shared": shared}
    except (PretrainedError, ImageLoadError) as e:
        line = {"case": case, "outcome": "refused", "detail": str(e)}
    except BaseException as e:  # noqa: BLE001 - the point is to report what escapes
        line = {"case": case, "outcome": "error", "detail": f"{type(e).__name__}: {e!s:.300}"}
    print(json.dumps(line), flush=True)


def _fuzz(seed: int, count: int, folder: Path) -> None:
    """Load ``count`` fuzzed checkpoints; anything but a load or a CheckpointError escapes (exit 1)."""
    import json

    from srkeras.pretrained.errors import CheckpointError
    from srkeras.pretrained.torchfile import load_pth

    rng, outcomes = random.Random(seed), {"loaded": 0, "refused": 0}
    for i in range(count):
        path = fuzz_checkpoint(rng, folder / f"fuzz{i}.pth")
        try:
            load_pth(path)
            outcomes["loaded"] += 1
        except CheckpointError:
            outcomes["refused"] += 1
        path.unlink(missing_ok=True)
    print(json.dumps(outcomes), flush=True)


def run_isolated(args: list[str], memory_limit: int = 2 << 30, timeout: float = 120):
    """``python -m tests._hostile ARGS`` in a child limited to ``memory_limit`` bytes of address
    space (a runaway allocation fails there, not on the machine); returns the CompletedProcess.
    The child imports what the caller's PYTHONPATH names first (e.g. another checkout), then ROOT."""
    import os
    import subprocess
    import sys

    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    env = {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tests._hostile", str(memory_limit), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


if __name__ == "__main__":
    import resource
    import sys

    limit, command, *rest = sys.argv[1:]
    if int(limit):  # 0: no limit (TensorFlow reserves address space it never touches)
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    if command == "fuzz":
        _fuzz(int(rest[0]), int(rest[1]), Path(rest[2]))
    else:  # load|import|png CASE=PATH ...
        for item in rest:
            case, _, path = item.partition("=")
            _report(command, case, path)
