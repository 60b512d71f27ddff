"""Few real examples: the automatic choice, augmentation of real examples, and a model-labelled real pool.

The embeddings are the real MiniLM; the data are small sets made here; the
generating model is the scripted `fake` backend (logic). The embedded model
runs augmentation end to end in tests/test_examples.py (examples/sms_augment.yaml).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthloom.curate import DROP, CurationContext, curate
from synthloom.curate.auxiliary import LabelledMatrix
from synthloom.curate.choice import Synthetic, choose
from synthloom.execute import run
from synthloom.recipe import AugmentCheckSpec, DatasetSpec, SupportAgreeSpec, SupportChoiceSpec, SupportPosteriorSpec, recipe_from_dict
from synthloom.records import Record, read_records
from synthloom.train.selection import C_GRID

from test_support_curation import TOPICS, make_data, texts


def context_for(path) -> CurationContext:
    return CurationContext(labels=list(TOPICS), support=DatasetSpec(path=str(path)))


def task() -> dict:
    return {"kind": "classification", "description": "short texts about the weather or cooking",
            "fields": {"text": "a sentence"}, "labels": list(TOPICS)}


# -- support_choice -------------------------------------------------------------------------------


def test_choice_prefers_correct_synthetic_data_to_mislabelled_data(tmp_path):
    """Generated records with every label swapped hurt held-out support folds; right ones do not."""
    path, rows, synthetic, _ = make_data(tmp_path, per_class=6, planted=0)
    swapped = [Record(f"bad-{r.id}", dict(r.fields), "cooking" if r.label == "weather" else "weather") for r in synthetic]
    context = context_for(path)
    result = curate(swapped, [SupportChoiceSpec(candidates=["none", "plain"], factors=[1.0])], context, check=False)
    notes = result.funnel[0].notes
    assert notes["chosen"] == "none" and notes["scores"]["none x1"] > notes["scores"]["plain x1"]
    assert result.kept == [] and all(r.flags["support_choice"] == DROP for r in swapped)

    result = curate(synthetic, [SupportChoiceSpec(candidates=["none", "plain"], factors=[1.0])], context, check=False)
    right = result.funnel[0].notes
    assert right["scores"]["plain x1"] >= right["scores"]["none x1"] > notes["scores"]["plain x1"]
    # `none` (the support alone) stays unless the synthetic data gains more than one standard error over it
    gained = right["gain_over_baseline"] is not None and right["gain_over_baseline"] > right["gain_standard_error"]
    assert right["baseline"] == "none x1"
    assert right["chosen"] == ("plain" if gained else "none")


def test_choice_filter_candidate_relabels_with_the_support_model(tmp_path):
    path, _, synthetic, wrong = make_data(tmp_path, per_class=8, planted=6)
    result = curate(synthetic, [SupportChoiceSpec(candidates=["filter"], factors=[1.0])], context_for(path), check=False)
    assert result.funnel[0].notes["chosen"] == "filter"
    fixed = [r for r in result.kept if r.id in wrong]
    assert fixed and all(r.meta.get("original_label") for r in fixed)
    assert sum(r.label != r.meta.get("original_label", r.label) for r in result.kept) >= len(wrong) // 2


def test_choice_never_trains_on_a_rewrite_of_the_held_out_example():
    """The augment candidate of a fold holds only rewrites whose source is in that fold's training part."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4))
    y = np.array([0, 1] * 6)
    support = LabelledMatrix([], X, y, ["a", "b"])
    syn = Synthetic(X=X + 0.01, y=y.copy(), w=np.ones(12), origin=np.array(["augment"] * 12), source=np.arange(12))
    seen: list[set[int]] = []

    def fit(Xt, yt, wt, c, seed):
        from sklearn.linear_model import LogisticRegression

        seen.append({i for i in range(12) if any(np.array_equal(syn.X[i], x) for x in Xt)})
        return LogisticRegression().fit(Xt, yt, sample_weight=wt)

    result = choose(support, syn, ["augment"], [1.0], folds=3, repeats=1, fit=fit)
    assert result["chosen"] == "augment" and len(seen) == 3
    # each fold trained on 8 support rows + the 8 rewrites of those rows, never the 4 held out
    assert all(len(rows) == 8 for rows in seen)
    assert set().union(*seen) == set(range(12))


