"""No-reference metrics NIQE and BRISQUE, ported line by line from their MATLAB releases.

NIQE (Mittal, Soundararajan & Bovik 2013, ``niqe_release``: computequality.m / computefeature.m /
estimateaggdparam.m): ``rgb2gray`` (uint8, rounded), the image cropped to whole 96x96 blocks, two
scales (the second by MATLAB ``imresize(im, 0.5)``: srkeras's exact port), per block 18 AGGD features
of the MSCN coefficients (7x7 Gaussian, sigma 7/6, ``imfilter`` 'replicate'), the MVG fitted to the
blocks compared with the pristine model (``niqe_pris_params``): lower is better.

BRISQUE (Mittal, Moorthy & Bovik 2012, ``BRISQUE_release``: brisquequality.m / brisque_feature.m):
``rgb2gray``, MSCN with ``filter2`` 'same' (zero padding), GGD fit of the MSCN coefficients and AGGD
fits of their products with ``circshift`` neighbours, at two scales; the 36 features written with
``%f``, scaled by ``svm-scale -r allrange`` (``%g`` output) and scored by ``svm-predict`` with the
LIVE epsilon-SVR (RBF) model: lower is better (0..100 for typical images).

Both run whole-image in NumPy/SciPy (no shave, no Y), as the originals do.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage
from scipy.special import gamma

from srkeras.data.imresize import imresize
from srkeras.metrics.inputs import as_uint8_scale, check_min_size, matlab_gray

NIQE_BLOCK = 96
BRISQUE_MIN = 14  # the 7x7 window at the half scale
_GAM = np.arange(0.2, 10.0 + 5e-4, 0.001)  # MATLAB 0.2:0.001:10 (9801 values)


@functools.lru_cache(maxsize=1)
def _tables():
    r_ggd = gamma(1.0 / _GAM) * gamma(3.0 / _GAM) / gamma(2.0 / _GAM) ** 2
    r_aggd = gamma(2.0 / _GAM) ** 2 / (gamma(1.0 / _GAM) * gamma(3.0 / _GAM))
    return r_ggd, r_aggd


def _gaussian7() -> np.ndarray:
    """MATLAB ``fspecial('gaussian', 7, 7/6)`` normalised to sum 1."""
    ax = np.arange(7) - 3.0
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * (7 / 6) ** 2))
    return g / g.sum()


def ggd_fit(vec: np.ndarray) -> tuple[float, float]:
    """estimateggdparam.m: (shape alpha, sigma) of a zero-mean generalised Gaussian."""
    sigma_sq = np.mean(vec * vec)
    rho = sigma_sq / np.mean(np.abs(vec)) ** 2
    return float(_GAM[np.argmin(np.abs(rho - _tables()[0]))]), float(np.sqrt(sigma_sq))


def aggd_fit(vec: np.ndarray) -> tuple[float, float, float]:
    """estimateaggdparam.m: (alpha, left std, right std) of an asymmetric generalised Gaussian."""
    left = np.sqrt(np.mean(vec[vec < 0] ** 2)) if np.any(vec < 0) else np.nan
    right = np.sqrt(np.mean(vec[vec > 0] ** 2)) if np.any(vec > 0) else np.nan
    gammahat = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec * vec)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    # MATLAB's min over an all-NaN vector returns index 1.
    alpha = _GAM[np.argmin((_tables()[1] - rhatnorm) ** 2)] if np.isfinite(rhatnorm) else _GAM[0]
    return float(alpha), float(left), float(right)


def mscn(im: np.ndarray, window: np.ndarray, mode: str) -> np.ndarray:
    mu = ndimage.correlate(im, window, mode=mode)
    sigma = np.sqrt(np.abs(ndimage.correlate(im * im, window, mode=mode) - mu * mu))
    return (im - mu) / (sigma + 1.0)


# ------------------------------------------------------------------------------------------ NIQE


def _niqe_block_features(block: np.ndarray) -> list[float]:
    """computefeature.m: 18 features of one block of MSCN coefficients (NIQE's estimateaggdparam.m
    returns the AGGD scales beta = std * sqrt(gamma(1/alpha) / gamma(3/alpha)))."""

    def betas(vec):
        alpha, ls, rs = aggd_fit(vec)
        c = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
        return alpha, ls * c, rs * c

    alpha, bl, br = betas(block.ravel(order="F"))
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = betas((block * np.roll(block, shift, axis=(0, 1))).ravel(order="F"))
        feat += [alpha, (br - bl) * gamma(2 / alpha) / gamma(1 / alpha), bl, br]
    return feat


def niqe_features(gray: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Per-block (rows) 36 features of a 0..255 grey image already cropped to whole blocks."""
    im = gray
    rows, cols = im.shape[0] // NIQE_BLOCK, im.shape[1] // NIQE_BLOCK
    feats = []
    for s in (1, 2):
        st = mscn(im, window, "nearest")
        b = NIQE_BLOCK // s
        feats.append([_niqe_block_features(st[r * b:(r + 1) * b, c * b:(c + 1) * b])
                      for c in range(cols) for r in range(rows)])
        if s == 1:
            im = imresize(im, scale=0.5)
    return np.concatenate([np.asarray(f) for f in feats], axis=1)


