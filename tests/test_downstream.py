"""Trainers, settings, bootstrap intervals and the per-class / per-condition errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from synthloom.evaluate import make_trainer
from synthloom.evaluate.downstream import (
    bootstrap_intervals,
    downstream_evaluation,
    few_per_class,
    fit_and_score,
    majority_baseline,
    score_predictions,
)
from synthloom.train import C_GRID, folds_for
from synthloom.train import TrainingError
from synthloom.records import Record

WORDS = {
    "sport": "match goal team score league coach player win stadium ball".split(),
    "money": "bank loan card interest account payment cash fee credit savings".split(),
    "food": "pizza bread cheese soup recipe dinner salad cake lunch fruit".split(),
}


def corpus(n: int, seed: int, prefix: str = "r") -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = list(WORDS)[i % 3]
        words = list(rng.choice(WORDS[label], 5)) + list(rng.choice("the a of and to with".split(), 3))
        out.append(Record(id=f"{prefix}{i}", fields={"text": " ".join(rng.permutation(words))}, label=label,
                          conditions={"tone": ["calm", "angry"][i % 2]}))
    return out


def test_bootstrap_intervals_bracket_the_scores():
    rng = np.random.default_rng(0)
    truth = list(rng.choice(["a", "b", "c"], 400))
    predicted = [t if rng.random() < 0.7 else "b" for t in truth]
    scores = score_predictions(truth, predicted)
    ci = bootstrap_intervals(truth, predicted, resamples=500)
    assert ci["accuracy_ci"][0] < scores["accuracy"] < ci["accuracy_ci"][1]
    assert ci["macro_f1_ci"][0] < scores["macro_f1"] < ci["macro_f1_ci"][1]
    assert scores["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    # a perfect model has a degenerate interval at 1
    assert bootstrap_intervals(truth, truth, resamples=50)["macro_f1_ci"] == [1.0, 1.0]


@pytest.mark.parametrize("trainer", ["tfidf_linear", "embedding_logreg"])
def test_sample_weights_are_honoured(trainer):
    train = corpus(90, 1)
    flipped = [Record(id=f"x{r.id}", fields=r.fields, label={"sport": "money", "money": "food", "food": "sport"}[r.label], weight=0.0)
               for r in corpus(300, 2)]
    test = corpus(60, 3, "t")
    clean, _ = fit_and_score(train + flipped, test, trainer, resamples=0)
    assert clean["accuracy"] > 0.9
    for r in flipped:
        r.weight = 1.0
    noisy, _ = fit_and_score(train + flipped, test, trainer, resamples=0)
    assert noisy["accuracy"] < 0.5


def test_one_label_is_a_clear_error():
    with pytest.raises(TrainingError, match="at least two labels"):
        make_trainer("tfidf_linear").fit([("a",), ("b",)], ["x", "x"])
    with pytest.raises(TrainingError, match="unknown trainer"):
        make_trainer("svm")


def test_few_per_class_is_seeded_and_balanced():
    records = corpus(90, 4)
    a, b = few_per_class(records, 5, seed=1), few_per_class(records, 5, seed=1)
    assert [r.id for r in a] == [r.id for r in b]
    assert sorted(r.label for r in a) == sorted(["food"] * 5 + ["money"] * 5 + ["sport"] * 5)
    assert [r.id for r in few_per_class(records, 5, seed=2)] != [r.id for r in a]


def test_every_setting_and_the_errors_for_the_next_round():
    synthetic = corpus(60, 5, "s")
    # the "angry" records of the food class are mislabelled: the errors must point at that cell
    for r in synthetic:
        if r.label == "food" and r.conditions["tone"] == "angry":
            r.label = "sport"
    real_train, test = corpus(120, 6), corpus(90, 7, "t")
    out = downstream_evaluation(
        synthetic, test, trainer="tfidf_linear", real_train=real_train,
        settings=["synthetic", "real", "few_real_plus_synthetic", "learning_curve"], few=3,
        learning_curve=[10, 30, 60], resamples=200,
    )
    assert list(out["settings"]) == ["majority", "few_real", "synthetic", "few_real_plus_synthetic", "real"]
    assert out["settings"]["few_real"]["n_train"] == 9
    assert out["settings"]["few_real_plus_synthetic"]["n_train"] == 69
    assert out["settings"]["real"]["accuracy"] > 0.95
    assert [p["n_train"] for p in out["learning_curve"]] == [10, 30, 60]
    errors = out["errors"]
    assert set(errors["by_class"]) == {"food", "money", "sport"}
    assert errors["by_class"]["food"]["error_rate"] > errors["by_class"]["money"]["error_rate"]
    assert errors["by_class"]["food"]["confused_with"].get("sport", 0) > 0
    assert set(errors["by_condition"]["tone"]) == {"calm", "angry"}
    # cells are sorted worst first; the mixed-up food/sport texts are where the errors are
    worst = errors["by_cell"][0]
    assert worst["label"] in ("food", "sport") and worst["error_rate"] > 0.3
    assert all(c["error_rate"] < 0.2 for c in errors["by_cell"] if c["label"] == "money")
    assert sum(c["n"] for c in errors["by_cell"]) == 60
    with pytest.raises(TrainingError, match="need real training data"):
        downstream_evaluation(synthetic, test, trainer="tfidf_linear", settings=["real"])


@pytest.mark.slow
def test_finetuned_minilm_learns_and_leaves_the_shared_embedder_alone():
    from synthloom.embed import Embedder

    shared = Embedder.shared()
    before = shared.encode(["a sentence to check"]).copy()
    out, predicted = fit_and_score(corpus(48, 8), corpus(30, 9, "t"), "finetune_minilm", resamples=0)
    assert out["trainer"] == "finetune_minilm"
    assert out["accuracy"] > 0.8
    shared._memo.clear()
    assert np.allclose(shared.encode(["a sentence to check"]), before, atol=1e-5)


@pytest.mark.parametrize("trainer", ["tfidf_linear", "embedding_logreg"])
def test_pair_tasks_train_on_both_fields(trainer):
    """Sentence-pair records (premise / hypothesis): the label is in the second field only."""
    noise = "the a of and to with it was on".split()

    def pairs(records):
        rng = np.random.default_rng(len(records))
        return [Record(id=r.id, fields={"premise": " ".join(rng.choice(noise, 6)), "hypothesis": r.fields["text"]}, label=r.label)
                for r in records]

    train, test = pairs(corpus(120, 4)), pairs(corpus(60, 5, "t"))
    both, _ = fit_and_score(train, test, trainer, ["premise", "hypothesis"], resamples=0)
    first_only, _ = fit_and_score(train, test, trainer, ["premise"], resamples=0)
    assert both["accuracy"] > 0.9 and first_only["accuracy"] < 0.6


@pytest.mark.slow
def test_finetuned_minilm_follows_the_sample_weights():
    from synthloom.evaluate import FinetuneMiniLM

    # One text, labelled "sport" three times and "money" once: uniform weights learn the majority;
    # a weight of 10 on the lone "money" copy must flip what is learned
    text = "the result was announced on friday"
    inputs = [(text,)] * 4 + [("goal scored by the striker",), ("interest on the savings account",)]
    labels = ["sport", "sport", "sport", "money", "sport", "money"]
    uniform = FinetuneMiniLM(seed=0, epochs=4, batch_size=6, learning_rate=1e-4).fit(inputs, labels)
    weighted = FinetuneMiniLM(seed=0, epochs=4, batch_size=6, learning_rate=1e-4).fit(inputs, labels, weights=[1, 1, 1, 10, 1, 1])
    assert uniform.predict([(text,)]) == ["sport"]
    assert weighted.predict([(text,)]) == ["money"]
    # the unambiguous examples are learned either way
    assert weighted.predict([("goal scored by the striker",), ("interest on the savings account",)]) == ["sport", "money"]


def noisy(records: list[Record], share: float, seed: int) -> list[Record]:
    """The same records with `share` of their labels moved to another class."""
    rng = np.random.default_rng(seed)
    labels = list(WORDS)
    out = []
    for r in records:
        label = r.label
        if rng.random() < share:
            label = labels[(labels.index(label) + 1 + int(rng.integers(0, 2))) % 3]
        out.append(Record(id=r.id, fields=r.fields, label=label))
    return out


@pytest.mark.parametrize("trainer", ["tfidf_linear", "embedding_logreg"])
def test_regularisation_is_chosen_by_cross_validation_stronger_on_noisy_labels(trainer):
    clean = corpus(150, 11)
    test = corpus(60, 12, "t")
    clean_out, _ = fit_and_score(clean, test, trainer, resamples=0)
    noisy_out, _ = fit_and_score(noisy(clean, 0.4, 13), test, trainer, resamples=0)
    for out in (clean_out, noisy_out):
        sel = out["selection"]
        assert sel["folds"] == 3 and sel["scoring"] == "neg_log_loss"
        assert set(sel["cv_scores"]) == {str(c) for c in C_GRID}
        assert sel["C"] in C_GRID
    # label noise asks for a stronger regularisation, i.e. a smaller C, than the clean labels
    assert noisy_out["selection"]["C"] < clean_out["selection"]["C"]


def test_a_class_too_small_to_hold_out_falls_back_to_a_fixed_c():
    train = corpus(30, 14)
    train = [r for r in train if r.label != "food"] + [next(r for r in train if r.label == "food")]
    model = make_trainer("tfidf_linear").fit([(r.text(),) for r in train], [r.label for r in train])
    assert model.selection["folds"] == 0 and model.selection["C"] == 1.0
    assert "a class has 1 record(s)" in model.selection["reason"]
    assert folds_for(["a", "a", "b", "b"]) == 2 and folds_for(["a"] * 9 + ["b"] * 7) == 3 and folds_for(["a", "b", "b"]) == 0


def test_many_labels_on_few_rows_fit_without_a_regression_warning():
    """24 labels on 30 rows (a few-shot fold of many intents): scikit-learn would warn the target "could
    represent a regression problem" at every fit; the labels are class names, so the fits stay quiet."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from synthloom.train.selection import select_and_fit

    rng = np.random.default_rng(0)
    labels = [f"intent{i}" for i in range(24)] + ["intent0", "intent1"] * 3
    X = rng.normal(size=(len(labels), 8))
    with warnings.catch_warnings(record=True) as bare:
        warnings.simplefilter("always")
        LogisticRegression(max_iter=200).fit(X, labels)
    assert any("could represent a regression problem" in str(w.message) for w in bare)  # what scikit-learn says unasked
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        model, selection = select_and_fit(lambda final: final, "C", X, labels, None)
    assert selection["folds"] == 0 and len(model.classes_) == 24
    assert not [str(w.message) for w in ours if "regression problem" in str(w.message)]


