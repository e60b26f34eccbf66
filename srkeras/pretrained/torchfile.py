"""Read PyTorch ``.pth`` checkpoints with numpy only: no torch, no code run from the file.

Both formats ``torch.save`` writes are handled: the zip format (torch >= 1.6: ``*/data.pkl`` plus
one raw little-endian file per storage under ``*/data/``) and the legacy format (torch < 1.6 or
``_use_new_zipfile_serialization=False``: magic, protocol and system-info pickles, the object
pickle, the list of storage keys, then per storage an int64 element count and its raw bytes).

Unpickling goes through a restricted unpickler that resolves only the handful of globals a state
dict needs (``OrderedDict``, tensor/parameter rebuild functions, typed storage classes); any other
global (a pickled ``nn.Module``, ``os.system``...) raises :class:`CheckpointError`.

The file is hostile until proven otherwise, so nothing is allocated from a size the file states
before that size is checked against what the file holds and against the limits below:

* every pickle is first walked by :func:`pickletools.genops` (lengths checked against the bytes
  present, opcodes and memo slots counted) with a shadow stack of tuple sizes: a tuple whose
  shared references expand past :data:`MAX_PICKLE_OPS` items (the hashing "billion laughs") is
  refused before the C unpickler builds or hashes it;
* a storage's bytes must be exactly the element count its persistent id declares, all storages
  together at most :data:`MAX_STORAGE_BYTES`; zip members are streamed into a buffer of the
  declared size (a deflate bomb is refused from its header, never inflated);
* tensors are built with the pickle's sharing intact (a memo, as the unpickler's own), at most
  :data:`MAX_NESTING` containers deep; every element a tensor's ``(offset, size, stride)`` view
  can address, negative strides included, must lie inside its storage, and all tensors together
  at most :data:`MAX_STORAGE_BYTES`. Views are gathered by slicing or bounds-checked indexing,
  never by raw strides.
"""

from __future__ import annotations

import collections
import errno
import io
import math
import pickle
import pickletools
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from srkeras.pretrained.errors import CheckpointError

#: All storages (and, separately, all tensors built from them) of one checkpoint; the largest
#: supported network (EDSR-L, params + params_ema) needs about 0.35 GB.
MAX_STORAGE_BYTES = 1 << 30
#: A zip checkpoint's ``data.pkl`` (a state dict's pickle is kilobytes).
MAX_PICKLE_BYTES = 64 << 20
#: Opcodes per pickle, memo slots, and items a tuple may expand to (state dicts: thousands).
MAX_PICKLE_OPS = 2_000_000
#: Containers nested inside each other (a BasicSR checkpoint: dict -> dict -> tensor).
MAX_NESTING = 32
MAX_DIMS = 32
_MAX_INDEX = 1 << 62  # no size, stride or offset of a real tensor comes near this
_CHUNK = 1 << 20

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_CORRUPT = (
    pickle.UnpicklingError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, ValueError, KeyError,
    TypeError, AttributeError, IndexError, OverflowError, NotImplementedError, RuntimeError,
)


class _Refused(Exception):
    """A checkpoint this reader will not build; the message says why (``load_pth`` adds the file)."""


class _Sealed:
    """Reader objects the pickle can reach: its BUILD opcode must not rewrite their checked fields."""

    def __setstate__(self, _state):
        raise _Refused(f"the pickle tries to set the state of a {type(self).__name__.strip('_')}")


class _StorageType(_Sealed):
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize

    def decode(self, raw) -> np.ndarray:
        if self.dtype == "bfloat16":
            return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        return np.frombuffer(raw, np.dtype(self.dtype).newbyteorder("<"))


class _Storage(_Sealed):
    """A storage whose bytes arrive later (legacy format) or now (zip format)."""

    def __init__(self, stype: _StorageType, key: str, numel: int):
        self.stype, self.key, self.numel, self.array = stype, key, numel, None

    @property
    def nbytes(self) -> int:
        return self.numel * self.stype.itemsize


class _Budget:
    """Bytes one load has committed to, against :data:`MAX_STORAGE_BYTES`."""

    def __init__(self):
        self.used = {"storage": 0, "tensor": 0}

    def take(self, what: str, nbytes: int) -> None:
        self.used[what] += nbytes
        if self.used[what] > MAX_STORAGE_BYTES:
            raise _Refused(
                f"its {what}s need more than {MAX_STORAGE_BYTES:,} bytes together: refused as a memory bomb "
                "(no supported network is that large; a genuine file: save only the network's state_dict())"
            )


