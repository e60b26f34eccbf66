"""The sample-size planner (issue 20, scope 5): simulated power against closed forms (paired t with known
variances: G*Power's n = 34 for effect size 0.5; the exact binomial test by hand), the Wilcoxon floor
(4 images can never be enough), and ``pipelines.report --plan`` writing its table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from pipelines import report as cli
from srkeras.mos import planner, simulate

#: Continuous normal model with per-image difference sd exactly 1 whatever the raters: s^2 = 2 eta^2.
UNIT = {"mean_vote": 3.0, "bias_sd": 0.3, "inconsistency": [0.0], "ambiguity_rms": 0.0,
        "interaction_sd": 1 / np.sqrt(2), "image_sd": 0.2}


def test_analytic_paired_t_power_is_gpower_value():
    # G*Power 3, t test one sample / matched pairs, d = 0.5, alpha 0.05 two-tailed: n = 34, power 0.8078
    assert planner.analytic_t_power(UNIT, 0.5, raters=5, images=34) == pytest.approx(0.8078, abs=5e-4)
    assert planner.analytic_t_power(UNIT, 0.5, raters=5, images=33) < 0.8


@pytest.mark.parametrize("raters,images", [(4, 34), (10, 12)])
def test_simulated_t_power_matches_the_closed_form(raters, images):
    model = {**UNIT, "inconsistency": [0.4, 0.6, 0.8], "ambiguity_rms": 0.3, "interaction_sd": 0.25}
    sim = planner.simulate_power(model, 0.3, raters, images, n_sim=3000, test="t", discrete=False)
    exact = planner.analytic_t_power(model, 0.3, raters, images)
    assert abs(sim - exact) < 3.5 * np.sqrt(exact * (1 - exact) / 3000) + 1e-3, (sim, exact)


def test_exact_sign_test_power_by_hand_and_by_simulation():
    # n = 10: the two-sided exact test rejects at k <= 1 or k >= 9 (P(k >= 9) = 11/1024 per side)
    p = 0.8
    hand = 10 * p**9 * (1 - p) + p**10 + (1 - p) ** 10 + 10 * p * (1 - p) ** 9
    assert planner.exact_sign_power(10, np.log(4)) == pytest.approx(hand, rel=1e-9)
    plan = planner.plan_pairs(None, delta=0.5, n_sim=4000, comparisons=(30, 100))
    for row in plan["table"]:
        exact = planner.exact_sign_power(row["comparisons_per_pair"], 0.5)
        assert abs(row["power"] - exact) < 3.5 * np.sqrt(exact * (1 - exact) / 4000)


def test_signed_rank_p_is_scipys():
    rng = np.random.default_rng(0)
    for n in (4, 7, 12):
        d = rng.normal(0.3, 1, n)
        assert planner.signed_rank_p(d) == pytest.approx(stats.wilcoxon(d).pvalue)
        t = np.round(d * 2) / 2
        assert planner.signed_rank_p(t) == pytest.approx(stats.wilcoxon(t, method="approx").pvalue)
    assert planner.signed_rank_p(np.zeros(5)) == 1.0
    z = np.array([0, 0.3, -1.2, 0.8, 1.5, 2.1, 0.4, 0, 0.9])  # zeros dropped, then exact
    assert planner.signed_rank_p(z) == pytest.approx(stats.wilcoxon(z).pvalue) == pytest.approx(0.15625)
    assert all(planner.sign_test_p(k, 13) == pytest.approx(stats.binomtest(k, 13).pvalue) for k in range(14))


def test_plan_cli_on_a_pilot(tmp_path):
    acr, _ = simulate.srgan_study(n_images=8, n_raters=10, seed=0)
    acr[["rater", "method", "image", "score"]].to_csv(tmp_path / "pilot.csv", index=False)
    rc = cli.main(["--ratings-csv", str(tmp_path / "pilot.csv"), "--out", str(tmp_path / "plan"), "--plan",
                   "--plan-difference", "0.3", "--plan-sims", "100", "--quiet"])
    assert rc == 0 and not (tmp_path / "plan" / "report.html").exists()
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())["acr"]
    assert "Wilcoxon signed-rank" in plan["test"] and plan["difference"] == 0.3 and plan["model"]["pilot_raters"] == 10
    needed = {x["images"]: x["raters"] for x in plan["needed"]}
    assert needed[4] is None  # 2/2^4 = 0.125 > 0.05: no number of raters is enough with 4 images
    known = [needed[i] for i in sorted(needed) if needed[i] is not None]
    assert known and known == sorted(known, reverse=True)  # more images, fewer raters
    csv = (tmp_path / "plan" / "plan.csv").read_text()
    assert csv.startswith("design,raters,images,votes_per_stimulus,power")