def test_the_test_set_never_reaches_the_selection(monkeypatch):
    """Every text any cross-validation or refit saw, in every setting, is training data."""
    import sklearn.model_selection

    seen: list[list[str]] = []

    class Recording(sklearn.model_selection.GridSearchCV):
        def fit(self, X, y=None, **params):
            seen.append(list(X))
            return super().fit(X, y, **params)

    monkeypatch.setattr(sklearn.model_selection, "GridSearchCV", Recording)
    test = [Record(id=r.id, fields={"text": "heldout " + r.text()}, label=r.label) for r in corpus(45, 15, "t")]
    synthetic, real_train, support = corpus(45, 16, "s"), corpus(60, 17), corpus(9, 18, "d")
    out = downstream_evaluation(synthetic, test, trainer="tfidf_linear", real_train=real_train, support=support,
                                settings=None, resamples=50)
    assert list(out["settings"]) == ["majority", "few_real", "synthetic", "few_real_plus_synthetic", "real"]
    # one selection per trained setting, each on exactly that setting's training texts
    sizes = sorted(len(x) for x in seen)
    assert sizes == sorted([9, 45, 54, 60])
    assert all("heldout" not in text for texts in seen for text in texts)
    assert {s["selection"]["folds"] for name, s in out["settings"].items() if name != "majority"} == {3}