def test_choice_never_trains_on_a_record_whose_prompt_showed_the_held_out_example(tmp_path):
    """A generated record that saw a support example as a demonstration may copy it: in the fold that holds
    that example out, the record is left out too (else the copy scores the candidate on its own prompt)."""
    from synthloom.records import load_dataset

    path, _, _, _ = make_data(tmp_path, per_class=6, planted=0)
    support = load_dataset(DatasetSpec(path=str(path)))
    copies = [Record(f"copy-{r.id}", dict(r.fields), r.label, demonstrations=[r.id]) for r in support]
    unseen = [Record(f"free-{r.id}", {"text": r.text() + " indeed"}, r.label) for r in support[:4]]
    result = curate(copies + unseen, [SupportChoiceSpec(candidates=["plain"], factors=[1.0], repeats=1)],
                    context_for(path), check=False)
    notes = result.funnel[0].notes
    folds = notes["folds"]
    held_out_per_fold = len(support) / folds
    # each fold: every record but the copies of its held-out examples
    assert notes["candidate_sizes"]["plain"] == int(len(copies) + len(unseen) - held_out_per_fold)
    assert len(result.kept) == len(copies) + len(unseen)  # the final candidate, on the whole support, keeps all


def test_held_out_records_are_weighted_to_the_stated_class_shares():
    from synthloom.curate.choice import held_out_weights

    y = np.array([0] * 10 + [1] * 10)
    assert np.allclose(held_out_weights(y, ["ham", "spam"], {"ham": 3, "spam": 1}), [1.5] * 10 + [0.5] * 10)
    assert np.allclose(held_out_weights(y, ["ham", "spam"], {}), 1.0)  # none stated: equal shares
    assert np.allclose(held_out_weights(np.array([0, 0, 0, 1]), ["a", "b"], {}), [2 / 3] * 3 + [2])
    assert np.allclose(held_out_weights(y, ["ham", "spam"], {"ham": 1}), [2.0] * 10 + [0.0] * 10)  # a label left out: 0
    assert np.allclose(held_out_weights(np.array([0, 0, 0, 1]), ["a", "b"], None), 1.0)  # as they fall in the support


def _overlapping_classes(n: int = 20):
    """Two overlapping 1-D classes, `n` each: A around 0 (the common one), B around 2."""
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 1, n), rng.normal(2, 1, n)])[:, None]
    return LabelledMatrix([], X, np.array([0] * n + [1] * n), ["A", "B"])


def _logreg(Xt, yt, wt, c, seed):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(Xt, yt, sample_weight=wt)


def test_a_candidate_that_calls_the_common_class_rare_scores_lower_under_the_stated_shares():
    """Records labelled B inside A's side push the boundary into A: a balanced support barely sees the cost,
    a support weighted to the task's 9:1 share of A sees what falsely predicting B costs."""
    support = _overlapping_classes()
    X = np.full((40, 1), 0.6)
    syn = Synthetic(X=X, y=np.ones(40, dtype=int), w=np.ones(40), origin=np.array(["generated"] * 40), source=-np.ones(40, dtype=int))
    equal = choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=3, rule="best", fit=_logreg)
    skewed = choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=3, rule="best", shares={"A": 9, "B": 1}, fit=_logreg)
    assert skewed["held_out_shares"] == {"A": 0.9, "B": 0.1}
    cost = lambda r: r["scores"]["none x1"] - r["scores"]["plain x1"]  # noqa: E731
    assert cost(skewed) > cost(equal) and cost(skewed) > 0


class _Scripted:
    """A classifier whose held-out mistakes are fixed in advance: support row i is X[i] = [i]."""

    def __init__(self, y, wrong):
        self.y, self.wrong = y, wrong

    def predict(self, X):
        rows = X[:, 0].astype(int)
        return np.where(np.isin(rows, list(self.wrong)), 1 - self.y[rows], self.y[rows])


