"""Active sampling of MOS studies (pure numpy/scipy: no storage; :mod:`db.assignment` runs it).

Pair studies: ASAP (Mikhailiuk, Wilmot, Perez-Ortiz, Yue & Mantiuk, "Active sampling for pairwise
comparisons via approximate message passing and information gain maximization", ICPR 2020;
reference code github.com/gfxdisp/asap, ``python/asap_cpu.py``). Thurstone Case V scores get a Gaussian
posterior by expectation propagation on the TrueSkill factor graph (prior N(0, 0.5), unit comparison
noise: :func:`thurstone_posterior`, the reference ``TrueSkillSolver.solve`` iterated to its fixed
point; identical comparisons are updated once and counted, which gives the same iterates). The next
comparison is the pair of largest criterion (:func:`next_pair`): by default :func:`order_uncertainty`,
the posterior variance of the pair's score difference times the posterior probability that their
current order is wrong (what a ranking needs: in the simulation of ``benchmarks/bench_active_sampling.py``
it reaches balanced sampling's Kendall tau with half the answers or fewer); or ``eig``, ASAP's *expected
information gain* (:func:`information_gain`: the KL divergence between the posterior after and before
one more answer, averaged over the two outcomes, as the reference's ``approx=True`` mode computes it
with one TrueSkill update of the pair's marginals), which spreads answers over all scores.
Comparisons shown to raters but not answered yet (several raters at once, several servers) count by the
variance their answer is expected to remove (:func:`pending_update`), so simultaneous raters spread over
the informative pairs instead of all getting the same one (the role of ASAP's batch mode).

ACR studies (``adaptive``): further votes go to the stimuli whose MOS confidence interval is still
widest (:func:`mos_half_width`, Student t), until every half-width is at most the target.

:func:`simulate_sampling` replays a pair study of Bradley-Terry raters under balanced or active sampling
(the acceptance simulation of issue 20; ``benchmarks/bench_active_sampling.py``).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

PRIOR_VAR = 0.5  # prior variance of every score (reference: TrueSkillSolver.pv)
NOISE_VAR = 1.0  # variance of one comparison's noise on the score difference (reference: vgt = 1 + ...)
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _psi(x):
    """pdf(x) / cdf(x), computed in logs (finite far in the tails)."""
    return np.exp(-0.5 * np.square(x) - _LOG_SQRT_2PI - special.log_ndtr(x))


def _lambda(x):
    p = _psi(x)
    return p * (p + x)


def thurstone_posterior(n: int, comparisons, prior_var: float = PRIOR_VAR, iters: int = 200,
                        tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(means, variances) of the Gaussian EP posterior of ``n`` Thurstone Case V scores.

    ``comparisons``: (k, 2) integers, each row (winner, loser). Expectation propagation on the TrueSkill
    factor graph exactly as ``TrueSkillSolver.solve`` of the ASAP reference (performance noise 1 per
    comparison, prior N(0, ``prior_var``)), started from the prior and iterated to its fixed point.
    Ties carry no winner: leave them out.
    """
    G = np.asarray(comparisons, dtype=int).reshape(-1, 2)
    Ps, Ms = np.full(n, 1.0 / prior_var), np.zeros(n)
    if len(G) == 0:
        return Ms, 1.0 / Ps
    # Identical comparisons get identical messages in the reference's parallel schedule: each distinct
    # (winner, loser) row is updated once and counted ``count`` times (the same iterates, much faster).
    G, count = np.unique(G, axis=0, return_counts=True)
    Pgs, Mgs = np.zeros(G.shape), np.zeros(G.shape)
    flat, weight = G.ravel(), np.repeat(count, 2).astype(float)
    for _ in range(iters):
        PsG = Ps[G]
        Psg = PsG - Pgs  # cavity precisions of the two players of each game
        Msg = (PsG * Ms[G] - Pgs * Mgs) / Psg
        inv = 1.0 / Psg
        vgt = NOISE_VAR + inv[:, 0] + inv[:, 1]
        sq = np.sqrt(vgt)
        mgt = Msg[:, 0] - Msg[:, 1]
        z = mgt / sq
        ps = _psi(z)
        Mt = mgt + sq * ps
        Pt = 1.0 / (vgt * (1.0 - ps * (ps + z)))
        ptg = Pt - 1.0 / vgt
        mtg = (Mt * Pt - mgt / vgt) / ptg
        Pgs = 1.0 / (1.0 + (1.0 / ptg)[:, None] + inv[:, ::-1])
        Mgs = np.column_stack((mtg, -mtg)) + Msg[:, ::-1]
        new_Ps = 1.0 / prior_var + np.bincount(flat, weight * Pgs.ravel(), n)
        new_Ms = np.bincount(flat, weight * (Pgs * Mgs).ravel(), n) / new_Ps
        done = np.abs(new_Ms - Ms).max() < tol and np.abs(new_Ps - Ps).max() < tol * new_Ps.max()
        Ps, Ms = new_Ps, new_Ms
        if done:
            break
    return Ms, 1.0 / Ps


