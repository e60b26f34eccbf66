"""Paired comparisons: win matrix, Bradley-Terry scores (ties as half wins) and Thurstone Case V.

Bradley & Terry (1952): P(i beats j) = p_i / (p_i + p_j). Fitted with Hunter's (2004) MM iteration
p_i <- W_i / sum_j n_ij / (p_i + p_j); scores are reported as log-strengths with zero mean, with
normal CIs from the Fisher information of the log-strengths (Hessian pseudo-inverse, sum-zero gauge).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from srkeras.mos.vocabulary import A_SHARE, PairChoice


def win_matrix(pairs: pd.DataFrame, methods=None) -> pd.DataFrame:
    """W[i, j] = wins of method i over method j, a tie counting half a win to each (repeats excluded)."""
    p = pairs[~pairs["repeat"]] if "repeat" in pairs.columns else pairs
    methods = sorted(set(p["method_a"]) | set(p["method_b"])) if methods is None else list(methods)
    idx = {m: k for k, m in enumerate(methods)}
    W = np.zeros((len(methods), len(methods)))
    wa = p["choice"].map(A_SHARE).to_numpy()
    ia, ib = p["method_a"].map(idx).to_numpy(), p["method_b"].map(idx).to_numpy()
    np.add.at(W, (ia, ib), wa)
    np.add.at(W, (ib, ia), 1.0 - wa)
    return pd.DataFrame(W, index=methods, columns=methods)


def bradley_terry(W, prior: float = 0.0, tol: float = 1e-10, max_iter: int = 100000) -> np.ndarray:
    """Log-strengths (zero mean) maximising the BT likelihood of win matrix ``W`` (MM algorithm).

    ``prior`` adds that many pseudo-wins each way to every compared pair (needed when a method never
    wins or never loses, where the MLE is infinite).
    """
    W = np.asarray(W, float)
    N = W + W.T
    W = W + prior * (N > 0)
    N = W + W.T
    wins = W.sum(1)
    p = np.ones(len(W))
    for _ in range(max_iter):
        den = (N / (p[:, None] + p[None, :])).sum(1)
        new = np.where(den > 0, wins / np.where(den > 0, den, 1), p)
        new = new / np.exp(np.mean(np.log(np.maximum(new, 1e-300))))
        if np.max(np.abs(np.log(np.maximum(new, 1e-300)) - np.log(np.maximum(p, 1e-300)))) < tol:
            p = new
            break
        p = new
    s = np.log(np.maximum(p, 1e-300))
    return s - s.mean()


def bt_covariance(W, s) -> np.ndarray:
    """Covariance of the log-strengths: pseudo-inverse of the Fisher information (sum-zero gauge)."""
    W = np.asarray(W, float)
    N = W + W.T
    P = 1 / (1 + np.exp(-(s[:, None] - s[None, :])))
    Inf = N * P * (1 - P)
    H = np.diag(Inf.sum(1)) - Inf
    return np.linalg.pinv(H)


def connected_both_ways(W) -> bool:
    """True when every method beats and is beaten by some chain (strong connectivity: finite BT MLE)."""
    A = np.asarray(W) > 0
    n = len(A)
    reach = A | np.eye(n, dtype=bool)
    for _ in range(n):
        reach = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
    return bool(reach.all())


def bt_scores(pairs: pd.DataFrame, confidence: float = 0.95, prior: float | None = None) -> pd.DataFrame:
    """Per method: ``method, bt, bt_se, ci95_low, ci95_high, wins, comparisons, win_rate``.

    ``prior`` None: 0 when the win graph is strongly connected, else 0.5 pseudo-wins (finite scores).
    """
    Wdf = win_matrix(pairs)
    W = Wdf.to_numpy()
    if prior is None:
        prior = 0.0 if connected_both_ways(W) else 0.5
    s = bradley_terry(W, prior=prior)
    Wp = W + prior * ((W + W.T) > 0)
    se = np.sqrt(np.maximum(np.diag(bt_covariance(Wp, s)), 0))
    z = stats.norm.ppf(0.5 + confidence / 2)
    n = (W + W.T).sum(1)
    return pd.DataFrame({"method": Wdf.index, "bt": s, "bt_se": se, "ci95_low": s - z * se, "ci95_high": s + z * se,
                         "wins": W.sum(1), "comparisons": n, "win_rate": W.sum(1) / np.maximum(n, 1)})


def thurstone_case_v(W, clip: float = 0.01) -> np.ndarray:
    """Thurstone (1927) Case V scale values: row means of z = Phi^-1(P_ij), P clipped to [clip, 1-clip]."""
    W = np.asarray(W, float)
    N = W + W.T
    P = np.where(N > 0, W / np.where(N > 0, N, 1), 0.5)
    Z = stats.norm.ppf(np.clip(P, clip, 1 - clip))
    np.fill_diagonal(Z, 0.0)
    cnt = (N > 0).sum(1)
    s = Z.sum(1) / np.maximum(cnt, 1)
    return s - s.mean()


PREFERENCE_TABLE = ["method_a", "method_b", "a_wins", "b_wins", "no_preference", "n", "a_preference", "ci95"]


def preference_table(pairs: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Per compared method pair (``method_a`` before ``method_b`` in ``methods`` order): vote counts.

    ``a_preference`` = (a_wins + no_preference / 2) / n (ties split, as in :func:`win_matrix`), ``ci95``
    its normal-approximation half width 1.96 sqrt(p (1 - p) / n). Repeats left out.
    """
    p = pairs.loc[~pairs["repeat"].astype(bool)] if "repeat" in pairs.columns else pairs
    seen = set(p["method_a"]) | set(p["method_b"])
    order = [m for m in (methods if methods is not None else sorted(seen)) if m in seen]
    order += sorted(seen - set(order))
    rank = {m: k for k, m in enumerate(order)}
    tally: dict[tuple[str, str], list[int]] = {}
    for ma, mb, ch in zip(p["method_a"], p["method_b"], p["choice"]):
        a, b = sorted((ma, mb), key=rank.__getitem__)
        t = tally.setdefault((a, b), [0, 0, 0])
        if ch == PairChoice.NONE.frame:
            t[2] += 1
        else:
            t[0 if (ma if ch == PairChoice.A.frame else mb) == a else 1] += 1
    rows = []
    for (a, b), (wa, wb, ties) in sorted(tally.items(), key=lambda kv: (rank[kv[0][0]], rank[kv[0][1]])):
        n = wa + wb + ties
        share = (wa + ties / 2) / n
        rows.append((a, b, wa, wb, ties, n, share, 1.96 * np.sqrt(share * (1 - share) / n)))
    return pd.DataFrame(rows, columns=PREFERENCE_TABLE)