def test_a_gain_within_one_standard_error_keeps_the_support_alone():
    y = np.array([0, 1] * 10)
    support = LabelledMatrix([], np.arange(20, dtype=float)[:, None], y, ["a", "b"])
    syn = Synthetic(X=np.full((4, 1), 100.0), y=np.array([0, 1, 0, 1]), w=np.ones(4), origin=np.array(["generated"] * 4),
                    source=-np.ones(4, dtype=int))

    def fit_with(none_wrong, plain_wrong):
        return lambda Xt, yt, wt, c, seed: _Scripted(y, plain_wrong if len(Xt) > 16 else none_wrong)

    # one row fewer wrong in all, but a loss in one fold against gains in others: not past its standard error
    lucky = choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=1, fit=fit_with({0, 3}, {5}))
    assert lucky["best_scored"] == "plain x1" and lucky["scores"]["plain x1"] > lucky["scores"]["none x1"]
    assert lucky["gain_over_baseline"] <= lucky["gain_standard_error"] and lucky["chosen"] == "none"
    assert choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=1, rule="best",
                  fit=fit_with({0, 3}, {5}))["chosen"] == "plain"
    # every odd row wrong without the records, none with them: a gain in every fold, kept
    steady = choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=1, fit=fit_with(set(range(1, 20, 2)), set()))
    assert steady["gain_over_baseline"] > steady["gain_standard_error"] and steady["chosen"] == "plain"


def test_a_named_baseline_must_be_beaten_by_one_standard_error_and_falls_back_to_none_when_absent():
    """`baseline: plain`: `none` scoring better by a lucky margin does not replace it; with no generated
    records the plain candidate does not exist and `none` is the baseline again."""
    y = np.array([0, 1] * 10)
    support = LabelledMatrix([], np.arange(20, dtype=float)[:, None], y, ["a", "b"])
    syn = Synthetic(X=np.full((4, 1), 100.0), y=np.array([0, 1, 0, 1]), w=np.ones(4), origin=np.array(["generated"] * 4),
                    source=-np.ones(4, dtype=int))
    fit = lambda Xt, yt, wt, c, seed: _Scripted(y, {5} if len(Xt) > 16 else {0, 3})  # noqa: E731
    # `plain` one row fewer wrong, not past its standard error: against `plain` as the baseline, `none` loses outright
    lucky = choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=1, fit=fit, baseline="plain")
    assert lucky["baseline"] == "plain x1" and lucky["chosen"] == "plain" and lucky["gain_over_baseline"] is None
    fit_none = lambda Xt, yt, wt, c, seed: _Scripted(y, {0, 3} if len(Xt) > 16 else {5})  # noqa: E731
    kept = choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=1, fit=fit_none, baseline="plain")
    assert kept["best_scored"] == "none x1" and kept["gain_over_baseline"] <= kept["gain_standard_error"]
    assert kept["chosen"] == "plain"
    pool_only = Synthetic(X=np.full((2, 1), 100.0), y=np.array([0, 1]), w=np.ones(2), origin=np.array(["pool"] * 2),
                          source=-np.ones(2, dtype=int))
    assert choose(support, pool_only, ["none", "plain"], [1.0], folds=5, repeats=1, fit=fit, baseline="auto")["baseline"] == "none x1"


def test_a_combined_candidate_trains_on_both_parts():
    """`posterior+filter`: the pool's records with their posterior labels and the generated records relabelled."""
    from synthloom.curate.choice import Prior, build

    class Model:
        labels = ["a", "b"]

        def threshold(self, precision):
            return 0.5

    syn = Synthetic(X=np.zeros((4, 1)), y=np.array([1, 1, 0, 0]), w=np.ones(4), origin=np.array(["pool", "pool", "generated", "generated"]),
                    source=-np.ones(4, dtype=int), said=np.array([0, 1]))
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.7, 0.3]])
    prior = Prior(np.array([0, 1]), {}, smoothing=1.0)
    both = build("posterior+filter", Model(), syn, P, {0, 1}, 0.9, 0.1, prior)
    alone = [build(n, Model(), syn, P, {0, 1}, 0.9, 0.1, prior) for n in ("posterior", "filter")]
    assert both.rows.tolist() == [0, 1, 2, 3]
    assert both.y.tolist() == alone[0].y.tolist() + alone[1].y.tolist() == [0, 1, 1, 0]  # row 2 relabelled by the filter
    assert np.allclose(both.w, np.concatenate([alone[0].w, alone[1].w]))
    # no calibration: no posterior, so no combination either
    assert build("posterior+filter", Model(), Synthetic(**{**syn.__dict__, "said": None}), P, {0, 1}, 0.9, 0.1, prior) is None


def test_unknown_candidates_and_baselines_are_named():
    SupportChoiceSpec(candidates=["none", "posterior+weight", "self+augment"], baseline="auto")
    with pytest.raises(Exception, match="unknown candidate 'posterior\\+pool'"):
        SupportChoiceSpec(candidates=["posterior+pool"])
    with pytest.raises(Exception, match="unknown candidate 'synthetic'"):
        SupportChoiceSpec(candidates=["synthetic"])
    with pytest.raises(Exception, match="baseline must be auto or one of"):
        SupportChoiceSpec(baseline="best")


