"""Read PyTorch ``.pth`` checkpoints with numpy only: no torch, no code run from the file.

Both formats ``torch.save`` writes are handled: the zip format (torch >= 1.6: ``*/data.pkl`` plus
one raw little-endian file per storage under ``*/data/``) and the legacy format (torch < 1.6 or
``_use_new_zipfile_serialization=False``: magic, protocol and system-info pickles, the object
pickle, the list of storage keys, then per storage an int64 element count and its raw bytes).

Unpickling goes through a restricted unpickler that resolves only the handful of globals a state
dict needs (``OrderedDict``, tensor/parameter rebuild functions, typed storage classes); any other
global (a pickled ``nn.Module``, ``os.system``...) raises :class:`CheckpointError`.
"""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from srkeras.pretrained.errors import CheckpointError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize

    def decode(self, raw: bytes) -> np.ndarray:
        if self.dtype == "bfloat16":
            return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        return np.frombuffer(raw, np.dtype(self.dtype).newbyteorder("<"))


class _Storage:
    """A storage whose bytes arrive later (legacy format) or now (zip format)."""

    def __init__(self, stype: _StorageType, key: str):
        self.stype, self.key, self.array = stype, key, None


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise CheckpointError(f"storage {self.storage.key} has no data")
        if not self.size:
            return np.array(flat[self.offset])
        need = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.size) > 0 and need > flat.size:
            raise CheckpointError(f"tensor needs {need} elements of storage {self.storage.key}, it has {flat.size}")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=self.size, strides=[s * item for s in self.stride], writeable=False
        )
        return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _rebuild_tensor(storage, offset, size, stride, *_args):
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, *_args):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path, storage_loader):
        super().__init__(file, encoding="latin1")
        self._path, self._load_storage = path, storage_loader

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(
            f"{self._path}: refusing to unpickle {module}.{name} (only state dicts of tensors are read; "
            "save the model's state_dict(), not the model object)"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CheckpointError(f"{self._path}: unsupported persistent id {pid!r:.80}")
        stype, key = pid[1], str(pid[2])
        if not isinstance(stype, _StorageType):
            raise CheckpointError(f"{self._path}: unsupported storage type {stype!r:.80}")
        return self._load_storage(stype, key)


def _materialize(obj):
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        return type(obj)((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _load_zip(path: Path, zf: zipfile.ZipFile):
    pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
    if len(pkl) != 1:
        raise CheckpointError(f"{path}: zip file without a single data.pkl: not a PyTorch checkpoint")
    root = pkl[0][: -len("data.pkl")]
    cache = {}

    def load_storage(stype, key):
        if key not in cache:
            st = _Storage(stype, key)
            try:
                st.array = stype.decode(zf.read(f"{root}data/{key}"))
            except KeyError:
                raise CheckpointError(f"{path}: storage {key} is missing from the archive") from None
            cache[key] = st
        return cache[key]

    with zf.open(pkl[0]) as f:
        return _Unpickler(f, path, load_storage).load()


def _load_legacy(path: Path, f):
    storages = {}

    def load_storage(stype, key):
        return storages.setdefault(key, _Storage(stype, key))

    def unpickle():
        return _Unpickler(f, path, load_storage).load()

    if unpickle() != _LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    unpickle()  # protocol version
    unpickle()  # system info
    obj = unpickle()
    for key in unpickle():
        st = storages.get(str(key))
        if st is None:
            raise CheckpointError(f"{path}: storage {key} listed but never used")
        (n,) = struct.unpack("<q", f.read(8))
        raw = f.read(n * st.stype.itemsize)
        if len(raw) != n * st.stype.itemsize:
            raise CheckpointError(f"{path}: truncated (storage {key} needs {n * st.stype.itemsize} bytes)")
        st.array = st.stype.decode(raw)
    return obj


def load_pth(path) -> object:
    """The object a ``torch.save`` wrote, tensors as numpy arrays (float32/float16/... as stored)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                obj = _load_zip(path, zf)
        else:
            with open(path, "rb") as f:
                obj = _load_legacy(path, f)
        return _materialize(obj)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: cannot read PyTorch checkpoint (truncated or corrupt?): {e}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: {e}") from None