def _index(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refused(f"a tensor's {what} is a {type(value).__name__}, not an integer")
    if abs(value) >= _MAX_INDEX:
        raise _Refused(f"a tensor's {what} is a {value.bit_length()}-bit number: no tensor is that large")
    return value


def _indices(values, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or len(values) > MAX_DIMS:
        raise _Refused(f"a tensor's {what} is not a tuple of at most {MAX_DIMS} integers")
    return tuple(_index(v, what) for v in values)


class _TensorRef(_Sealed):
    """``storage[offset + sum(i_k * stride_k)]`` for every index ``i`` of ``size`` (torch's view)."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise _Refused(f"a tensor's storage is a {type(storage).__name__}, not a storage")
        self.storage, self.offset = storage, _index(offset, "storage offset")
        self.size, self.stride = _indices(size, "size"), _indices(stride, "stride")
        if len(self.size) != len(self.stride) or min(self.size, default=0) < 0 or self.offset < 0:
            raise _Refused(f"a tensor has size {self.size}, stride {self.stride}, offset {self.offset}")

    def materialize(self, budget: _Budget) -> np.ndarray:
        flat, key = self.storage.array, self.storage.key
        if flat is None:
            raise _Refused(f"storage {key} has no data")
        numel = math.prod(self.size)
        budget.take("tensor", numel * flat.itemsize)
        dtype = flat.dtype.newbyteorder("=")
        if numel == 0:  # addresses nothing (torch allows any offset then)
            return np.zeros(self.size, dtype)
        lowest = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if s < 0)
        highest = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if s > 0)
        if lowest < 0 or highest >= flat.size:
            raise _Refused(
                f"a tensor of size {self.size}, stride {self.stride}, offset {self.offset} addresses elements "
                f"{lowest}..{highest} of storage {key}, which has {flat.size}"
            )
        if self.stride == _contiguous_strides(self.size):
            return flat[self.offset : self.offset + numel].reshape(self.size).astype(dtype)
        # Every term is within [-offset, storage size] after the check above: no int64 overflow.
        budget.take("tensor", numel * 8)  # the gather's index array
        index = np.full(self.size, self.offset, np.int64)
        for axis, (n, s) in enumerate(zip(self.size, self.stride)):
            index += (np.arange(n, dtype=np.int64) * s).reshape([-1 if a == axis else 1 for a in range(len(self.size))])
        return flat.take(index, mode="raise").astype(dtype)


def _contiguous_strides(size) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _rebuild_tensor(storage, offset, size, stride, *_args):
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, *_args):
    return data


_TUPLE_OPS = {"EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MAX_KEY_ITEMS = 64  # a dict key or set element: state dicts use strings


def _hashed(op: str, popped: list, sliced: list) -> list:
    """Shadow values that ``op`` hashes (dict keys, set elements)."""
    if op == "SETITEM":
        return popped[1:2]
    if op in ("SETITEMS", "DICT"):
        return sliced[0::2]
    return sliced if op in ("ADDITEMS", "FROZENSET") else []


def _pop(stack: list, marks: list, op) -> tuple[list, list]:
    """The shadow values ``op`` consumes: ``(below its MARK or all, above its MARK)``."""
    sliced = []
    below = len(op.stack_before)
    if pickletools.markobject in op.stack_before:
        if not marks:
            raise _Refused(f"corrupt pickle ({op.name} without MARK)")
        start = marks.pop()
        sliced = stack[start:]
        del stack[start:]
        below = op.stack_before.index(pickletools.markobject)
    if len(stack) - (marks[-1] if marks else 0) < below:
        raise _Refused(f"corrupt pickle (stack underflow at {op.name})")
    popped = stack[len(stack) - below :]
    del stack[len(stack) - below :]
    return popped, sliced


def _scan_pickle(stream) -> None:
    """Walk one pickle without building it: every length present, memo and stack consistent, no
    tuple expanding past :data:`MAX_PICKLE_OPS` items, no dict key or set element a big tuple.
    ``stream`` is left after the STOP opcode.

    The shadow stack holds, per value, the number of items it expands to when hashed or walked
    (1 for anything but a tuple: lists and dicts are unhashable, :func:`_materialize` keeps their
    sharing). Hashing shared tuples is the CPU form of the "billion laughs".
    """
    stack, marks, memo = [], [], {}
    for count, (op, arg, _pos) in enumerate(pickletools.genops(stream), 1):
        if count > MAX_PICKLE_OPS:
            raise _Refused(f"a pickle of more than {MAX_PICKLE_OPS:,} opcodes: not a state dict")
        if op.name == "MARK":
            marks.append(len(stack))
            continue
        popped, sliced = _pop(stack, marks, op)
        if max(_hashed(op.name, popped, sliced), default=1) > _MAX_KEY_ITEMS:
            raise _Refused("a pickle that hashes a nested tuple (a dict key or set element): not a state dict")
        if op.name in _MEMO_PUT or op.name == "MEMOIZE":
            slot = len(memo) if op.name == "MEMOIZE" else arg
            if not (popped or stack) or not 0 <= slot <= MAX_PICKLE_OPS:
                raise _Refused(f"corrupt pickle (memo slot {slot} at {op.name})")
            memo[slot] = (popped or stack)[-1]
        if op.name in _MEMO_GET:
            if arg not in memo:
                raise _Refused(f"corrupt pickle (memo slot {arg} read before it is written)")
            stack.append(memo[arg])
        elif op.name in _TUPLE_OPS:
            stack.append(1 + sum(popped) + sum(sliced))
            if stack[-1] > MAX_PICKLE_OPS:
                raise _Refused("a pickle whose shared tuples expand past the item limit (a 'billion laughs')")
        elif op.name in ("DUP", "MEMOIZE"):
            stack += popped * 2 if op.name == "DUP" else popped
        elif op.name == "REDUCE":
            stack.append(popped[1])  # _rebuild_parameter returns its argument
        elif op.name == "FROZENSET":
            stack.append(1 + len(sliced))
        else:
            stack += [1] * len(op.stack_after)


def _ordered_dict(items=()):
    """``OrderedDict`` as Python 2's pickles call it (with a list of pairs): keys must be plain, so
    that building it hashes no nested tuple the scan could not see inside a list."""
    pairs = [tuple(pair) for pair in items]
    if any(len(p) != 2 or not isinstance(p[0], (str, bytes, int, float, type(None))) for p in pairs):
        raise _Refused("an OrderedDict built from other than (plain key, value) pairs")
    return collections.OrderedDict(pairs)


_ALLOWED = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storage_loader):
        super().__init__(file, encoding="latin1")
        self._load_storage = storage_loader

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _Refused(
            f"refusing to unpickle {module:.100}.{name:.100} (only state dicts of tensors are read; "
            "save the model's state_dict(), not the model object)"
        )

    def persistent_load(self, pid):
        # torch writes ("storage", storage type, key, location, element count[, view metadata]).
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise _Refused(f"unsupported persistent id (a {type(pid).__name__}, not a torch storage reference)")
        stype, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(stype, _StorageType):
            raise _Refused(f"unsupported storage type (a {type(stype).__name__})")
        if not isinstance(key, str) or len(key) > 100:
            raise _Refused(f"a storage key that is a {type(key).__name__}, not a short string")
        if isinstance(numel, bool) or not isinstance(numel, int) or not 0 <= numel < _MAX_INDEX:
            shown = numel if isinstance(numel, int) and numel.bit_length() < 128 else f"a {type(numel).__name__} of"
            raise _Refused(f"storage {key} declares {shown} elements")
        return self._load_storage(stype, key, numel)


def _unpickle(data, storage_loader):
    """Scan, then build, the pickle that starts at ``data``'s position (an in-memory stream)."""
    start = data.tell()
    _scan_pickle(data)
    data.seek(start)
    return _Unpickler(data, storage_loader).load()


def _materialize(obj, budget: _Budget, memo: dict, depth: int = 0):
    """``obj`` with tensors as arrays; an object the pickle shares is built once (``memo``, by id)."""
    if id(obj) in memo:
        return memo[id(obj)]
    if depth > MAX_NESTING:
        raise _Refused(f"containers nested more than {MAX_NESTING} deep (or a cycle): not a state dict")
    if isinstance(obj, _TensorRef):
        out = obj.materialize(budget)
    elif isinstance(obj, dict):
        out = type(obj)((k, _materialize(v, budget, memo, depth + 1)) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        out = type(obj)(_materialize(v, budget, memo, depth + 1) for v in obj)
    else:
        return obj
    memo[id(obj)] = out
    return out


def _storage_registry(budget: _Budget, read):
    """``load_storage(stype, key, numel)`` for the unpickler: one :class:`_Storage` per key, its
    declared size charged to ``budget``; ``read(storage)`` fills it (zip) or ``None`` (legacy)."""
    storages = {}

    def load_storage(stype, key, numel):
        st = storages.get(key)
        if st is None:
            st = storages[key] = _Storage(stype, key, numel)
            budget.take("storage", st.nbytes)
            if read is not None:
                st.array = st.stype.decode(read(st))
        elif (st.stype.name, st.numel) != (stype.name, numel):
            raise _Refused(f"storage {key} is declared twice, differently")
        return st

    return load_storage, storages


def _read_member(zf: zipfile.ZipFile, name: str, nbytes: int) -> np.ndarray:
    """The ``nbytes`` bytes of member ``name``, whose header must say exactly that many: streamed
    into one buffer, so an inflating member never holds more (zipfile stops at the header's size)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _Refused(f"{name} is missing from the archive") from None
    if info.file_size != nbytes:
        raise _Refused(f"{name} holds {info.file_size:,} bytes where the checkpoint declares {nbytes:,}")
    buf = np.empty(nbytes, np.uint8)
    done = 0
    with zf.open(info) as f:
        while done < nbytes:
            chunk = f.read(min(_CHUNK, nbytes - done))
            if not chunk:
                raise _Refused(f"{name} is truncated ({done:,} of {nbytes:,} bytes)")
            buf[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
            done += len(chunk)
    return buf


def _check_names(names) -> None:
    """Member names must stay inside the archive (nothing is extracted, but a "zip-slip" name is a
    hostile file's mark): no absolute path, drive, backslash or ``..`` component."""
    for n in names:
        parts = n.split("/")
        if n.startswith("/") or "\\" in n or ":" in parts[0] or ".." in parts:
            raise _Refused(f"zip member name {n[:100]!r} points outside the archive (zip-slip): refused")


def _load_zip(zf: zipfile.ZipFile, budget: _Budget):
    _check_names(zf.namelist())
    pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
    if len(pkl) != 1:
        raise _Refused("zip file without a single data.pkl: not a PyTorch checkpoint")
    size = zf.getinfo(pkl[0]).file_size
    if size > MAX_PICKLE_BYTES:
        raise _Refused(f"{pkl[0]} inflates to {size:,} bytes (over {MAX_PICKLE_BYTES:,}): not a state dict")
    root = pkl[0][: -len("data.pkl")]
    load_storage, _ = _storage_registry(budget, lambda st: _read_member(zf, f"{root}data/{st.key}", st.nbytes))
    return _unpickle(io.BytesIO(_read_member(zf, pkl[0], size).tobytes()), load_storage)


def _load_legacy(raw: bytes, budget: _Budget):
    data, view = io.BytesIO(raw), memoryview(raw)  # storages are views of ``raw``, not copies
    load_storage, storages = _storage_registry(budget, None)
    if _unpickle(data, load_storage) != _LEGACY_MAGIC:
        raise _Refused("not a PyTorch checkpoint (bad magic number)")
    _unpickle(data, load_storage)  # protocol version
    _unpickle(data, load_storage)  # system info
    obj = _unpickle(data, load_storage)
    keys = _unpickle(data, load_storage)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Refused("the list of storage keys is not a list of strings")
    for key in keys:
        st = storages.get(key)
        if st is None:
            raise _Refused(f"storage {key:.100} listed but never used")
        (n,) = struct.unpack("<q", data.read(8))
        if n != st.numel:
            raise _Refused(f"storage {key} holds {n:,} elements where the checkpoint declares {st.numel:,}")
        start = data.tell()
        if start + st.nbytes > len(view):
            raise _Refused(f"truncated (storage {key} needs {st.nbytes:,} bytes, {len(view) - start:,} remain)")
        st.array = st.stype.decode(view[start : start + st.nbytes])
        data.seek(start + st.nbytes)
    return obj


def load_pth(path) -> object:
    """The object a ``torch.save`` wrote, tensors as numpy arrays (float32/float16/... as stored).

    Raises :class:`CheckpointError` naming ``path`` for unreadable, corrupt, unsafe or oversized files.
    """
    path = Path(path)
    budget = _Budget()
    try:
        size = path.stat().st_size
        if size > MAX_STORAGE_BYTES + 2 * MAX_PICKLE_BYTES:
            raise _Refused(f"{size:,} bytes is more than any supported network's checkpoint")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                obj = _load_zip(zf, budget)
        else:
            obj = _load_legacy(path.read_bytes(), budget)
        return _materialize(obj, budget, {})
    except _Refused as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (*_CORRUPT, OSError) as e:
        if isinstance(e, OSError) and e.errno != errno.EINVAL:  # EINVAL: a seek to a corrupt zip offset
            raise CheckpointError(f"{path}: {e}") from None
        raise CheckpointError(f"{path}: cannot read PyTorch checkpoint (truncated or corrupt?): {e!s:.200}") from None