def test_choice_self_candidate_labels_the_whole_pool_with_the_support_model(tmp_path):
    """`pool` keeps the pool records whose model label the support model agrees with; `self` keeps them all,
    with the support model's labels (the model's wrong labels are replaced, not dropped)."""
    path, _, synthetic, _ = make_data(tmp_path, per_class=8, planted=0)
    def swapped_pool() -> list[Record]:  # the model's labels: every one wrong
        return [Record(f"pool-{r.id}", dict(r.fields), "cooking" if r.label == "weather" else "weather", meta={"origin": "pool"})
                for r in synthetic]

    pool = swapped_pool()
    truth = {f"pool-{r.id}": r.label for r in synthetic}
    result = curate(pool, [SupportChoiceSpec(candidates=["self"], factors=[1.0])], context_for(path), check=False)
    assert result.funnel[0].notes["chosen"] == "self" and len(result.kept) == len(pool)
    assert sum(r.label == truth[r.id] for r in result.kept) >= 0.8 * len(pool)
    assert all(r.meta["original_label"] != r.label for r in result.kept if r.label == truth[r.id])
    result = curate(swapped_pool(), [SupportChoiceSpec(candidates=["pool"], factors=[1.0])], context_for(path), check=False)
    assert len(result.kept) <= 0.2 * len(pool)  # the swapped labels the support model disagrees with are dropped


def test_choice_classifier_searches_c_on_the_fold_training_part_only(monkeypatch):
    """Each (fold, candidate, factor) classifier chooses C by the trainers' rule on its own training rows:
    a grid is searched, and no row of the held-out fold it then predicts is among the rows that chose C."""
    import synthloom.train.selection as selection
    from synthloom.curate import choice

    rng = np.random.default_rng(1)
    y = np.array([0, 1] * 10)
    X = rng.normal(size=(20, 6)) + y[:, None] * 1.5
    support = LabelledMatrix([], X, y, ["a", "b"])
    ys = np.array([0, 1] * 8)
    syn = Synthetic(X=rng.normal(size=(16, 6)) + ys[:, None] * 1.5, y=ys, w=np.ones(16),
                    origin=np.array(["generated"] * 16), source=np.full(16, -1))
    searched: list[tuple[np.ndarray, tuple[float, ...], float | None]] = []
    real = selection.select_and_fit

    def spy(make, param, Xs, labels, weights, seed=0, grid=selection.C_GRID, C=None):
        searched.append((np.asarray(Xs), tuple(grid), C))
        return real(make, param, Xs, labels, weights, seed, grid=grid, C=C)

    monkeypatch.setattr(selection, "select_and_fit", spy)
    predicted: list[np.ndarray] = []

    class Watched:
        def __init__(self, model):
            self.model, self.C = model, model.C

        def predict(self, Xp):
            predicted.append(np.asarray(Xp))
            return self.model.predict(Xp)

    def fit(Xt, yt, wt, c, seed):
        return Watched(choice._classifier(Xt, yt, wt, c, seed))

    result = choose(support, syn, ["none", "plain"], [0.3, 1.0], folds=5, repeats=1, fit=fit)
    assert len(searched) == len(predicted) == 5 * 3  # folds x (none, plain x0.3, plain x1)
    for (rows, grid, c), held_out in zip(searched, predicted):
        assert c is None and len(grid) > 1  # C is searched, not given
        assert len(rows) >= 16 and not any((rows == x).all(1).any() for x in held_out)
    assert set(result["classifier_c"]) == set(result["scores"])
    assert all(min(C_GRID) <= v <= max(C_GRID) for v in result["classifier_c"].values())

    searched.clear()
    fixed = choose(support, syn, ["none", "plain"], [1.0], folds=5, repeats=1, c=2.0)
    assert fixed["classifier_c_rule"] == "given" and {v for v in fixed["classifier_c"].values()} == {2.0}


# -- augment_check, support_agree --------------------------------------------------------------------


