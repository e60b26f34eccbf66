"""Active sampling (issue 20): the criterion's pure functions against the ASAP reference code, and the
acceptance simulation (active needs at most half the answers of balanced sampling at equal accuracy).

Reference values: ``gfxdisp/asap`` ``python/asap_cpu.py`` (commit 90082a3), run on the win matrix
``M`` below: ``a = ASAP(5, approx=True); G = a.unroll_mat(M); Ms, Vs = a.ts_solver.solve(G, num_iters=200)``
(and ``num_iters=6``), and the expected information gain of its ``compute_information_gain_mat`` loop on those ``Ms, Vs``
(``prob[jj][ii] * kl1 + prob[ii][jj] * kl2``, ``selective_eig=False``).
"""

from __future__ import annotations

import numpy as np
import pytest

from srkeras.mos import active

M = np.array([[0, 5, 5, 5, 5], [0, 0, 4, 0, 5], [0, 1, 0, 3, 2], [0, 0, 2, 0, 4], [0, 0, 0, 1, 0]])
ASAP_MS = np.array([1.4198866563, 0.28094216, -0.2336749151, -0.3534902869, -1.1136636143])
ASAP_VS = np.array([0.1732410774, 0.135234585, 0.1097560611, 0.1242812526, 0.1494865862])
#: ``ASAP(5).ts_solver.solve(G, num_iters=6)`` (the reference's default schedule, from the prior).
ASAP_MS6 = np.array([1.413198906765, 0.269328061311, -0.240759649061, -0.365603142828, -1.120061803022])
ASAP_VS6 = np.array([0.172959441073, 0.135423663367, 0.109843970905, 0.124235573431, 0.149880552489])
ASAP_EIG = np.array([  # lower triangle, as the reference fills it
    [0, 0, 0, 0, 0],
    [2.0559123873, 0, 0, 0, 0],
    [2.030999327, 2.0643463902, 0, 0, 0],
    [2.0283789019, 2.0646314912, 2.0674847981, 0, 0],
    [2.0100163284, 2.0411523169, 2.0566269059, 2.0638958231, 0],
])


def unroll(W) -> np.ndarray:
    """The reference's ``unroll_mat``: one (winner, loser) row per win."""
    return np.array([(i, j) for i in range(len(W)) for j in range(len(W)) for _ in range(W[i][j])])


def test_posterior_and_information_gain_match_the_asap_reference():
    m6, v6 = active.thurstone_posterior(5, unroll(M), tol=0, iters=6)  # identical comparisons aggregated:
    np.testing.assert_allclose(m6, ASAP_MS6, atol=1e-11)  # still the reference's iterates, step by step
    np.testing.assert_allclose(v6, ASAP_VS6, atol=1e-11)
    m, v = active.thurstone_posterior(5, unroll(M), tol=1e-10, iters=500)
    np.testing.assert_allclose(m, ASAP_MS, atol=1e-6)
    np.testing.assert_allclose(v, ASAP_VS, atol=1e-7)
    E = active.information_gain(ASAP_MS, ASAP_VS)
    np.testing.assert_allclose(np.tril(E), ASAP_EIG, atol=1e-8)
    np.testing.assert_allclose(E, E.T)
    # the reference's selection (get_maximum): conditions 3 and 2, the closest well-matched pair
    assert active.next_pair(unroll(M), 5, criterion="eig") == (2, 3)
    # no answers: the prior, every pair equally informative
    m0, v0 = active.thurstone_posterior(4, [])
    assert np.all(m0 == 0) and np.allclose(v0, active.PRIOR_VAR)
    E0 = active.information_gain(m0, v0)
    assert np.allclose(E0[np.triu_indices(4, 1)], E0[0, 1])


def test_order_criterion_targets_close_uncertain_pairs():
    # hand check: U = (v_i + v_j) Phi(-|m_i - m_j| / sqrt(v_i + v_j)); equal means: 2 v / 2
    m, v = np.array([0.0, 0.1, 3.0]), np.array([0.2, 0.2, 0.2])
    U = active.order_uncertainty(m, v)
    assert U[0, 1] == pytest.approx(0.4 * 0.4371835, rel=1e-6)  # Phi(-0.1 / sqrt(0.4)) = Phi(-0.1581) = 0.43718
    assert U[0, 2] < 1e-5 and U[1, 2] < 1e-5
    assert active.order_uncertainty([0.0, 0.0], [0.3, 0.1])[0, 1] == pytest.approx(0.2)
    # a win matrix with a clear outsider: its pairs are never the next one, for either criterion
    W = np.array([[0, 3, 1, 9], [2, 0, 2, 9], [1, 2, 0, 9], [0, 0, 0, 0]])
    for crit in ("order", "eig"):
        i, j = active.next_pair(unroll(W), 4, criterion=crit)
        assert 3 not in (i, j), crit


def test_pending_comparisons_spread_simultaneous_raters():
    """Four raters reaching a pair trial at once (no answers yet): four different pairs."""
    rng = np.random.default_rng(0)
    pending: list[tuple[int, int]] = []
    for _ in range(4):
        pending.append(active.next_pair([], 6, pending=pending, rng=rng))
    assert len(set(pending)) == 4
    v = active.pending_update(np.zeros(3), np.full(3, 0.5), [(0, 1)])
    assert v[0] < 0.5 and v[1] < 0.5 and v[2] == 0.5
    allowed = np.zeros((3, 3), bool)
    allowed[1, 2] = True
    assert active.next_pair([], 3, allowed=allowed) == (1, 2)
    with pytest.raises(ValueError, match="no pair"):
        active.next_pair([], 3, allowed=np.zeros((3, 3), bool))


def test_mos_half_width_hand_values():
    # t_{0.975, 3} = 3.182446; sd 1, n 4: 3.182446 / 2
    assert active.mos_half_width(4, 1.0) == pytest.approx(1.591223, rel=1e-5)
    assert np.isinf(active.mos_half_width(1, 0.0))
    assert active.mos_half_width(5, 0.0) == 0.0
    # two further votes held: as if n were 6 (t_{0.975, 5} = 2.570582)
    assert active.adaptive_half_width(4, 1.0, held=2) == pytest.approx(2.570582 / np.sqrt(6), rel=1e-5)


#: Bradley-Terry log-strengths of the acceptance simulation: 8 methods, the anchors far out, four close
#: test methods 0.4 apart (P = 0.60 between neighbours); the benchmark's default.
STRENGTHS = [-4.0, -2.0, 0.0, 0.4, 0.8, 1.2, 2.0, 4.0]


def test_active_needs_at_most_half_the_answers_of_balanced():
    """8 methods on 6 images, simulated Bradley-Terry raters, 24 fixed seeds: the mean Kendall tau of
    active sampling after 100 answers is at least that of balanced sampling after 200 (measured: 0.973
    against 0.944; ``benchmarks/bench_active_sampling.py`` measures the whole curve with more seeds)."""
    seeds = range(24)
    act = np.mean([active.simulate_sampling(STRENGTHS, 6, [100], "active", seed=k, parallel=1)[0] for k in seeds])
    bal = np.mean([active.simulate_sampling(STRENGTHS, 6, [100, 200], "balanced", seed=k) for k in seeds], axis=0)
    assert bal[1] > bal[0] + 0.01  # balanced sampling does improve with twice the answers ...
    assert act >= bal[1] + 0.01, (act, bal)  # ... and active does better with half of them
    with pytest.raises(ValueError, match="sampling"):
        active.simulate_sampling(STRENGTHS, 6, [10], "random")
