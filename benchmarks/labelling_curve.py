"""Student accuracy on the report split against the minutes the teacher spends labelling, for several recipes.

    python benchmarks/labelling_curve.py                               # ~1.5 h on 2 cores with a warm logit cache
    python benchmarks/labelling_curve.py --smoke --out /tmp/curve      # tiny budgets: checks that the script runs

For each recipe the teacher's speed on each unlabeled source is measured first (texts per second on a random
sample, this machine, the recipe's teacher settings). A labelling budget of B minutes then buys, source after
source in the recipe's order, as many texts as fit (the SST-2 train texts are always labelled, and counted; a source
that repeats an earlier one further, the same file and settings with a higher `max_rows`, pays only for the texts
past those the earlier one took: they are labelled once); the
recipe is distilled on that corpus (`--stages kd,finetune`, choices on the selection split) and its kept student is
measured on dev, which no choice looked at. Teacher logits come from the shared cache, so a point costs only its
vocabulary and training time. Writes `labelling_curve.json`, `LABELLING_CURVE.md` and `labelling_curve.png`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import random
import shutil
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES = {"quick recipe (0.1 text mix)": "sst2_shared", "full recipe": "sst2_shared_full"}


def source_rates(recipe, sample: int, measured: dict[str, dict]) -> list[dict]:
    """Texts per second of the teacher on each data source of the recipe (train first, then unlabeled). A source
    that `measured` holds (the same source and teacher in another recipe) keeps its measurement, so equal sources
    buy equal texts in every recipe."""
    from hf_sparse_distill.distillation.data import load_source
    from hf_sparse_distill.distillation.teacher import Teacher

    teacher = None
    rows = []
    for name, source in [("train", recipe.data.train)] + [
        (f"unlabeled[{i}]", s) for i, s in enumerate(recipe.data.unlabeled)
    ]:
        settings = dataclasses.asdict(source)
        key = json.dumps({"teacher": dataclasses.asdict(recipe.teacher), "source": settings}, sort_keys=True)
        if key not in measured:
            if teacher is None:
                teacher = Teacher(recipe.teacher)
                teacher.predict(["warm up"] * 8)
            label2id = {label: i for i, label in teacher.id2label.items()}
            texts = load_source(source, label2id if name == "train" else None).texts
            picked = random.Random(0).sample(texts, min(sample, len(texts)))
            start = time.perf_counter()
            teacher.predict(picked)
            rate = len(picked) / (time.perf_counter() - start)
            measured[key] = {"texts": len(texts), "texts_per_s": round(rate, 1)}
        split = "clauses" if source.split_clauses else "sentences" if source.split_sentences else "rows"
        rows.append({"source": name, "path": source.path, "split": split, **measured[key],
                     "stream": {k: v for k, v in settings.items() if k != "max_rows"}})  # fmt: skip
    return rows


def budget_overrides(rates: list[dict], minutes: float) -> tuple[list[str], float]:
    """The `--set` override that keeps, in recipe order, the unlabeled sources `minutes` of labelling buy, each
    capped to what it buys; and the minutes actually spent (the train texts always count). Sources of the same
    `stream` read the same texts first to last: a later one starts with the texts an earlier one took, which cost
    nothing again; a source that buys no new text is left out. A source the budget does not buy whole ends the
    purchase: what is left of the budget (less than one of its texts) buys nothing further on."""
    spent = rates[0]["texts"] / rates[0]["texts_per_s"]
    kept, taken = [], {}
    for row in rates[1:]:
        stream = json.dumps(row["stream"], sort_keys=True)
        already = min(taken.get(stream, 0), row["texts"])
        new = int(max(0.0, min(row["texts"] - already, (minutes * 60 - spent) * row["texts_per_s"])))
        if new:
            kept.append({**row["stream"], "max_rows": already + new})
            taken[stream] = max(taken.get(stream, 0), already + new)
            spent += new / row["texts_per_s"]
        if already + new < row["texts"]:
            break
    return [f"data.unlabeled={json.dumps(kept)}"], spent / 60


def training_key(recipe) -> str:
    """What decides the students of a point: the recipe without its output folder and without the stage settings
    that do not change what a stage learns. Points of equal keys train the same students."""
    from hf_sparse_distill.distillation.recipe import RUNTIME_ONLY_SETTINGS
    from hf_sparse_distill.results import Stage

    data = recipe.to_dict()
    del data["output_dir"]
    for stage in Stage:
        data[stage.value] = {k: v for k, v in data[stage.value].items() if k not in RUNTIME_ONLY_SETTINGS}
    return json.dumps(data, sort_keys=True)


def run_point(recipe_name: str, overrides: list[str], out_dir: Path, seed: int) -> dict:
    """Distil on the point's corpus (or read the results of the recipe's own run, for its whole corpus)."""
    from hf_sparse_distill.distillation import load_recipe, run_recipe
    from hf_sparse_distill.results import DistillationResults

    recipe = load_recipe(recipe_name, [*overrides, f"output_dir={out_dir}", f"seed={seed}", "speed_seconds=0"])
    start = time.perf_counter()
    own_run = Path(load_recipe(recipe_name).output_dir) / "results.json"
    if not overrides and seed == load_recipe(recipe_name).seed and own_run.exists():
        results = DistillationResults.load(own_run)
    else:
        results = run_recipe(recipe, ("kd", "finetune"), push=False)  # finished stages are reused
        for stage in ("kd", "finetune"):  # the kept students stay; their checkpoints take gigabytes
            shutil.rmtree(out_dir / stage / "checkpoints", ignore_errors=True)
    return {
        "kd_texts": results.data.kd_total,
        "report_accuracy": results.student.accuracy,
        "retention": results.retention,
        "selection_accuracy": results.selection[results.student_stage].accuracy,
        "kd_report_accuracy": results.stages["kd"].accuracy,
        "student_stage": results.student_stage,
        "teacher_report_accuracy": results.teacher.metrics.accuracy,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="5,10,20,40,80", help="labelling minutes, comma-separated")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--sample", type=int, default=2048, help="texts per source for the speed measurement")
    parser.add_argument("--work", default="runs/curve", help="where the runs of each point go")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--smoke", action="store_true", help="one tiny budget per recipe, few training steps")
    args = parser.parse_args()
    from hf_sparse_distill.distillation import load_recipe
    from hf_sparse_distill.speed import machine_description

    budgets = [0.05] if args.smoke else [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = ["kd.max_steps=20", "finetune.max_steps=10", "vocab.size=20000"] if args.smoke else []
    report = {"machine": machine_description(), "date": datetime.date.today().isoformat(), "recipes": {},
              "command": f"python benchmarks/labelling_curve.py --budgets {args.budgets} --seeds {args.seeds}"}  # fmt: skip
    # the teacher's speed on every source of every recipe first, back to back (same conditions for all)
    # measured once per work folder and kept: a resumed curve gives its points the same budgets
    rates_file = Path(args.work) / "source_rates.json"
    if rates_file.exists():
        all_rates = json.loads(rates_file.read_text())
    else:
        measured: dict[str, dict] = {}
        all_rates = {name: source_rates(load_recipe(name), 64 if args.smoke else args.sample, measured) for name in RECIPES.values()}  # fmt: skip
        rates_file.parent.mkdir(parents=True, exist_ok=True)
        rates_file.write_text(json.dumps(all_rates, indent=2))
    out = Path(args.out)
    trained: dict[str, tuple[str, dict]] = {}  # training key -> the recipe label and point that trained it
    for label, name in RECIPES.items():
        rates = all_rates[name]
        full_minutes = budget_overrides(rates, math.inf)[1]
        points = []
        for minutes in sorted(b for b in budgets if b < full_minutes) + [full_minutes]:
            overrides, spent = budget_overrides(rates, minutes) if minutes < full_minutes else ([], full_minutes)
            for seed in seeds:
                if not overrides and not extra and seed != load_recipe(name).seed:
                    continue  # the whole corpus is the recipe's own run: one seed (a full run takes hours)
                key = training_key(load_recipe(name, [*overrides, *extra, f"seed={seed}"]))
                if key in trained:  # the same texts and settings train the same students: measured once
                    by, point = trained[key]
                    point = {**point, "wall_s": 0.0} | ({"same_as": by} if by != label else {})
                else:
                    out_dir = Path(args.work) / name / f"{minutes:.0f}min-seed{seed}"
                    point = run_point(name, overrides + extra, out_dir, seed)
                    trained[key] = (label, point)
                points.append(
                    {"budget_minutes": round(minutes, 2), "labelling_minutes": round(spent, 2), "seed": seed, **point}
                )
                print(json.dumps({"recipe": label, **points[-1]}), flush=True)
                report["recipes"][label] = {"recipe": name, "source_rates": rates, "full_labelling_minutes": round(full_minutes, 1),
                                            "points": points}  # fmt: skip
                write_report(report, out)  # after every point: an interrupted curve keeps what it measured
            if args.smoke:
                break


def write_report(report: dict, out: Path) -> None:
    """Write the JSON, the markdown table and the plot of the points measured so far."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "labelling_curve.json").write_text(json.dumps(report, indent=2))
    (out / "LABELLING_CURVE.md").write_text(markdown(report))
    plot(report, out / "labelling_curve.png")