def test_augment_check_counts_near_copies_and_changes_of_meaning(tmp_path):
    path, rows, _, _ = make_data(tmp_path, per_class=8, planted=0)
    source = rows[0]["text"]  # a weather sentence
    other = texts("cooking")[0]
    made = [
        Record("copy", {"text": source.replace(".", "!")}, "weather", meta={"source_text": source}),
        Record("changed", {"text": other}, "weather", meta={"source_text": source}),
        Record("fine", {"text": "Tonight the hills can expect lots of heavy rain."}, "weather", meta={"source_text": source}),
        Record("generated", {"text": "Simmer the beans slowly."}, "cooking"),
    ]
    result = curate(made, [AugmentCheckSpec()], context_for(path), check=False)
    reasons = {r.id: r.reasons["augment_check"] for r in made}
    assert reasons["copy"].startswith("near-copy") and reasons["changed"].startswith("meaning changed")
    assert {r.id for r in result.kept} == {"fine", "generated"}


def test_support_agree_keeps_agreement_and_queues_the_rest_least_confident_first(tmp_path):
    from synthloom.review.queue import View

    path, _, synthetic, wrong = make_data(tmp_path, per_class=8, planted=5)
    for r in synthetic:
        r.meta["origin"] = "pool"
    result = curate(synthetic, [SupportAgreeSpec()], context_for(path), check=False)
    dropped = {r.id for r in result.dropped}
    assert dropped and len(dropped & wrong) >= 4 and len(dropped - wrong) <= 1
    order = View(order="confidence", decisions=(("support_agree", DROP),)).apply(result.dropped)
    scores = [next(r for r in result.dropped if r.id == i).scores["support_agree"] for i in order]
    assert scores == sorted(scores) and set(order) == dropped


# -- support_posterior: both judges, the model weighed by its confusion matrix on the support ----------------


def test_posterior_weighs_a_label_by_how_often_the_model_is_right_with_it():
    from synthloom.curate.real_data import posterior

    counts = np.array([[5.0, 5.0], [0.0, 10.0]])  # the model says spam for half the ham, always spam for spam
    undecided = np.array([[0.5, 0.5], [0.5, 0.5]])
    said = np.array([1, 0])  # spam, ham
    equal = posterior(undecided, said, counts, 1.0, np.ones(2))
    assert np.allclose(equal[0], [0.25 / (0.25 + 0.5 * 11 / 12), 0.5 * 11 / 12 / (0.25 + 0.5 * 11 / 12)])  # spam: weak evidence
    assert equal[1, 0] == pytest.approx(0.25 / (0.25 + 0.5 / 12))  # ham: strong evidence
    shifted = posterior(undecided, said, counts, 1.0, np.array([1.5, 0.5]))  # the task says ham 3 : spam 1
    assert shifted[0].argmax() == 0 and equal[0].argmax() == 1  # under the stated shares, "spam" alone does not decide


def _calibration(tmp_path, support_rows, wrong_every: int):
    """The model's labels on the support's own texts: right on weather, says weather for every `wrong_every`-th cooking."""
    rows, n = [], 0
    for r in support_rows:
        said = r["label"]
        if said == "cooking":
            n += 1
            said = "weather" if n % wrong_every == 0 else "cooking"
        rows.append({"text": r["text"], "label": said})
    path = tmp_path / "calibration.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_support_posterior_relabels_the_models_unreliable_label_and_keeps_every_record(tmp_path):
    path, rows, synthetic, _ = make_data(tmp_path, per_class=8, planted=0)
    calibration = _calibration(tmp_path, rows, wrong_every=2)  # 4 of 8 cooking texts called weather
    truth = {r.id: r.label for r in synthetic}
    pool = [Record(r.id, dict(r.fields), "weather" if r.label == "cooking" and i % 2 else r.label, meta={"origin": "pool"})
            for i, r in enumerate(synthetic)]
    said = {r.id: r.label for r in pool}
    context = CurationContext(labels=list(TOPICS), support=DatasetSpec(path=str(path)))
    result = curate(pool, [SupportPosteriorSpec(calibration=DatasetSpec(path=str(calibration)))], context, check=False)
    assert len(result.kept) == len(pool)
    notes = result.funnel[0].notes
    assert notes["calibration_matched"] == 16 and notes["confusion"]["cooking"] == {"cooking": 4, "weather": 4}
    assert notes["confusion"]["weather"] == {"weather": 8}
    fixed = [r for r in result.kept if said[r.id] != truth[r.id]]
    assert fixed and sum(r.label == truth[r.id] for r in fixed) >= 0.8 * len(fixed)
    assert all(r.meta["original_label"] == "weather" for r in fixed if r.label == "cooking")
    assert all(0 < r.weight <= 1 for r in result.kept)
    assert notes["relabelled"] == sum(r.label != said[r.id] for r in result.kept)
    # the model's "cooking" is always right on the support: those records keep their label
    assert all(r.label == "cooking" for r in result.kept if said[r.id] == "cooking")