def _one_update(mi, mj, vi, vj):
    """TrueSkill update of a pair's marginals after "i beats j" (reference ``solve_approx``)."""
    c = np.sqrt(2.0 + vi + vj)
    t = (mi - mj) / c
    f1, f2 = _psi(t), _lambda(t)
    return mi + vi / c * f1, mj - vj / c * f1, vi * (1 - vi * f2 / c**2), vj * (1 - vj * f2 / c**2)


def _kl(m1, v1, m2, v2):
    """The reference's ``kl_divergence_approx`` of two independent Gaussians (2 KL + const.)."""
    return np.log(v2) - np.log(v1) + v1 / v2 + (m1 - m2) ** 2 / v2


def win_probability(means, variances) -> np.ndarray:
    """P[i, j] = P(i beats j) = Phi((m_i - m_j) / sqrt(1 + v_i + v_j)) under the posterior."""
    m, v = np.asarray(means, float), np.asarray(variances, float)
    P = special.ndtr((m[:, None] - m[None, :]) / np.sqrt(NOISE_VAR + v[:, None] + v[None, :]))
    np.fill_diagonal(P, 0.0)
    return P


def information_gain(means, variances) -> np.ndarray:
    """Expected information gain E[i, j] (symmetric, zero diagonal) of comparing i with j next.

    ASAP eq. (8) as the reference computes it with ``approx=True``: for each outcome, one TrueSkill update
    of the two scores' marginals, the KL divergence of the updated to the current marginals
    (``kl_divergence_approx``), weighted by the outcome's probability (:func:`win_probability`).
    """
    m, v = np.asarray(means, float), np.asarray(variances, float)
    mi, mj, vi, vj = m[:, None], m[None, :], v[:, None], v[None, :]
    a = _one_update(mi, mj, vi, vj)  # i wins
    b = _one_update(mj, mi, vj, vi)  # j wins: (m_j', m_i', v_j', v_i')
    kl_i = _kl(a[0], a[2], mi, vi) + _kl(a[1], a[3], mj, vj)
    kl_j = _kl(b[1], b[3], mi, vi) + _kl(b[0], b[2], mj, vj)
    P = win_probability(m, v)
    E = P * kl_i + P.T * kl_j
    np.fill_diagonal(E, 0.0)
    return E


def pending_update(means, variances, pending) -> np.ndarray:
    """Variances after the comparisons ``pending`` ((k, 2) pairs shown but not answered), each taken by
    the expected TrueSkill variance reduction over its two outcomes (means unchanged: unknown answers)."""
    v = np.array(variances, float)
    m = np.asarray(means, float)
    for i, j in np.asarray(pending, dtype=int).reshape(-1, 2):
        c2 = 2.0 + v[i] + v[j]
        t = (m[i] - m[j]) / np.sqrt(c2)
        p = special.ndtr((m[i] - m[j]) / np.sqrt(NOISE_VAR + v[i] + v[j]))
        lam = p * _lambda(t) + (1 - p) * _lambda(-t)
        v[i], v[j] = v[i] * (1 - v[i] * lam / c2), v[j] * (1 - v[j] * lam / c2)
    return v


def order_uncertainty(means, variances) -> np.ndarray:
    """U[i, j] = (v_i + v_j) * Phi(-|m_i - m_j| / sqrt(v_i + v_j)): the posterior variance of the score
    difference weighted by the posterior probability that the pair's current order is wrong.

    The default criterion: what a ranking (Kendall tau) needs is the order of the close pairs, which the
    information gain (:func:`information_gain`, uniform over all scores) spends fewer answers on; the
    variance factor lets two indistinguishable methods stop absorbing answers once they are well measured.
    """
    m, v = np.asarray(means, float), np.asarray(variances, float)
    vv = v[:, None] + v[None, :]
    U = vv * special.ndtr(-np.abs(m[:, None] - m[None, :]) / np.sqrt(vv))
    np.fill_diagonal(U, 0.0)
    return U


#: Pair criteria of :func:`next_pair`: ``order`` (default) and ``eig`` (ASAP's expected information gain).
CRITERIA = {"order": order_uncertainty, "eig": information_gain}