def markdown(report: dict) -> str:
    lines = [
        "# Student accuracy against teacher labelling time (SST-2)",
        "",
        f"Generated {report['date']} by `{report.get('command', 'python benchmarks/labelling_curve.py')}` on: "
        f"{report['machine']}.",
        "Accuracy of the kept student on SST-2 dev (872 sentences), which no choice looked at: checkpoints and KD vs "
        "KD+FT were chosen on the selection split (1,000 held-out SST train sentences). Labelling minutes are what "
        "the texts of the point cost the teacher at the measured speed of each source (texts a source repeats from an "
        "earlier one counted once). † The point of another recipe at this budget: the same texts and training settings "
        "train the same students, so they are trained once.",
        "",
        "| recipe | labelling minutes | KD texts | seed | dev accuracy | % of teacher | KD alone | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, entry in report["recipes"].items():
        for p in entry["points"]:
            lines.append(
                f"| {label} | {p['labelling_minutes']:.1f} | {p['kd_texts']:,} | {p['seed']} | "
                f"{100 * p['report_accuracy']:.2f} | {100 * p['retention']:.1f}% | {100 * p['kd_report_accuracy']:.2f} | "
                f"{p['student_stage']}{' †' if 'same_as' in p else ''} |"
            )
    lines += ["", "Mean dev accuracy over the seeds, by labelling budget (the whole corpus: the recipe's own run):", ""]
    labels = list(report["recipes"])
    lines += ["| budget (minutes) | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    means = {label: mean_by_budget(entry["points"]) for label, entry in report["recipes"].items()}
    for budget in sorted({b for m in means.values() for b in m}):
        cells = [f"{100 * means[label][budget][0]:.2f} (n = {means[label][budget][1]})" if budget in means[label]
                 else "–" for label in labels]  # fmt: skip
        lines.append(f"| {budget:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "Teacher speed per source (texts/s, this machine):", ""]
    for label, entry in report["recipes"].items():
        rates = ", ".join(
            f"{r['path'].split('/data/')[-1]} ({r['split']}) {r['texts_per_s']:.0f}" for r in entry["source_rates"]
        )
        lines.append(f"- {label}: {rates}")
    return "\n".join(lines) + "\n"


def mean_by_budget(points: list[dict]) -> dict[float, tuple[float, int]]:
    """Budget → (mean dev accuracy over the seeds, number of seeds)."""
    by_budget: dict[float, list[float]] = {}
    for p in points:
        by_budget.setdefault(p["budget_minutes"], []).append(p["report_accuracy"])
    return {b: (sum(v) / len(v), len(v)) for b, v in by_budget.items()}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, entry in report["recipes"].items():
        means = sorted(mean_by_budget(entry["points"]).items())
        (line,) = ax.plot([b for b, _ in means], [100 * m for _, (m, _) in means], "-", label=f"{label} (mean)")
        ax.plot([p["budget_minutes"] for p in entry["points"]], [100 * p["report_accuracy"] for p in entry["points"]],
                "o", color=line.get_color(), alpha=0.6)  # fmt: skip
    ax.set_xlabel("teacher labelling time (minutes, 2 CPU cores)")
    ax.set_ylabel("student accuracy, SST-2 dev (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
