"""srkeras.mos against Netflix sureal (the reference of issue 12) on public raw scores.

Data: ``NFLX_dataset_public_raw_last4outliers`` from github.com/Netflix/sureal (resource/dataset,
Apache-2.0): 79 processed videos of 9 contents, rated 1..5 by 26 subjects plus 4 synthetic outlier
subjects (columns 27-30). One line per video: ``content_id:`` then one digit per subject.
"""

from __future__ import annotations

import contextlib
import io
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from srkeras.mos import scores, screening, subject_models

sureal_model = pytest.importorskip("sureal.subjective_model")
sureal_reader = pytest.importorskip("sureal.dataset_reader")

NFLX = """
0:111211111312211121121111124252
0:212331222323421221223112324211
0:222322222433352224222221335514
0:334443333534432233333232434332
0:435444444544543343343342455451
0:535555555555544545535445553544
0:545555455555554545544453442553
0:543555455555554555555443554545
0:554555555555555555555454555255
0:555553555545555555455554555252
0:545555355555555555555555554324
1:213322231332351122221211322343
1:113321221322423122132211225454
1:224313233423433122233322344452
1:224332333533423233232322424523
1:334444433534444343343343434125
1:445545444554455553445544544445
1:555555554555555455555555541554
1:455555554555455555554555554554
1:455555554545555555555555553515
2:111111111111111111111111115245
2:222221231313122222221221324345
2:233533131434343332122332335542
2:334343343444433332234342435423
2:335545354544444543244434534324
2:555543554545454544434444542311
2:554454454544445554555454545342
2:555555453445555554455545555551
3:111111311222111111111111112214
3:112231111233322111112111124233
3:334544342443432332332322433355
3:234444343444434333334333444533
3:445554444555435543434343544514
3:445455544554555554545445552334
3:555555454545554555445544554353
3:455555544545554555555554543345
4:113121111421111111111111215523
4:123242322534432332323221234454
4:212354234434432432224222345323
4:335251144434433244224332445445
4:434254344534423452435432542544
4:523354455544555443344342545522
4:444555245555545455444344554445
4:555455455545435555545544554514
4:554455455545555555445555551443
4:555555555555555554455545553342
5:123212321422312322212211223145
5:325243324444533423333233333414
5:434434344433433333333323433335
5:444444444544534544434434455553
5:555545555555545544355445541154
5:555555355555545555555555554545
5:455555355555555555555555555245
6:111121111211111111111111215352
6:123221421312212121122122325134
6:323432331433223222213222324125
6:332344543523432222333332435435
6:545344553545535544344444544444
6:453555554545543544445445532433
6:554455455545545554555555552345
6:354544544545553554355545553341
7:111111111211111111111111115541
7:224132231223432221112221225451
7:223241342434333322232231332324
7:333435343533343342243322342553
7:443353333544535333344343544532
7:444442354534444343244343545545
7:454535455535445453443534454555
7:353455444545555553455544552252
7:555551353544545454354445555543
7:555555444545434554455545555425
7:555555455535555554554454554345
8:212211131311211122221211315343
8:122232533433433222232222232313
8:324433243444443224243233535355
8:335334341434533433332334434224
8:355355552554534454354344555455
8:554355454554535455555454545552
8:554554553555555554455545553343
"""


def _dataset():
    rows = [ln.split(":") for ln in NFLX.split()]
    ds = types.SimpleNamespace(dataset_name="NFLX_public_last4outliers", ref_score=5.0, yuv_fmt="yuv420p",
                               width=1920, height=1080)
    ds.ref_videos = [{"content_id": c, "content_name": f"c{c}", "path": f"c{c}.yuv"} for c in range(9)]
    ds.dis_videos = [{"asset_id": k, "content_id": int(c), "os": [float(x) for x in s], "path": f"d{k}.yuv"}
                     for k, (c, s) in enumerate(rows)]
    votes = [(f"s{j:02d}", f"v{k:02d}", f"c{int(c)}", float(x)) for k, (c, s) in enumerate(rows) for j, x in enumerate(s)]
    acr = pd.DataFrame(votes, columns=["rater", "method", "image", "score"]).assign(repeat=False)
    return ds, acr


@pytest.fixture(scope="module")
def nflx():
    ds, acr = _dataset()
    return sureal_reader.RawDatasetReader(ds), acr


def _by_video(df, col):
    return df.sort_values("method")[col].to_numpy()


def test_mos_and_std_match_sureal(nflx):
    reader, acr = nflx
    ref = sureal_model.MosModel(reader).run_modeling()
    st = scores.stimulus_scores(acr)
    np.testing.assert_allclose(_by_video(st, "mos"), ref["quality_scores"], atol=1e-12)
    np.testing.assert_allclose(_by_video(st, "std"), ref["quality_ambiguity"], atol=1e-12)


def test_zscore_mos_matches_sureal(nflx):
    reader, acr = nflx
    ref = sureal_model.ZscoringMosModel(reader).run_modeling()
    np.testing.assert_allclose(_by_video(scores.zscore_mos(acr), "zmos"), ref["quality_scores"], atol=1e-12)


def test_p913_bias_matches_sureal(nflx):
    reader, acr = nflx
    ref = sureal_model.BiasremvMosModel(reader).run_modeling()
    bias, corrected = subject_models.p913_bias(acr)
    np.testing.assert_allclose(bias.sort_index().to_numpy(), ref["observer_bias"], atol=1e-12)
    np.testing.assert_allclose(_by_video(scores.stimulus_scores(corrected), "mos"), ref["quality_scores"], atol=1e-12)


def test_bt500_screening_matches_sureal(nflx):
    reader, acr = nflx
    with np.errstate(all="ignore"):
        ref = sureal_model.SubjrejMosModel(reader).run_modeling()
    ours = screening.bt500(acr, ddof=0).sort_values("rater")  # sureal uses the population sd
    assert list(ours["bt500_reject"]) == list(ref["observer_rejected"])
    np.testing.assert_allclose(ours["bt500_ratio"], ref["observer_rejected_1st_stats"], atol=1e-12)
    assert list(np.flatnonzero(ours["bt500_reject"])) == [26, 28, 29]  # three of the four planted outliers
    # the Recommendation's sample sd (our default) is stricter about the band and keeps subject 28
    assert list(np.flatnonzero(screening.bt500(acr)["bt500_reject"])) == [26, 29]


def test_mle_quality_and_bias_match_sureal(nflx):
    reader, acr = nflx
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        ref = sureal_model.MaximumLikelihoodEstimationModel(reader).run_modeling()
    fit = subject_models.mle(acr)
    st = fit["stimuli"].sort_values("method")
    assert np.max(np.abs(st["mle"] - ref["quality_scores"])) < 0.01
    assert np.max(np.abs(fit["raters"]["mle_bias"] - ref["observer_bias"])) < 0.01
    np.testing.assert_allclose(st["mle_std"], ref["quality_scores_std"], atol=2e-3)
    np.testing.assert_allclose(fit["raters"]["mle_bias_std"], ref["observer_bias_std"], atol=3e-3)
    # sureal's damped updates clamp three subjects' inconsistency at 0; our optimum is at least as likely
    assert fit["loglik"] >= ref["loglikelihood"] - 1e-9
    # our CIs are Student t on the same standard errors (sureal: normal, 1.96)
    n = acr.groupby(["method", "image"]).size().sort_index().to_numpy()
    half = (st["mle_ci95_high"] - st["mle"]).to_numpy()
    np.testing.assert_allclose(half, stats.t.ppf(0.975, n - 1) * st["mle_std"].to_numpy(), rtol=1e-12)