def test_majority_baseline_predicts_the_commonest_training_label():
    train = [Record(id=f"r{i}", fields={"text": "x"}, label="ham" if i % 4 else "spam") for i in range(20)]
    test = [Record(id=f"t{i}", fields={"text": "y"}, label="ham" if i < 8 else "spam") for i in range(10)]
    out = majority_baseline(train, test, resamples=200)
    assert out["label"] == "ham" and out["n_train"] == 20
    assert out["accuracy"] == pytest.approx(0.8)
    assert out["macro_f1"] == pytest.approx(f1_score(["ham"] * 8 + ["spam"] * 2, ["ham"] * 10, average="macro"))
    assert out["macro_f1_ci"][0] <= out["macro_f1"] <= out["macro_f1_ci"][1]


def test_settings_table_follows_the_data_and_names_its_headline():
    synthetic, test = corpus(45, 19, "s"), corpus(45, 20, "t")
    alone = downstream_evaluation(synthetic, test, trainer="tfidf_linear", settings=None, resamples=50, errors=False)
    assert list(alone["settings"]) == ["majority", "synthetic"] and alone["headline"] == "synthetic"
    assert alone["settings"]["majority"]["source"] == "synthetic records"
    # the few real are the recipe's labelled demonstrations when it has them; one of them is a test text
    support = corpus(6, 21, "d") + [test[0]]
    out = downstream_evaluation(synthetic, test, trainer="tfidf_linear", support=support, settings=None,
                                resamples=50, errors=False)
    assert list(out["settings"]) == ["majority", "few_real", "synthetic", "few_real_plus_synthetic"]
    assert out["headline"] == "few_real_plus_synthetic"
    assert out["settings"]["few_real"]["n_train"] == 7 and out["settings"]["few_real_plus_synthetic"]["n_train"] == 52
    assert out["few_real_source"] == "the recipe's 7 labelled demonstrations" and out["few_real_in_test"] == 1
    assert all("macro_f1_ci" in s for s in out["settings"].values())
    with pytest.raises(TrainingError, match="need real training data"):
        downstream_evaluation(synthetic, test, trainer="tfidf_linear", settings=["few_real"])