def test_support_posterior_counts_the_support_texts_annotated_in_the_same_run_and_drops_them(tmp_path):
    """No calibration file: the records whose text is a support text are the model's labels on the support."""
    path, rows, synthetic, _ = make_data(tmp_path, per_class=8, planted=0)
    calibration = [json.loads(line) for line in _calibration(tmp_path, rows, wrong_every=2).read_text().splitlines()]
    on_support = [Record(f"cal-{i}", {"text": r["text"]}, r["label"], meta={"origin": "pool"}) for i, r in enumerate(calibration)]
    pool = [Record(r.id, dict(r.fields), "weather" if r.label == "cooking" and i % 2 else r.label, meta={"origin": "pool"})
            for i, r in enumerate(synthetic)]
    context = CurationContext(labels=list(TOPICS), support=DatasetSpec(path=str(path)))
    result = curate(on_support + pool, [SupportPosteriorSpec()], context, check=False)
    notes = result.funnel[0].notes
    assert notes["calibration_matched"] == 16 and notes["confusion"]["cooking"] == {"cooking": 4, "weather": 4}
    assert {r.id for r in result.dropped} == {r.id for r in on_support}
    assert all("a support text" in r.reasons["support_posterior"] for r in result.dropped)
    assert len(result.kept) == len(pool)


def test_choice_posterior_candidate_counts_only_the_folds_training_rows():
    from synthloom.curate.choice import Prior

    y = np.array([0, 0, 1, 1])
    syn = Synthetic(X=np.zeros((1, 1)), y=np.array([1]), w=np.ones(1), origin=np.array(["pool"]),
                    source=-np.ones(1, dtype=int), said=np.array([1, 1, 1, -1]))  # the model said 1 on support rows 0-2
    P = np.array([[0.6, 0.4]])
    prior = Prior(y, {}, smoothing=1.0)
    # training rows 0 and 2 (row 1 held out, not counted): M[0] = M[1] = (1, 2) / 3, so the model's 1 says nothing
    assert np.allclose(prior.posterior(syn, np.array([0]), P, {0, 2}, ["a", "b"]), [[0.6, 0.4]])
    # rows 0, 1, 2: M[0, 1] = 3/4, M[1, 1] = 2/3; the support part is 2:1, shifted back to equal shares (x 3/4, x 3/2)
    joint = np.array([0.6 * 0.75 * 0.75, 0.4 * 1.5 * 2 / 3])
    assert np.allclose(prior.posterior(syn, np.array([0]), P, {0, 1, 2}, ["a", "b"]), [joint / joint.sum()])
    # no model label known in the training part: no posterior candidate
    assert prior.posterior(syn, np.array([0]), P, {3}, ["a", "b"]) is None


def test_choice_posterior_candidate_from_a_pool_annotated_with_the_support_texts(tmp_path):
    """The pool records whose text is a support text calibrate the candidate and are dropped; the rest are relabelled."""
    path, rows, synthetic, _ = make_data(tmp_path, per_class=8, planted=0)
    calibration = [json.loads(line) for line in _calibration(tmp_path, rows, wrong_every=2).read_text().splitlines()]
    on_support = [Record(f"cal-{i}", {"text": r["text"]}, r["label"], meta={"origin": "pool"}) for i, r in enumerate(calibration)]
    truth = {r.id: r.label for r in synthetic}
    pool = [Record(r.id, dict(r.fields), "weather" if r.label == "cooking" and i % 2 else r.label, meta={"origin": "pool"})
            for i, r in enumerate(synthetic)]
    spec = SupportChoiceSpec(candidates=["posterior"], factors=[1.0], repeats=1)
    result = curate(on_support + pool, [spec], context_for(path), check=False)
    notes = result.funnel[0].notes
    assert notes["chosen"] == "posterior" and notes["calibration_matched"] == 16
    assert {r.id for r in result.dropped} == {r.id for r in on_support}
    assert len(result.kept) == len(pool) and sum(r.label == truth[r.id] for r in result.kept) >= 0.9 * len(pool)
    assert all(0 < r.weight <= 1 for r in result.kept)