def niqe(img, name: str | None = None, params: dict | None = None) -> float:
    """NIQE of an HxWx3 (or HxW) uint8 image (MATLAB ``niqe_release``); lower is better.

    ``params``: ``{"mu", "cov", "window"}`` (default: the installed ``niqe`` asset)."""
    what = name or "img"
    x = as_uint8_scale(img, what, colour=False)
    if (x.shape[0] // NIQE_BLOCK) * (x.shape[1] // NIQE_BLOCK) < 2:
        raise ValueError(f"{what}: {x.shape[0]}x{x.shape[1]} image is smaller than NIQE needs (at least two whole "
                         f"{NIQE_BLOCK}x{NIQE_BLOCK} blocks, e.g. 96x192, for the covariance of their features)")
    if params is None:
        from srkeras.pretrained.metric_assets import load

        params = load("niqe")
    gray = matlab_gray(x, quantise=np.asarray(img).dtype == np.uint8)
    h, w = (gray.shape[0] // NIQE_BLOCK) * NIQE_BLOCK, (gray.shape[1] // NIQE_BLOCK) * NIQE_BLOCK
    feat = niqe_features(gray[:h, :w], np.asarray(params["window"], np.float64))
    mu = np.nanmean(feat, axis=0)
    complete = feat[~np.isnan(feat).any(axis=1)]
    cov = np.cov(complete, rowvar=False)
    d = np.asarray(params["mu"], np.float64).reshape(-1) - mu
    inv = np.linalg.pinv((np.asarray(params["cov"], np.float64) + cov) / 2)
    return float(np.sqrt(d @ inv @ d))


# --------------------------------------------------------------------------------------- BRISQUE


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """brisque_feature.m: the 36 features of a 0..255 grey (double) image."""
    window = _gaussian7()
    im = gray
    feat = []
    for s in (1, 2):
        st = mscn(im, window, "constant")
        alpha, std = ggd_fit(st.ravel(order="F"))
        feat += [alpha, std**2]
        for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            pair = st * np.roll(st, shift, axis=(0, 1))
            alpha, ls, rs = aggd_fit(pair.ravel(order="F"))
            const = np.sqrt(gamma(1 / alpha)) / np.sqrt(gamma(3 / alpha))
            feat += [alpha, (rs - ls) * (gamma(2 / alpha) / gamma(1 / alpha)) * const, ls**2, rs**2]
        if s == 1:
            im = imresize(im, scale=0.5)
    return np.asarray(feat)


def _g6(x: np.ndarray) -> np.ndarray:
    """C ``printf("%g")``: 6 significant digits (what svm-scale writes and svm-predict reads)."""
    return np.array([float(f"{v:g}") for v in x])


def brisque_score_features(feat: np.ndarray, model: dict) -> float:
    """svm-scale (range file) + svm-predict (epsilon-SVR, RBF) on the 36 features, with the text
    round trips of brisquequality.m (features written ``%f``, scaled values ``%g``)."""
    f = np.round(feat, 6)
    lo, hi = np.asarray(model["range_min"]), np.asarray(model["range_max"])
    scaled = np.where(f == lo, -1.0, np.where(f == hi, 1.0, -1.0 + 2.0 * (f - lo) / (hi - lo)))
    x = _g6(scaled)
    d2 = np.sum((np.asarray(model["sv"]) - x) ** 2, axis=1)
    k = np.exp(-float(model["gamma"]) * d2)
    return float(np.dot(np.asarray(model["coef"]), k) - float(model["rho"]))


def brisque(img, name: str | None = None, model: dict | None = None) -> float:
    """BRISQUE of an HxWx3 (or HxW) uint8 image (MATLAB ``BRISQUE_release``); lower is better.

    ``model``: the arrays of the installed ``brisque`` asset (default)."""
    what = name or "img"
    x = as_uint8_scale(img, what, colour=False)
    check_min_size(x, (BRISQUE_MIN, BRISQUE_MIN), what, "BRISQUE", "the 7x7 window at half scale")
    if model is None:
        from srkeras.pretrained.metric_assets import load

        model = load("brisque")
    gray = matlab_gray(x, quantise=np.asarray(img).dtype == np.uint8)
    return brisque_score_features(brisque_features(gray), model)
