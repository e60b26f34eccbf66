"""Synthetic studies with a known truth (tests, benchmarks, demos) and the SRGAN Table 2 values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from srkeras.mos.vocabulary import MethodRole, PairChoice

#: Ledig et al. 2017 (SRGAN), Table 2, 4x: (PSNR dB, SSIM, MOS) per method; HR PSNR is infinite.
SRGAN_TABLE2 = {
    "Set5": {"nearest": (26.26, 0.7552, 1.28), "bicubic": (28.43, 0.8211, 1.97), "SRCNN": (30.07, 0.8627, 2.57),
             "SelfExSR": (30.33, 0.8720, 2.65), "DRCN": (31.52, 0.8938, 3.26), "ESPCN": (30.76, 0.8784, 2.89),
             "SRResNet": (32.05, 0.9019, 3.37), "SRGAN": (29.40, 0.8472, 3.58), "HR": (np.inf, 1.0, 4.32)},
    "Set14": {"nearest": (24.64, 0.7100, 1.20), "bicubic": (25.99, 0.7486, 1.80), "SRCNN": (27.18, 0.7861, 2.26),
              "SelfExSR": (27.45, 0.7972, 2.34), "DRCN": (28.02, 0.8074, 2.84), "ESPCN": (27.66, 0.8004, 2.52),
              "SRResNet": (28.49, 0.8184, 2.98), "SRGAN": (26.02, 0.7397, 3.72), "HR": (np.inf, 1.0, 4.32)},
    "BSD100": {"nearest": (25.02, 0.6606, 1.11), "bicubic": (25.94, 0.6935, 1.47), "SRCNN": (26.68, 0.7291, 1.87),
               "SelfExSR": (26.84, 0.7332, 1.89), "DRCN": (27.21, 0.7493, 2.12), "ESPCN": (27.02, 0.7442, 2.01),
               "SRResNet": (27.58, 0.7620, 2.29), "SRGAN": (25.16, 0.6688, 3.56), "HR": (np.inf, 1.0, 4.46)},
}
ROLES = {"nearest": MethodRole.LOW_ANCHOR.value, "HR": MethodRole.HIGH_ANCHOR.value}


def _expected_score(loc, sd):
    """E[score] of clip(round(N(loc, sd^2)), 1, 5): the mean of a discretised normal on 1..5."""
    edges = np.array([-np.inf, 1.5, 2.5, 3.5, 4.5, np.inf])
    p = np.diff(stats.norm.cdf((edges[None, :] - np.asarray(loc)[..., None]) / sd), axis=-1)
    return (p * np.arange(1, 6)).sum(-1)


def simulate_acr(quality: pd.DataFrame, n_raters: int = 20, bias_sd: float = 0.3, noise_sd: float = 0.7,
                 n_random: int = 0, seed: int = 0, roles: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every rater votes on every stimulus of ``quality`` (method, image, quality: latent 1..5 scale).

    Vote = clip(round(quality + b_r + e), 1, 5), b_r ~ N(0, bias_sd^2), e ~ N(0, noise_sd^2); the last
    ``n_random`` raters answer uniformly at random. ``trial`` is each rater's own random presentation
    order, as the rater app shows a list. Returns (votes, raters with their planted bias).
    """
    rng = np.random.default_rng(seed)
    names = [f"r{k:03d}" for k in range(n_raters)]
    bias = rng.normal(0, bias_sd, n_raters)
    q = quality["quality"].to_numpy(float)
    X = q[None, :] + bias[:, None] + rng.normal(0, noise_sd, (n_raters, len(q)))
    X = np.clip(np.rint(X), 1, 5)
    if n_random:
        X[-n_random:] = rng.integers(1, 6, (n_random, len(q)))
    acr = pd.DataFrame({"rater": np.repeat(names, len(q)), "method": np.tile(quality["method"], n_raters),
                        "image": np.tile(quality["image"], n_raters), "score": X.ravel()})
    acr["role"] = acr["method"].map(roles or {}).fillna(MethodRole.TEST.value)
    acr["repeat"] = False
    acr["response_ms"] = np.nan
    positions = np.tile(np.arange(len(q), dtype=float), (n_raters, 1))
    acr["trial"] = rng.permuted(positions, axis=1).ravel()  # drawn last: the votes do not depend on it
    planted = pd.DataFrame({"rater": names, "bias": bias, "random": np.arange(n_raters) >= n_raters - n_random})
    return acr, planted