def test_support_posterior_without_matching_calibration_says_so(tmp_path):
    path, rows, synthetic, _ = make_data(tmp_path, per_class=4, planted=0)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"text": "nothing like the support", "label": "weather"}) + "\n", encoding="utf-8")
    context = CurationContext(labels=list(TOPICS), support=DatasetSpec(path=str(path)))
    with pytest.raises(ValueError, match=f"none of the 8 support texts is in the calibration file {other}"):
        curate(synthetic[:4], [SupportPosteriorSpec(calibration=DatasetSpec(path=str(other)))], context, check=False)
    with pytest.raises(ValueError, match="none of the 8 support texts is in the records handed to it"):
        curate(synthetic[:4], [SupportPosteriorSpec()], context, check=False)


def test_support_posterior_calibration_file_in_a_recipe_is_checked(tmp_path):
    path, _, _, _ = make_data(tmp_path, per_class=4, planted=0)
    base = {"name": "p", "model": {"backend": "fake"}, "task": task(), "demonstrations": {"path": str(path), "k": 2},
            "annotation": {"input": {"path": str(path), "label_field": None}}, "evaluation": []}
    assert recipe_from_dict({**base, "curation": [{"stage": "support_posterior"}]}, base_dir=tmp_path).curation[0].calibration is None
    with pytest.raises(Exception, match="curation.0..calibration.path: file not found: .*cal.jsonl"):
        recipe_from_dict({**base, "curation": [{"stage": "support_posterior", "calibration": {"path": "cal.jsonl"}}]},
                         base_dir=tmp_path)
    (tmp_path / "cal.jsonl").write_text(json.dumps({"text": "x", "label": "weather"}) + "\n", encoding="utf-8")
    recipe = recipe_from_dict({**base, "curation": [{"stage": "support_posterior", "calibration": {"path": "cal.jsonl"}}]},
                              base_dir=tmp_path)
    assert Path(recipe.curation[0].calibration.path) == tmp_path / "cal.jsonl"


# -- from a recipe: augmentation mode and the choice in one run (scripted model) ------------------------


def test_augmentation_recipe_rewrites_each_example_and_keeps_its_label(tmp_path):
    path, rows, _, _ = make_data(tmp_path, per_class=4, planted=0)
    answers = {r["text"]: f"Apparently, {r['text'][0].lower()}{r['text'][1:]} Just so you know." for r in rows}

    def responder(request):
        prompt = request.messages[-1]["content"]
        return next(answers[t] for t in answers if t in prompt)

    from synthloom.llm.fake import FakeBackend, FakeConfig

    recipe = recipe_from_dict({
        "name": "aug", "model": {"backend": "fake"}, "task": task(), "demonstrations": {"path": str(path), "k": 0},
        "augmentation": {"per_example": 2, "per_label": 3},
        "curation": [{"stage": "augment_check"}, {"stage": "support_choice", "candidates": ["none", "augment"]}],
        "evaluation": [],
    }, base_dir=tmp_path)
    result = run(recipe, tmp_path / "out", backend=FakeBackend(FakeConfig(), responder), progress=False)
    generated = read_records(tmp_path / "out" / "generated.parquet")
    assert len(generated) == 2 * 3 * 2
    by_source = {r["text"]: r["label"] for r in rows}
    assert all(r.label == by_source[r.meta["source_text"]] and r.meta["origin"] == "augment" for r in generated)
    prompts = [json.loads(r.prompt)[-1]["content"] for r in generated]
    assert all(any(v in p for v in ("plainer", "casual", "formal", "typo")) for p in prompts)
    funnel = {step["stage"]: step for step in result.manifest["curation"]["funnel"]}
    assert funnel["augment_check"]["dropped"] == 0
    assert funnel["support_choice"]["notes"]["chosen"] in ("none", "augment")
    assert set(funnel["support_choice"]["notes"]["scores"]) == {"none x1", "augment x0.3", "augment x1"}
    assert funnel["support_choice"]["notes"]["held_out_shares"] == {"weather": 0.5, "cooking": 0.5}  # no label_weights: equal
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Held-out records weighted to the class shares weather 50%, cooking 50%" in card
    assert f"support_choice chose **{funnel['support_choice']['notes']['chosen']}**" in card


