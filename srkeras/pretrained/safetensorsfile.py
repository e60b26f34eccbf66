"""Read ``.safetensors`` files with numpy only (no ``safetensors`` package, no code from the file).

The format (huggingface/safetensors): an unsigned little-endian 64-bit header length ``n``, ``n``
bytes of UTF-8 JSON mapping tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the byte after the header; an optional ``"__metadata__"`` of strings), then the
raw little-endian buffers. The file is hostile until checked: the header must fit in the file and
in :data:`MAX_HEADER_BYTES`, names must be unique, every tensor's byte range must equal its shape
times its item size, lie inside the file and overlap no other, and all of them together stay within
:data:`srkeras.pretrained.torchfile.MAX_STORAGE_BYTES`; nothing is allocated before that.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from srkeras.pretrained.errors import CheckpointError
from srkeras.pretrained.torchfile import MAX_DIMS, MAX_STORAGE_BYTES

MAX_HEADER_BYTES = 100 << 20  # the reference implementation's limit
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}  # fmt: skip


def is_safetensors(path) -> bool:
    """Whether ``path`` starts like a safetensors file (a plausible length, then ``{``)."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and struct.unpack("<Q", head[:8])[0] < MAX_HEADER_BYTES and head[8:9] == b"{"


def _unique(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the header names {k!r} twice")
        out[k] = v
    return out


def _entry(name: str, spec, buffer_len: int) -> tuple[str, tuple[int, ...], int, int]:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"tensor {name!r}: header entry is not {{dtype, shape, data_offsets}}")
    dtype, dims, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if dtype not in _DTYPES:
        raise ValueError(f"tensor {name!r}: unsupported dtype {dtype!r:.40}")
    ints = isinstance(dims, list) and len(dims) <= MAX_DIMS and all(type(d) is int and 0 <= d < 1 << 48 for d in dims)
    if not ints:
        raise ValueError(f"tensor {name!r}: shape {dims!r:.80} is not a list of at most {MAX_DIMS} sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise ValueError(f"tensor {name!r}: data_offsets {offsets!r:.80} are not two integers")
    begin, end = offsets
    itemsize = 2 if dtype == "BF16" else np.dtype(_DTYPES[dtype]).itemsize
    need = math.prod(dims) * itemsize
    if not 0 <= begin <= end <= buffer_len:
        raise ValueError(f"tensor {name!r}: bytes {begin:,}..{end:,} lie outside the file's {buffer_len:,} data bytes")
    if end - begin != need:
        raise ValueError(f"tensor {name!r}: shape {tuple(dims)} of {dtype} needs {need:,} bytes, offsets give {end - begin:,}")
    return dtype, tuple(dims), begin, end


def _decode(raw: bytes, dtype: str, dims) -> np.ndarray:
    if dtype == "BF16":
        arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(raw, np.dtype(_DTYPES[dtype])).astype(np.dtype(_DTYPES[dtype]).newbyteorder("="))
    return arr.reshape(dims)


def read_header(path) -> tuple[dict, int]:
    """The checked header ``{name: (dtype, shape, begin, end)}`` and where the data starts."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError("shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise ValueError(f"declares a {n:,}-byte header in a {size:,}-byte file")
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_unique)
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    header.pop("__metadata__", None)
    entries = {name: _entry(name, spec, size - 8 - n) for name, spec in header.items()}
    spans = sorted((b, e, name) for name, (_d, _s, b, e) in entries.items() if e > b)
    for (_b0, e0, n0), (b1, _e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ValueError(f"tensors {n0!r} and {n1!r} overlap")
    total = sum(e - b for _d, _s, b, e in entries.values())
    if total > MAX_STORAGE_BYTES:
        raise ValueError(f"its tensors need {total:,} bytes, more than {MAX_STORAGE_BYTES:,}: refused as a memory bomb")
    return entries, 8 + n


def load_safetensors(path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file; CheckpointError naming ``path`` for anything malformed."""
    try:
        entries, start = read_header(path)
        out = {}
        with open(path, "rb") as f:
            for name, (dtype, dims, begin, end) in entries.items():
                f.seek(start + begin)
                raw = f.read(end - begin)
                if len(raw) != end - begin:
                    raise ValueError(f"tensor {name!r} is truncated")
                out[name] = _decode(raw, dtype, dims)
        return out
    except (ValueError, UnicodeDecodeError, RecursionError, struct.error) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {e!s:.300}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: {e}") from None