def srgan_study(dataset: str = "BSD100", n_images: int = 30, n_raters: int = 26, bias_sd: float = 0.25,
                noise_sd: float = 0.6, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulated raters whose expected method MOS equals SRGAN Table 2; metrics = the Table's PSNR/SSIM.

    Per-image quality varies around the method's latent location (sd 0.3) so images differ.
    """
    rng = np.random.default_rng(seed)
    table = SRGAN_TABLE2[dataset]
    bias = rng.normal(0, bias_sd, n_raters)
    img_eff = rng.normal(0, 0.3, n_images)
    rows, mets = [], []
    for m, (psnr, ssim, mos) in table.items():
        loc = optimize.brentq(
            lambda c, mos=mos: _expected_score(c + img_eff[:, None] + bias[None, :], noise_sd).mean() - mos, -10, 16)
        for i in range(n_images):
            rows.append((m, f"{dataset}_{i:03d}", loc + img_eff[i]))
            mets.append((m, f"{dataset}_{i:03d}", psnr, ssim))
    quality = pd.DataFrame(rows, columns=["method", "image", "quality"])
    acr, _ = simulate_acr(quality, n_raters=n_raters, bias_sd=0.0, noise_sd=noise_sd, seed=seed + 1, roles=ROLES)
    acr["score"] = np.clip(np.rint(quality["quality"].to_numpy()[None, :] + bias[:, None]
                                   + rng.normal(0, noise_sd, (n_raters, len(quality)))), 1, 5).ravel()
    return acr, pd.DataFrame(mets, columns=["method", "image", "psnr", "ssim"])


def simulate_pairs(strength: dict, n_raters: int = 20, images: int = 10, seed: int = 0,
                   tie_prob: float = 0.0, n_random: int = 0) -> pd.DataFrame:
    """Every rater compares every method pair on every image under Bradley-Terry ``strength`` (log scale).

    The last ``n_random`` raters then answer a or b with probability 1/2 each (drawn from a second
    generator, so the other raters' answers are those of ``n_random=0``).
    """
    rng = np.random.default_rng(seed)
    ms = list(strength)
    rows = []
    for r in range(n_raters):
        for i in range(images):
            for x in range(len(ms)):
                for y in range(x + 1, len(ms)):
                    a, b = (ms[x], ms[y]) if rng.random() < 0.5 else (ms[y], ms[x])
                    pa = 1 / (1 + np.exp(strength[b] - strength[a]))
                    u = rng.random()
                    c = PairChoice.NONE if u < tie_prob else (PairChoice.A if rng.random() < pa else PairChoice.B)
                    rows.append((f"r{r:03d}", f"img{i:02d}", a, b, c.frame))
    p = pd.DataFrame(rows, columns=["rater", "image", "method_a", "method_b", "choice"])
    p["role_a"] = p["role_b"] = MethodRole.TEST.value
    p["repeat"] = False
    p["response_ms"] = np.nan
    p["trial"] = np.arange(len(p), dtype=float)
    if n_random:
        rnd = p["rater"].isin([f"r{r:03d}" for r in range(n_raters - n_random, n_raters)])
        coin = np.random.default_rng([seed, 1]).random(int(rnd.sum())) < 0.5
        p.loc[rnd, "choice"] = np.where(coin, PairChoice.A.frame, PairChoice.B.frame)
    return p