def test_the_choice_in_a_run_scores_held_out_records_under_the_tasks_label_weights(tmp_path):
    """`task.label_weights` reach support_choice through the run: held-out records weighted to 3:1."""
    path, rows, _, _ = make_data(tmp_path, per_class=4, planted=0)
    from synthloom.llm.fake import FakeBackend, FakeConfig

    answers = {r["text"]: f"Well, {r['text'][0].lower()}{r['text'][1:]} Truly." for r in rows}
    recipe = recipe_from_dict({
        "name": "aug", "model": {"backend": "fake"}, "task": {**task(), "label_weights": {"weather": 3, "cooking": 1}},
        "demonstrations": {"path": str(path), "k": 0}, "augmentation": {"per_example": 1, "per_label": 4},
        "curation": [{"stage": "support_choice", "candidates": ["none", "augment"]}], "evaluation": [],
    }, base_dir=tmp_path)
    responder = lambda request: next(answers[t] for t in answers if t in request.messages[-1]["content"])  # noqa: E731
    result = run(recipe, tmp_path / "out", backend=FakeBackend(FakeConfig(), responder), progress=False)
    notes = {step["stage"]: step for step in result.manifest["curation"]["funnel"]}["support_choice"]["notes"]
    assert notes["held_out_shares"] == {"weather": 0.75, "cooking": 0.25}


@pytest.mark.parametrize("chosen, verdict", [("pool", "more than one standard error, so it was kept."),
                                              ("none", "not more than one standard error, so the support set alone was kept.")])
def test_the_card_says_whether_the_best_candidate_cleared_one_standard_error(chosen, verdict):
    from synthloom.report import render_card

    notes = {"chosen": chosen, "factor": 1.0, "folds": 5, "repeats": 5, "scores": {"none x1": 0.95, "pool x1": 0.98},
             "best_scored": "pool x1", "baseline": "none x1", "gain_over_baseline": 0.03,
             "gain_standard_error": 0.015 if chosen == "pool" else 0.04,
             "held_out_shares": {"ham": 0.75, "spam": 0.25}}
    funnel = [{"stage": "support_choice", "seen": 10, "kept": 5, "dropped": 5, "relabelled": 0, "reweighted": 0, "notes": notes}]
    card = render_card({"recipe": {"name": "choice"}, "curation": {"funnel": funnel}}, {}, [])
    assert f"support_choice chose **{chosen}** x1" in card
    assert f"pool x1 scored best, +0.030 over none x1 with a standard error of {notes['gain_standard_error']:.3f}: {verdict}" in card
    assert "Held-out records weighted to the class shares ham 75%, spam 25%" in card


def test_bad_augmentation_settings_are_named(tmp_path):
    with pytest.raises(Exception, match="augmentation.*demonstrations"):
        recipe_from_dict({"name": "a", "task": task(), "augmentation": {}}, base_dir=tmp_path)
    path, *_ = make_data(tmp_path)
    with pytest.raises(Exception, match="factors must be above 0"):
        recipe_from_dict({"name": "a", "task": task(), "demonstrations": {"path": str(path)},
                          "curation": [{"stage": "support_choice", "factors": [0]}]}, base_dir=tmp_path)


def test_an_unusable_rewrite_is_a_failure_not_an_empty_record(tmp_path):
    from synthloom.llm.fake import FakeBackend, FakeConfig

    path, rows, _, _ = make_data(tmp_path, per_class=2, planted=0)
    recipe = recipe_from_dict({
        "name": "aug-bad", "model": {"backend": "fake", "max_attempts": 1}, "task": task(),
        "demonstrations": {"path": str(path), "k": 0}, "augmentation": {"per_example": 1},
        "curation": [{"stage": "augment_check"}], "evaluation": [],
    }, base_dir=tmp_path)
    result = run(recipe, tmp_path / "out", backend=FakeBackend(FakeConfig(), lambda request: ""), progress=False)
    assert result.manifest["counts"]["generated"] == 0 and result.manifest["counts"]["failed"] == 4


def test_plan_counts_one_call_per_rewrite(tmp_path):
    import yaml

    from conftest import run_cli

    path, *_ = make_data(tmp_path, per_class=8, planted=0)
    recipe = tmp_path / "aug.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "aug-plan", "model": {"backend": "fake"}, "task": task(), "demonstrations": {"path": str(path), "k": 0},
        "augmentation": {"per_example": 3, "per_label": 2}, "evaluation": [],
    }))
    done = run_cli("plan", str(recipe))
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("generation"))
    assert line.split()[1] == str(2 * 2 * 3)
