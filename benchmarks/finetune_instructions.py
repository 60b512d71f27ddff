"""Does SmolLM2-135M fine-tuned on an instruction recipe's records answer held-out requests better than before?

The records: `synthloom run examples/instructions.yaml` (instruction /
response pairs grown over a concept tree by the embedded model), curated.
The held-out prompts: examples/data/instruction_heldout.jsonl, 24 everyday
requests written for this figure (none of them is a training instruction,
checked below; they are not drawn from a public benchmark).

Arms, on the same prompts, greedy answers:

- `base`: SmolLM2-135M-Instruct as shipped (deterministic: answered once);
- `finetuned`: LoRA SFT on the records (per seed: the order of the records
  and the LoRA initialisation).

The judge (`--judge`, default the embedded SmolLM2-135M-Instruct through
llama.cpp) compares the fine-tuned answer with the base answer to each
prompt in both orders (evaluate/pairwise.py): the win rate of the
fine-tuned model (a tie or a split verdict counts one half) with a bootstrap
interval over the prompts, and the judge's position consistency (the share
of prompts whose two verdicts agree once the order is undone). A 135M
judge is weak and judges its own family: low position consistency means the
verdicts are mostly about the order, not the answers.

MET (written before the run): the mean win rate over seeds is above 0.5 with
its 95% t-interval over seeds above 0.5, and the judge's position
consistency is at least 0.5 (else the win rate is reported as not
informative, whatever it is).

    python benchmarks/finetune_instructions.py --synthetic /tmp/ft-instr-run --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from synthloom.evaluate.judge import Judge  # noqa: E402
from synthloom.evaluate.pairwise import compare_answers  # noqa: E402
from synthloom.evaluate.seeds import mean_interval, write_per_seed  # noqa: E402
from synthloom.llm import LlamaCppConfig  # noqa: E402
from synthloom.records import read_records, read_rows  # noqa: E402
from synthloom.train.lm import LMSettings, train_lm  # noqa: E402
from synthloom.train.lm_models import load_model  # noqa: E402
from synthloom.train.lm_use import conversation, generate_answers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=Path, required=True, help="the instructions run directory (or its curated.parquet)")
    ap.add_argument("--prompts", type=Path, default=ROOT / "examples" / "data" / "instruction_heldout.jsonl")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the trainer's, 2e-4 with LoRA)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--name", default="finetune_instructions")
    ap.add_argument("--out", type=Path, default=Path("/tmp/synthloom-finetune-instructions"))
    args = ap.parse_args()
    os.environ.setdefault("SYNTHLOOM_THREADS", "1")

    source = args.synthetic / "curated.parquet" if args.synthetic.is_dir() else args.synthetic
    records = read_records(source)
    rows = []
    for r in records:
        convo = conversation(r)
        rows.append({"prompt": convo[:-1], "completion": convo[-1:], "weight": r.weight})
    trained = {str(row["prompt"][-1]["content"]).strip().lower() for row in rows}
    prompts = [str(r["prompt"]) for r in read_rows(str(args.prompts))]
    leaked = [p for p in prompts if p.strip().lower() in trained]
    if leaked:
        raise SystemExit(f"held-out prompts also in the training records: {leaked[:3]}")
    asked = [[{"role": "user", "content": p}] for p in prompts]
    print(f"{len(rows)} training records from {source}; {len(prompts)} held-out prompts; seeds {args.seeds}", file=sys.stderr)

    started = time.perf_counter()
    load = {"start": [round(x, 2) for x in os.getloadavg()]}
    model, tokenizer = load_model(None)
    base = generate_answers(model, tokenizer, asked, args.max_new_tokens)
    del model
    judge = Judge(LlamaCppConfig(), args.out / "judge-cache.sqlite")
    per_seed, detail = {}, {}
    for seed in args.seeds:
        settings = LMSettings(epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length, seed=seed, learning_rate=args.lr)
        result = train_lm(rows, args.out / f"seed{seed}", settings, data_name=f"instructions run {args.synthetic}")
        tuned_model, tuned_tok = load_model(str(result.model_dir))
        tuned = generate_answers(tuned_model, tuned_tok, asked, args.max_new_tokens)
        del tuned_model
        judged = compare_answers(prompts, tuned, base, judge, seed=seed)
        per_seed[seed] = {"win_rate": judged["win_rate"], "position_consistency": judged["position_consistency"],
                          "wins": judged["wins"], "ties": judged["ties"], "losses": judged["losses"]}
        detail[f"seed{seed}"] = {"steps": result.steps, "loss": [result.first_loss, result.last_loss], "train_s": round(result.seconds, 1),
                                 "win_rate_ci": judged["win_rate_ci"], "judged": judged["judged"],
                                 "length_controlled_win_rate": judged["length_controlled_win_rate"],
                                 "identical_answers": sum(a == b for a, b in zip(tuned, base)),
                                 "examples": [{"prompt": p, "base": b, "finetuned": t} for p, b, t in list(zip(prompts, base, tuned))[:4]]}
        print(json.dumps({"seed": seed, **per_seed[seed], **{k: v for k, v in detail[f"seed{seed}"].items() if k != "examples"}}),
              file=sys.stderr)
        load["end"] = [round(x, 2) for x in os.getloadavg()]
        # written after every seed, so a run stopped early keeps the seeds it finished
        path = write_per_seed(ROOT / "benchmarks" / "results" / "seeds" / f"{args.name}.json", per_seed, metric="win_rate",
                              settings={**{k: str(v) for k, v in vars(args).items()}, "records": len(rows), "prompts": len(prompts),
                                        "judge": "SmolLM2-135M-Instruct (llama.cpp, embedded)", "load": load, "detail": detail})

    win = mean_interval([s["win_rate"] for s in per_seed.values()])
    consistency = mean_interval([s["position_consistency"] or 0.0 for s in per_seed.values()])
    print(f"\nInstructions: SmolLM2-135M-Instruct, LoRA SFT on {len(rows)} records ({args.epochs:g} epochs, learning rate "
          f"{settings.lr():g}) vs the base model, {len(prompts)} held-out prompts, judged in both orders by SmolLM2-135M (weak)")
    print("| seed | steps | loss first -> last | win rate [95% CI over prompts] | wins / ties / losses | position consistency | identical answers |")
    print("|---|---|---|---|---|---|---|")
    for seed, s in per_seed.items():
        d = detail[f"seed{seed}"]
        print(f"| {seed} | {d['steps']} | {d['loss'][0]:.2f} -> {d['loss'][1]:.2f} | {s['win_rate']:.3f} [{d['win_rate_ci'][0]:.3f}, "
              f"{d['win_rate_ci'][1]:.3f}] | {s['wins']:.2f} / {s['ties']:.2f} / {s['losses']:.2f} | "
              f"{s['position_consistency'] if s['position_consistency'] is None else round(s['position_consistency'], 3)} | "
              f"{d['identical_answers']}/{len(prompts)} |")
    print(f"| mean over seeds | | | {win.format()} | | {consistency.format()} | |")
    met = win.low > 0.5 and consistency.mean >= 0.5
    print(f"\nMET: {'yes' if met else 'no'} (win rate {win.format()}: needs the interval above 0.5; position consistency "
          f"{consistency.mean:.3f}: needs >= 0.5)")
    print(f"wall {time.perf_counter() - started:.0f} s; load average {load['start']} -> {load['end']}; per-seed numbers: {path}")


if __name__ == "__main__":
    main()