def next_pair(comparisons, n: int, pending=(), allowed=None, rng=None, criterion: str = "order") -> tuple[int, int]:
    """The pair (i, j), i < j, to compare next: the largest ``criterion`` (:data:`CRITERIA`) under the
    :func:`thurstone_posterior` of ``comparisons`` after :func:`pending_update` by ``pending``;
    ``allowed`` (n x n bools) restricts the candidates; exact ties at random (``rng``) or the first."""
    mean, var = thurstone_posterior(n, comparisons)
    var = pending_update(mean, var, pending)
    E = np.triu(CRITERIA[criterion](mean, var), 1)
    ok = np.triu(np.ones((n, n), bool), 1) if allowed is None else np.triu(np.asarray(allowed, bool), 1)
    if not ok.any():
        raise ValueError("no pair is allowed")
    E = np.where(ok, E, -np.inf)
    best = np.argwhere(E >= E.max() - 1e-12 * max(1.0, abs(E.max())))
    i, j = best[0] if rng is None or len(best) == 1 else best[rng.integers(len(best))]
    return int(i), int(j)


def mos_half_width(n, sd, confidence: float = 0.95):
    """Half-width t_{(1+c)/2, n-1} * sd / sqrt(n) of a MOS interval (inf with fewer than 2 votes)."""
    n = np.asarray(n, float)
    sd = np.asarray(sd, float)
    ok = n >= 2
    t = stats.t.ppf(0.5 + confidence / 2, np.where(ok, n - 1, 1))
    return np.where(ok, t * sd / np.sqrt(np.maximum(n, 1)), np.inf)


def adaptive_half_width(n, sd, held=0, confidence: float = 0.95):
    """The half-width expected once ``held`` further votes (assigned, not answered) arrive, the standard
    deviation staying ``sd``: what ranks the ACR stimuli for further votes (widest first)."""
    n, held = np.asarray(n, float), np.asarray(held, float)
    now = mos_half_width(n, sd, confidence)
    return np.where(np.isfinite(now), mos_half_width(n + held, sd, confidence), np.where(n + held >= 2, 1e6, np.inf))


def kendall_tau(estimate, truth) -> float:
    """Kendall tau-b between estimated and true scores (1: the same order)."""
    return float(stats.kendalltau(estimate, truth).statistic)


def latin_pair_order(n_methods: int, n_images: int, rng) -> list[tuple[int, int, int]]:
    """(method i, method j, image) in the cyclic Latin order that balanced assignment walks round
    (:mod:`db.assignment`: round r, slot k = method pair k on image (r + k) mod S, methods and images
    shuffled once)."""
    methods, images = rng.permutation(n_methods), rng.permutation(n_images)
    slots = [tuple(sorted((int(methods[a]), int(methods[b])))) for a in range(n_methods) for b in range(a + 1, n_methods)]
    return [(i, j, int(images[(r + k) % n_images])) for r in range(n_images) for k, (i, j) in enumerate(slots)]


def bt_estimate(n: int, comparisons) -> np.ndarray:
    """Pooled Bradley-Terry log-strengths of (winner, loser) rows, as the report fits them
    (:func:`srkeras.mos.pairs.bradley_terry`; 0.5 pseudo-wins when the win graph is not strongly connected)."""
    from srkeras.mos.pairs import bradley_terry, connected_both_ways

    W = np.zeros((n, n))
    np.add.at(W, tuple(np.asarray(comparisons, dtype=int).reshape(-1, 2).T), 1.0)
    return bradley_terry(W, prior=0.0 if connected_both_ways(W) else 0.5, tol=1e-8)


def simulate_sampling(strength, n_images: int, checkpoints, sampling: str = "active", seed: int = 0,
                      parallel: int = 4, criterion: str = "order") -> list[float]:
    """Kendall tau between the true order of ``strength`` (Bradley-Terry log-strengths of the methods)
    and the pooled BT fit after each number of answers in ``checkpoints``, for one simulated study.

    Raters answer P(i beats j) = 1 / (1 + exp(s_j - s_i)). ``balanced``: the items in cyclic Latin
    order (:func:`latin_pair_order`), as balanced assignment hands them out. ``active``: ``parallel``
    raters at a time each get :func:`next_pair` (``criterion``) with the others' open comparisons as pending (the
    choice is as stale as in a study with that many raters rating at once); images are left out of the
    choice (scores are pooled) and only label the items.
    """
    rng = np.random.default_rng(seed)
    s = np.asarray(strength, float)
    n, total = len(s), max(checkpoints)
    order = latin_pair_order(n, n_images, rng) if sampling == "balanced" else None
    if sampling not in ("balanced", "active"):
        raise ValueError(f"sampling must be 'balanced' or 'active', got {sampling!r}")
    answers: list[tuple[int, int]] = []
    taus = []
    while len(answers) < total:
        if order is not None:
            batch = [order[len(answers) % len(order)][:2]]
        else:
            batch = []
            for _ in range(min(parallel, total - len(answers))):
                batch.append(next_pair(answers, n, pending=batch, rng=rng, criterion=criterion))
        for i, j in batch:
            win = rng.random() < 1.0 / (1.0 + np.exp(s[j] - s[i]))
            answers.append((i, j) if win else (j, i))
            if len(answers) in checkpoints:
                taus.append(kendall_tau(bt_estimate(n, answers), s))
    return taus
