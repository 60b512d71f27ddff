"""Results over seeds: means with t-intervals, paired differences and their verdicts."""

import json

import pytest
from scipy import stats

from synthloom.evaluate import BEATS, NO_DIFFERENCE, WORSE, mean_interval, paired_difference, summarize, write_per_seed
from synthloom.evaluate.seeds import markdown_table


def test_mean_interval_matches_scipy_t_interval():
    values = [0.80, 0.84, 0.79, 0.88, 0.83]
    got = mean_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 5, scale=stats.sem(values))
    assert got.n == 5
    assert got.mean == pytest.approx(0.828)
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))


def test_paired_difference_sees_a_consistent_small_win_that_unpaired_intervals_hide():
    # The support draw moves both arms a lot; the arm is always 0.01-0.02 better.
    per_seed = {s: {"support": base, "support+synthetic": base + d}
                for s, (base, d) in enumerate([(0.70, 0.01), (0.90, 0.02), (0.80, 0.015), (0.75, 0.01), (0.85, 0.02)])}
    rows = summarize(per_seed, baseline="support")
    support, arm = rows[0]["score"], rows[1]["score"]
    assert arm.low < support.high  # unpaired intervals overlap...
    diff = rows[1]["vs_baseline"]
    assert diff.verdict == BEATS  # ...the paired difference does not cross 0
    assert diff.difference.mean == pytest.approx(0.015)
    assert diff.per_seed == pytest.approx((0.01, 0.02, 0.015, 0.01, 0.02))


def test_verdicts_need_the_whole_interval_on_one_side_and_two_seeds():
    mixed = {0: {"a": 0.8, "b": 0.82}, 1: {"a": 0.8, "b": 0.78}, 2: {"a": 0.8, "b": 0.81}}
    assert paired_difference(mixed, "b", "a").verdict == NO_DIFFERENCE
    worse = {s: {"a": 0.8, "b": 0.7 + s / 100} for s in range(5)}
    assert paired_difference(worse, "b", "a").verdict == WORSE
    one_seed = {0: {"a": 0.5, "b": 0.9}}
    assert paired_difference(one_seed, "b", "a").verdict == NO_DIFFERENCE
    with pytest.raises(ValueError, match="no seed scored both"):
        paired_difference({0: {"a": 1.0}}, "b", "a")


def test_per_seed_file_lets_a_reader_recompute_the_table(tmp_path):
    per_seed = {s: {"support": 0.7 + s / 50, "support+synthetic": 0.75 + s / 40} for s in range(5)}
    path = write_per_seed(tmp_path / "seeds" / "x.json", per_seed, metric="macro_f1", baseline="support",
                          settings={"dataset": "sms_spam"})
    payload = json.loads(path.read_text())
    assert payload["per_seed"]["3"] == per_seed[3]
    recomputed = paired_difference({int(k): v for k, v in payload["per_seed"].items()}, "support+synthetic", "support")
    assert payload["summary"][1]["vs_baseline"]["difference"]["mean"] == pytest.approx(recomputed.difference.mean)
    assert payload["summary"][1]["vs_baseline"]["verdict"] == recomputed.verdict
    table = markdown_table(summarize(per_seed, baseline="support"))
    assert "| support | 5 |" in table and recomputed.verdict in table


def test_where_lower_is_better_an_interval_below_zero_is_the_win(tmp_path):
    residual = {s: {"cleanlab": 0.05 + s / 1000, "cross-partition": 0.02 + s / 1000} for s in range(5)}
    assert paired_difference(residual, "cross-partition", "cleanlab", higher_is_better=False).verdict == BEATS
    assert paired_difference(residual, "cleanlab", "cross-partition", higher_is_better=False).verdict == WORSE
    payload = json.loads(write_per_seed(tmp_path / "r.json", residual, metric="residual", baseline="cleanlab",
                                        higher_is_better=False).read_text())
    assert payload["higher_is_better"] is False and payload["summary"][1]["vs_baseline"]["verdict"] == BEATS
