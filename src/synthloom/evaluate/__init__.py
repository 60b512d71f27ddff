"""Evaluation: direct measures of the data and indirect ones (train, then test on real data).

Direct: diversity (lexical, semantic, condition coverage), faithfulness (a
judge on a sample, with an interval; people's reviews and the judge's
agreement with them) and fidelity against real data. Indirect: a small
model trained on the data and scored on real data in several settings, the
benchmark registry, in-context answering of QA and generative benchmarks
with the records as worked examples, and open (pairwise) evaluation by a judge.
"""

from .answering import answer_benchmark
from .benchmarks import BENCHMARKS, Benchmark, BenchmarkUnavailable, load_benchmark, restrict_labels, score_generative
from .diversity import (
    compression_ratio,
    condition_coverage,
    distinct_n,
    mean_pairwise_cosine,
    ngram_entropy,
    self_bleu,
    tokenize,
    vendi_score,
    vocabulary_size,
)
from .downstream import (
    bootstrap_intervals,
    class_errors,
    downstream_evaluation,
    few_per_class,
    fit_and_score,
    majority_baseline,
    score_predictions,
    train_and_score,
)
from .seeds import (
    BEATS,
    NO_DIFFERENCE,
    WORSE,
    Interval,
    PairedDifference,
    markdown_table,
    mean_interval,
    paired_difference,
    summarize,
    write_per_seed,
)
from .faithfulness import (
    human_faithfulness,
    human_reviews,
    judge_agreement,
    judge_faithfulness,
    wilson_interval,
)
from .fidelity import classifier_two_sample_auc, fidelity_measures, jensen_shannon, knn_precision_recall
from .judge import Judge
from .pairwise import compare_answers, length_controlled_win_rate
from .projection import embedding_map
from .stages import EVALUATORS, EvaluationContext, evaluate, plot_data
from ..train import TRAINERS, EmbeddingLogReg, FinetuneMiniLM, TfidfLinear, Trainer, TrainingError, make_trainer

__all__ = [
    "BEATS",
    "NO_DIFFERENCE",
    "WORSE",
    "Interval",
    "PairedDifference",
    "markdown_table",
    "mean_interval",
    "paired_difference",
    "summarize",
    "write_per_seed",
    "BENCHMARKS",
    "EVALUATORS",
    "Benchmark",
    "BenchmarkUnavailable",
    "EmbeddingLogReg",
    "EvaluationContext",
    "FinetuneMiniLM",
    "Judge",
    "TRAINERS",
    "TfidfLinear",
    "Trainer",
    "TrainingError",
    "answer_benchmark",
    "bootstrap_intervals",
    "classifier_two_sample_auc",
    "compare_answers",
    "compression_ratio",
    "condition_coverage",
    "distinct_n",
    "downstream_evaluation",
    "embedding_map",
    "evaluate",
    "few_per_class",
    "fidelity_measures",
    "class_errors",
    "fit_and_score",
    "majority_baseline",
    "human_faithfulness",
    "human_reviews",
    "jensen_shannon",
    "judge_agreement",
    "judge_faithfulness",
    "knn_precision_recall",
    "length_controlled_win_rate",
    "load_benchmark",
    "make_trainer",
    "mean_pairwise_cosine",
    "ngram_entropy",
    "plot_data",
    "restrict_labels",
    "score_generative",
    "score_predictions",
    "self_bleu",
    "tokenize",
    "train_and_score",
    "vendi_score",
    "vocabulary_size",
    "wilson_interval",
]
