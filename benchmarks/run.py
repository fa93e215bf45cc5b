"""Accuracy and speed of the student against its teacher and the usual alternatives, side by side.

    python benchmarks/run.py --run-dir runs/sst2_shared            # full run (about 26 minutes on 2 cores)
    python benchmarks/run.py --smoke --student DIR --out /tmp/bench  # seconds: checks that every path still runs

Each model is loaded and measured in its own worker process (clean load time and memory, fixed thread count).
Writes `RESULTS.md`, `results.json` and `speed_accuracy.png` to `--out` (default: `benchmarks/`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from hf_sparse_distill.results import STAGES, DistillationResults, Stage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TRANSFORMERS = {"teacher", "roberta_large", "distilbert"}
CONTESTANTS = [
    "student_direct",
    "student_fast_pipeline",
    "student_pipeline",
    "student_remote_code",
    "student_int8",
    "student_small",
    "teacher",
    "distilbert",
    "roberta_large",
    "fasttext",
    "tfidf",
]


def build(name: str, args: argparse.Namespace):
    import contestants as c
    from measure import sst2_split

    teacher_dir = str(Path(args.teacher))
    if name == "student_direct":
        return c.student_direct(args.student)
    if name == "student_pipeline":
        return c.student_pipeline(args.student, fast=False)
    if name == "student_fast_pipeline":
        return c.student_pipeline(args.student, fast=True)
    if name == "student_remote_code":
        return c.student_remote_code(args.student)
    if name == "student_int8":
        return c.student_direct(args.int8, "student, int8 table (direct API)")
    if name.startswith("student_small"):
        index = int(name.rsplit("_", 1)[1])
        return c.student_direct(args.small[index], f"student, {args.small_label[index]} (direct API)")
    if name == "teacher":
        return c.transformer(teacher_dir, None, teacher_dir)
    if name in ("roberta_large", "distilbert"):
        return c.transformer(None, name.replace("_", "-"), teacher_dir)
    texts, labels = sst2_split("train")
    if name == "fasttext":
        return c.fasttext_classifier(texts, labels)
    if name == "tfidf":
        return c.tfidf_logistic_regression(texts, labels)
    raise ValueError(name)


HEAD_TO_HEAD = "head_to_head"


def head_to_head(args: argparse.Namespace) -> dict:
    """Measure fastText and every student (direct API) in one process, in turns (see `interleaved_throughput`):
    the ratio of their SST-2 texts/s at batch 256 does not depend on how fast the shared machine runs that minute."""
    from measure import interleaved_throughput, sst2_split

    names = [n for n in args.head_to_head.split(",") if n]
    contestants = [build(name, args) for name in names]
    for contestant in contestants:
        if "state" in contestant.extra:  # pipelines: batch size per call
            contestant.extra["state"]["batch_size"] = 256
    texts = sst2_split("dev")[0][: args.sst_texts]
    medians = interleaved_throughput({c.name: c.predict for c in contestants}, texts, 256, rounds=args.rounds)
    return {"threads": args.threads, "rounds": args.rounds, "sst2_b256_median": medians}


def worker(args: argparse.Namespace) -> dict:
    """Load one contestant and measure it; runs in its own process."""
    import torch

    torch.set_num_threads(args.threads)
    if args.worker == HEAD_TO_HEAD:
        return head_to_head(args)
    from measure import batches_per_second, long_reviews, peak_rss_mb, rss_mb, sst2_split, throughput

    before = rss_mb()
    contestant = build(args.worker, args)
    result = {
        "name": contestant.name,
        "threads": args.threads,
        "load_s": round(contestant.load_seconds, 3),
        "disk_mb": round(contestant.disk_bytes / 2**20, 2),
        "ram_mb": round(rss_mb() - before, 1),
        "train_s": contestant.train_seconds,
        "note": contestant.note,
        "throughput": {},
        "model_only": {},
    }
    dev_texts, dev_labels = sst2_split("dev")
    texts = {"sst2": dev_texts[: args.sst_texts], "long": long_reviews(args.long_texts, args.long_words)}
    big = 32 if args.worker in TRANSFORMERS else 256
    for batch_size in (1, big):
        if "state" in contestant.extra:
            contestant.extra["state"]["batch_size"] = batch_size
        for key, items in texts.items():
            seconds = args.seconds if (batch_size == 1 or args.worker not in TRANSFORMERS) else args.seconds * 2
            speed = throughput(contestant.predict, items, batch_size, min_seconds=seconds, warmup_batches=1)
            result["throughput"][f"{key}_b{batch_size}"] = round(speed, 2)
            if contestant.predict_pretokenized is not None:
                chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
                batches = [contestant.tokenize(chunk) for chunk in chunks]
                speed = batches_per_second(
                    contestant.predict_pretokenized,
                    batches,
                    [len(c) for c in chunks],
                    min_seconds=seconds,
                    warmup_batches=1,
                )
                result["model_only"][f"{key}_b{batch_size}"] = round(speed, 2)
    if args.worker not in ("roberta_large", "distilbert"):
        predictions = []
        for start in range(0, len(dev_texts), big):
            predictions.extend(contestant.predict(dev_texts[start : start + big]).tolist())
        result["accuracy"] = sum(p == y for p, y in zip(predictions, dev_labels)) / len(dev_labels)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def model2vec_rows(path: Path) -> list[dict]:
    """model2vec's figures as measured by `model2vec_peer.py` (its own venv: model2vec pins an older transformers),
    same machine, batch 256, 2 threads, tokenization included; only SST-2 at batch 256 is measured there."""
    if not path.exists():
        return []
    peer = json.loads(path.read_text())
    if "results" in peer:  # an earlier results.json of this benchmark: its model2vec rows, as measured then
        carried = [dict(r) for r in peer["results"] if r["name"].startswith("model2vec")]
        for row in carried:
            if "carried over" not in row["note"]:
                row["note"] += f"; carried over from the benchmark run of {peer['date']}"
        return carried
    rows = []
    for label, entry in (("float32", peer), ("int8", peer.get("int8"))):
        if entry:
            rows.append({
                "name": f"model2vec {peer['model2vec_version']} classifier ({label})", "threads": 2,
                "load_s": float("nan"), "disk_mb": round(entry["disk_mb"], 2), "ram_mb": float("nan"),
                "train_s": round(peer["seconds"]["distill"] + peer["seconds"]["train"], 1),
                "note": "from benchmarks/model2vec_peer.py (own venv), trained on the same teacher labels",
                "throughput": {"sst2_b256": round(entry["texts_per_s"], 2)}, "model_only": {},
                "accuracy": entry["accuracy_dev"], "peak_rss_mb": float("nan"),
            })  # fmt: skip
    return rows


def run_worker(name: str, threads: int, args: argparse.Namespace) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--threads",
        str(threads),
        "--student",
        args.student,
        "--teacher",
        args.teacher,
        "--seconds",
        str(args.seconds),
        "--sst-texts",
        str(args.sst_texts),
        "--long-texts",
        str(args.long_texts),
        "--long-words",
        str(args.long_words),
        "--rounds",
        str(args.rounds),
        "--head-to-head",
        args.head_to_head,
    ]
    command += ["--int8", args.int8] if args.int8 else []
    for folder, label in zip(args.small, args.small_label):
        command += ["--small", folder, "--small-label", label]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(x: float | None) -> str:
    if x is None or x != x:  # missing or NaN
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}" if x >= 1 else f"{x:.2f}"


def student_line(args: argparse.Namespace, run: DistillationResults | None) -> str:
    """Which student this report measured."""
    if run is None:
        return f"Student measured: `{args.student}` (no distillation results given)."
    stage = Stage(run.student_stage).display_name
    return (
        f"Student measured: `{args.student}`, the {stage} student of that run ({run.report_split} accuracy "
        f"{100 * run.student.accuracy:.2f}, {100 * run.retention:.1f} % of the teacher)."
    )


def report(
    results: list[dict], head: dict | None, run: DistillationResults | None, args: argparse.Namespace, machine: str
) -> str:
    threads = sorted({r["threads"] for r in results})
    lines = [
        "# Benchmark results",
        "",
        f"Generated {datetime.date.today().isoformat()} by `python benchmarks/run.py"
        f"{' --run-dir ' + args.run_dir if args.run_dir else ''}"
        f"{' --int8 ' + args.int8 if args.int8 else ''}"
        + "".join(f" --small {d} --small-label {label!r}" for d, label in zip(args.small, args.small_label))
        + (f" --rounds {head['rounds']}" if head else "")
        + f"` on: {machine}.",
        student_line(args, run),
        "",
        "Throughput is texts per second **with tokenization** (model alone in parentheses where it can be "
        f"separated); SST-2 = the 872 dev sentences, long = IMDB test reviews cut to {args.long_words} words. Transformers "
        "run at batch 32 (the paper's batch size) instead of 256: on a CPU a bigger batch does not make them "
        "faster and one batch of 256 long reviews takes minutes. Random-weight models are the paper's reference "
        "shapes; their speed does not depend on the weights.",
        "",
    ]
    for t in threads:
        lines += [
            f"## Throughput, {t} thread{'s' if t > 1 else ''}",
            "",
            "| model | SST-2, batch 1 | SST-2, batch 256/32 | long, batch 1 | long, batch 256/32 |",
            "|---|---|---|---|---|",
        ]
        for r in (r for r in results if r["threads"] == t):
            cells = []
            for key in ("sst2_b1", "sst2_b{}", "long_b1", "long_b{}"):
                big = 32 if any(k.endswith("_b32") for k in r["throughput"]) else 256
                key = key.format(big)
                cell = _fmt(r["throughput"].get(key))
                if key in r["model_only"]:
                    cell += f" ({_fmt(r['model_only'][key])})"
                cells.append(cell)
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    best = max(threads)
    by_name = {r["name"]: r for r in results if r["threads"] == best}
    lines += [
        "## Accuracy (SST-2 dev) and cost",
        "",
        "| model | accuracy | disk (MB) | RAM after load (MB) | peak RSS (MB) | load (s) | training (s) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        if run is not None and stage.value in run.stages:
            train = run.timings_s.get(f"train_{stage.value}")
            accuracy = run.stages[stage.value].accuracy
            lines.append(
                f"| student, {stage.display_name} | {100 * accuracy:.2f} | | | | | {_fmt(train)} | from `{args.run_dir}/results.json` |"
            )
    for r in by_name.values():
        acc = f"{100 * r['accuracy']:.2f}" if "accuracy" in r else "–"
        lines.append(
            f"| {r['name']} | {acc} | {_fmt(r['disk_mb'])} | {_fmt(r['ram_mb'])} | {_fmt(r['peak_rss_mb'])} | "
            f"{_fmt(r['load_s'])} | {_fmt(r['train_s'])} | {r['note']} |"
        )
    lines.append("")
    if head:
        medians = head["sst2_b256_median"]
        fasttext = next(v for name, v in medians.items() if name.startswith("fastText"))
        lines += [
            f"## Head to head with fastText ({head['threads']} thread(s), SST-2 dev, batch 256)",
            "",
            f"Measured in one process, in turns: each of {head['rounds']} rounds runs every model once over the dev "
            "sentences, starting one model further along each round; medians. The sections above measure each model alone in its own process for a few seconds, "
            "and this machine's speed drifts by tens of percent from minute to minute, so only these turns compare "
            "two models fairly.",
            "",
            "| model | texts/s (median) | vs fastText |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {_fmt(v)} | {v / fasttext:.2f}× |" for name, v in medians.items()]
        lines.append("")
    lines += targets(by_name, head, run)
    return "\n".join(lines)


def targets(by_name: dict, head: dict | None, run: DistillationResults | None) -> list[str]:
    """The issue's targets, each with the measured figures and whether it is met (speed against fastText from the
    head-to-head when there is one)."""

    def get(prefix: str) -> dict | None:
        return next((r for name, r in by_name.items() if name.startswith(prefix)), None)

    student, teacher, large = get("student (direct"), get("teacher"), get("roberta-large")
    fast, stock = get("student (batched pipeline"), get("student (stock pipeline")
    ft, tfidf = get("fastText"), get("TF-IDF")
    lines = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]

    def best(r: dict, key: str) -> float:
        return max(v for k, v in r["throughput"].items() if k.startswith(key))

    if student and teacher:
        ratio = best(student, "sst2") / best(teacher, "sst2")
        lines.append(
            f"| student ≥ 100× teacher (SST-2, best batch) | {ratio:,.0f}× | {'yes' if ratio >= 100 else 'no'} |"
        )
    if student and large:
        ratio = best(student, "sst2") / best(large, "sst2")
        ratio_long = best(student, "long") / best(large, "long")
        ok = ratio >= 1000 and ratio_long >= 1000
        lines.append(
            f"| student ≥ 1000× RoBERTa-Large-shaped | SST-2 {ratio:,.0f}×, long {ratio_long:,.0f}× | {'yes' if ok else 'no'} |"
        )
    if student:
        speed = best(student, "sst2")
        lines.append(f"| ≥ 20,000 texts/s on SST-2 sentences | {speed:,.0f} | {'yes' if speed >= 20000 else 'no'} |")
    if student and stock and fast:
        for r in (stock, fast):
            share = best(r, "sst2") / best(student, "sst2")
            lines.append(
                f"| {r['name']} ≥ 50% of direct API | {100 * share:.0f}% | {'yes' if share >= 0.5 else 'no'} |"
            )
    accuracy = run.student.accuracy if run is not None else (student or {}).get("accuracy")
    for r in (ft, tfidf):
        if r and accuracy is not None:
            lines.append(
                f"| student beats {r['name']} | {100 * accuracy:.2f} vs {100 * r['accuracy']:.2f} | "
                f"{'yes' if accuracy > r['accuracy'] else 'no'} |"
            )
    remote = get("student (remote code")
    medians = head["sst2_b256_median"] if head else {}
    if student and remote:
        share = remote["throughput"]["sst2_b256"] / student["throughput"]["sst2_b256"]
        if remote["name"] in medians and student["name"] in medians:
            share = medians[remote["name"]] / medians[student["name"]]
        lines.append(
            f"| remote-code pipeline ≥ 80% of direct API (SST-2, b256) | {100 * share:.0f}% | {'yes' if share >= 0.8 else 'no'} |"
        )
    compressed = [r for name, r in by_name.items() if name.startswith("student, ")]
    for r in [student, *compressed] if student and ft else []:
        ours, theirs = r["throughput"]["sst2_b256"], ft["throughput"]["sst2_b256"]
        if r["name"] in medians and ft["name"] in medians:
            ours, theirs = medians[r["name"]], medians[ft["name"]]
        ok = ours >= theirs and r["accuracy"] > ft["accuracy"]
        lines.append(
            f"| {r['name']} ≥ fastText texts/s (SST-2, b256), more accurate | {ours:,.0f} vs {theirs:,.0f} texts/s, "
            f"{100 * r['accuracy']:.2f} vs {100 * ft['accuracy']:.2f} | {'yes' if ok else 'no'} |"
        )
    peer = [r for name, r in by_name.items() if name.startswith("model2vec")]
    for r in compressed:
        if student and r["disk_mb"] <= 100:
            drop = 100 * (student["accuracy"] - r["accuracy"])
            lines.append(
                f"| {r['name']}: ≤ 100 MB within 0.5 points of the student | {r['disk_mb']:,.1f} MB, {-drop:+.2f} points | {'yes' if drop <= 0.5 else 'no'} |"
            )
        for m in peer:
            if r["disk_mb"] <= m["disk_mb"] * 1.1:
                lines.append(
                    f"| {r['name']} beats {m['name']} at its size | {100 * r['accuracy']:.2f} ({r['disk_mb']:,.1f} MB) vs {100 * m['accuracy']:.2f} ({m['disk_mb']:,.1f} MB) | {'yes' if r['accuracy'] > m['accuracy'] else 'no'} |"
                )
    return lines + [""]


def plot(results: list[dict], run: DistillationResults | None, out: Path) -> None:
    from hf_sparse_distill.hub.plotting import speed_accuracy_plot

    threads = max(r["threads"] for r in results)
    points = []
    for r in results:
        if (
            r["threads"] == threads
            and "accuracy" in r
            and r["name"]
            in (
                "student (direct API)",
                "teacher MiniLM-L6 (float32)",
                "fastText (bigrams)",
                "TF-IDF + logistic regression",
            )
        ):
            speed = max(v for k, v in r["throughput"].items() if k.startswith("sst2"))
            points.append((r["name"], speed, r["accuracy"]))
    student = next((r for r in results if r["threads"] == threads and r["name"] == "student (direct API)"), None)
    if student and run is not None and "scratch" in run.stages:
        speed = max(v for k, v in student["throughput"].items() if k.startswith("sst2"))
        points.append(("DAN from scratch", speed, run.stages["scratch"].accuracy))
    if points:
        speed_accuracy_plot(points, out / "speed_accuracy.png", f"SST-2 dev, {threads} CPU thread(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="a finished `distill` output dir (student/, results.json)")
    parser.add_argument("--student", help="student folder (default: RUN_DIR/student)")
    parser.add_argument("--teacher", help="teacher folder (default: $HFSD_SHARED/teachers/minilm-l6-sst2)")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(CONTESTANTS))
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per throughput figure")
    parser.add_argument("--sst-texts", type=int, default=872)
    parser.add_argument("--long-texts", type=int, default=256)
    parser.add_argument("--long-words", type=int, default=300, help="words a long review is cut to")
    parser.add_argument("--rounds", type=int, default=30, help="rounds of the head-to-head with fastText")
    parser.add_argument("--head-to-head", default="", help=argparse.SUPPRESS)  # contestants of the head-to-head worker
    parser.add_argument("--smoke", action="store_true", help="tiny budgets, 1 thread: only checks that everything runs")
    parser.add_argument("--int8", help="a compressed student with the whole vocabulary in int8 (compress --dtype int8)")
    parser.add_argument(
        "--small",
        action="append",
        default=[],
        help="a smaller compressed student (repeatable; e.g. the smallest "
        "within 1 %% of the student on the selection split, the largest that fits the teacher's size)",
    )
    parser.add_argument(
        "--small-label", action="append", default=[], help="how the table names each --small student, in order"
    )
    parser.add_argument(
        "--model2vec", default="runs/peer_m2v/results.json",
        help="results of model2vec_peer.py, or an earlier results.json of this benchmark (its model2vec rows)",
    )  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md and the plot from results.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from measure import shared_dir

    args.teacher = args.teacher or str(shared_dir() / "teachers" / "minilm-l6-sst2")
    if args.worker:
        args.threads = int(args.threads)
        print(json.dumps(worker(args)))
        return
    if args.smoke:
        args.threads, args.seconds, args.sst_texts, args.long_texts, args.rounds = "1", 0.05, 16, 2, 2
        args.long_words = 20
    if not args.student:
        if not args.run_dir:
            parser.error("give --run-dir or --student")
        args.student = str(Path(args.run_dir) / "student")
    if len(args.small_label) != len(args.small):
        parser.error("give one --small-label per --small")
    run = DistillationResults.load(Path(args.run_dir) / "results.json") if args.run_dir else None
    out = Path(args.out)
    if args.report_only:  # the measurements of an earlier run (e.g. after a change of the report's wording)
        saved = json.loads((out / "results.json").read_text())
        write_report(saved["results"], saved.get("head_to_head"), run, args, saved["machine"], out)
        return
    names = args.only.split(",") if args.only else CONTESTANTS
    names = [n for n in names if not (n == "student_int8" and not args.int8)]
    if "student_small" in names:  # one contestant per --small student
        at = names.index("student_small")
        names[at : at + 1] = [f"student_small_{i}" for i in range(len(args.small))]
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for name in names:
            print(f"measuring {name} with {threads} thread(s)", file=sys.stderr, flush=True)
            results.append(run_worker(name, threads, args))
    head = None
    if {"fasttext", "student_direct"} <= set(names):
        direct = ("fasttext", "student_direct", "student_fast_pipeline", "student_remote_code", "student_int8")
        args.head_to_head = ",".join(n for n in names if n in direct or n.startswith("student_small_"))
        threads = max(int(t) for t in args.threads.split(","))
        print(f"measuring {args.head_to_head} in turns with {threads} thread(s)", file=sys.stderr, flush=True)
        head = run_worker(HEAD_TO_HEAD, threads, args)
    results += model2vec_rows(Path(args.model2vec))
    from measure import machine_description

    out.mkdir(parents=True, exist_ok=True)
    machine = machine_description().split(", torch")[0] + f", torch {__import__('torch').__version__}"
    (out / "results.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "date": datetime.date.today().isoformat(),
                "results": results,
                "head_to_head": head,
                "run": run.to_dict() if run else {},
            },
            indent=2,
        )
    )
    write_report(results, head, run, args, machine, out)  # after results.json: a report error loses no measurement


def write_report(
    results: list[dict], head: dict | None, run: DistillationResults | None, args, machine: str, out: Path
) -> None:
    """RESULTS.md and the speed-vs-accuracy plot of `results` (and of the head-to-head with fastText, if any)."""
    text = report(results, head, run, args, machine)
    (out / "RESULTS.md").write_text(text + "\n")
    plot(results, run, out)
    print(text)


if __name__ == "__main__":
    main()
