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


def _benchmark(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_jobs_of_the_label_noise_benchmark_add_up_in_one_raw_file(tmp_path):
    label_noise = _benchmark("label_noise")
    raw = tmp_path / "seeds" / "label_noise-x-raw.json"
    label_noise._add_draw(raw, "x", "20pct", 0, {"cleanlab": {"f1": 0.5}})
    label_noise._add_draw(raw, "x", "20pct", 3, {"cleanlab": {"f1": 0.7}})  # another job, other seeds
    label_noise._add_draw(raw, "x", "10pct", 0, {"cleanlab": {"f1": 0.6}})
    label_noise._add_draw(raw, "x", "20pct", 0, {"cleanlab": {"f1": 0.55}})  # a seed measured again replaces its draw
    draws = json.loads(raw.read_text())["draws"]
    assert draws == {"20pct": {"0": {"cleanlab": {"f1": 0.55}}, "3": {"cleanlab": {"f1": 0.7}}},
                     "10pct": {"0": {"cleanlab": {"f1": 0.6}}}}
    assert sorted(p.name for p in (tmp_path / "seeds").iterdir()) == ["label_noise-x-raw.json"]  # no lock file among the results


def test_the_label_noise_benchmark_reuses_a_fit_only_for_the_same_training_set():
    import numpy as np

    label_noise = _benchmark("label_noise")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    X_test = rng.normal(size=(40, 4))
    y_test = (X_test[:, 0] > 0).astype(int)
    keep = np.ones(60, dtype=bool)
    flipped = y.copy()
    flipped[:25] = 1 - flipped[:25]
    fitted = label_noise.Downstream()
    clean = fitted(X, y, keep, X_test, y_test, b"draw")
    assert clean == label_noise.downstream(X, y, keep, X_test, y_test)
    assert fitted(X, y, keep, X_test, y_test, b"draw") == clean
    noisy = fitted(X, flipped, keep, X_test, y_test, b"draw")  # other labels: a fit of its own
    assert noisy == label_noise.downstream(X, flipped, keep, X_test, y_test) and noisy < clean
    assert len(fitted._seen) == 2
