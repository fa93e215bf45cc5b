"""How the distillation steps grow with the unlabeled corpus: wall time and peak resident memory (RSS) of each stage
(data, vocab, label, encode, train) for the same recipe on corpora of increasing size.

    python benchmarks/corpus_scale.py --texts 1000000,3000000,10000000 --out benchmarks   # hours on 2 cores
    python benchmarks/corpus_scale.py --texts 3000,6000 --reviews 2000 --train-rows 2000 --out /tmp/s --work /tmp/sw

The corpus: two clauses of IMDB reviews (`$HFSD_SHARED/data/imdb`, split as the recipes split them) drawn at random
and joined by a comma, so texts are distinct while their n-grams keep the statistics of real review text. The
teacher: a random-weight BERT of two layers, 64 wide, with the SST-2 teacher's WordPiece tokenizer, so labelling
costs little; the student: a 100k x 64 table, one KD epoch. Labeled data: SST-2 train and dev.

Each corpus size runs in a fresh process with a cold output folder and cache. Another process samples the memory
of the measured process and of its worker processes (the vocabulary counters): while workers run, their proportional set size (PSS:
pages shared between them counted once, from `smaps_rollup`, sampled less often as it costs more); otherwise the
process's resident set (RSS, from its kernel counters, every 50 ms) — in all and its anonymous part. Each stage's
peak is the highest sample between its start and the first sample after its end (so it includes what earlier
stages still hold). `peak_rss_mb` is the anonymous part: the memory the steps hold. The pages of the memory-mapped
files (corpus, ids, logits) that a stage has read are page cache the kernel takes back under memory pressure; the
peak with them is `peak_pss_with_file_pages_mb`. The training peak is also given without the table state (weights,
gradient and two Adam moments of the table: 4 x rows x dim x 4 bytes), which is the same at every corpus size.
Then the training step is measured again alone (`train_resumed`), in a fresh process that reads the earlier steps'
outputs from disk as a resumed run does: its own peak, without what the earlier steps left in the process.
Writes `CORPUS_SCALE.md` and `corpus_scale.json` (`{"runs": [{"texts", "peak_rss_mb": {STAGE}, "wall_s": {STAGE}}]}`).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STAGES = ("data", "vocab", "label", "encode", "train")
VOCAB_SIZE, EMBED_DIM = 100_000, 64


def _process_memory_kb(pid: int) -> tuple[int, int]:
    """Resident memory (kB) of one process from its kernel counters (`/proc/PID/status`, cheap to read): in all
    (anonymous, file and shared-memory pages), and its anonymous part."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, value = line.split(":", 1)
            if name in ("RssAnon", "RssFile", "RssShmem"):
                fields[name] = int(value.split()[0])
    return sum(fields.values()), fields["RssAnon"]


def _tree_memory_kb(root: psutil.Process, ignore: int | None = None) -> tuple[int, int, bool]:
    """Memory (kB) of `root` and its descendants (but process `ignore`): in all, its anonymous part (heap, not pages
    of files), and whether it is PSS (workers were running) rather than RSS.

    With worker processes (forked, so sharing pages with `root`), the proportional set size (PSS: pages shared
    between them counted once) from `smaps_rollup`; alone, its resident memory, which is then the same for its
    anonymous part (no other process shares its heap) and is read from counters instead of a walk of its page
    tables."""
    workers = [child for child in root.children(recursive=True) if child.pid != ignore]
    if not workers:
        return (*_process_memory_kb(root.pid), False)
    total = anonymous = 0
    for process in [root, *workers]:
        try:
            with open(f"/proc/{process.pid}/smaps_rollup") as f:
                for line in f:
                    name, value = line.split(":", 1)
                    if name == "Pss":
                        total += int(value.split()[0])
                    elif name == "Pss_Anon":
                        anonymous += int(value.split()[0])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # a worker that ended between listing and reading
    return total, anonymous, True


class MemorySampler:
    """Samples the memory of this process and its worker processes (see `_tree_memory_kb`) from a separate process
    (this script with `--sample`): in all, and its anonymous part. A sampling thread would share this process's
    interpreter lock and miss the peaks of long calls that hold it (the sorts of the de-duplication step); a
    process reads the kernel's counters while they run.

    Reading `smaps_rollup` walks the page tables of every mapping, so a sample of the workers' PSS costs more the
    more pages they map (sampling it every 50 ms throughout slowed training at 10M texts by a third on 2 cores,
    with gigabytes of corpus, ids and logits mapped). The sampler waits `overhead_ratio` times as long as its last
    sample took, and at least `interval` seconds, so it takes at most about 1 / (1 + overhead_ratio) of one core.
    `busy_s` is the time spent sampling; a sample is `(time.monotonic(), MB in all, MB anonymous, whether PSS)`.
    """

    def __init__(self, interval: float = 0.05, overhead_ratio: float = 20.0):
        self.interval, self.overhead_ratio = interval, overhead_ratio
        self._folder = tempfile.TemporaryDirectory(prefix="hfsd-memory-")
        self._path = Path(self._folder.name) / "samples.txt"
        self._process: subprocess.Popen | None = None
        self._offset, self._lines = 0, []  # read incrementally: polling does not parse the file again

    def __enter__(self) -> MemorySampler:
        self._path.touch()
        command = [sys.executable, __file__, "--sample", str(os.getpid()), str(self._path)]
        self._process = subprocess.Popen(
            [*command, str(self.interval), str(self.overhead_ratio)], stdout=subprocess.DEVNULL
        )  # its output is not the measured process's
        try:
            self.sample_after(time.monotonic())
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.wait()

    def _rows(self) -> list[list[str]]:
        """The whole lines written so far, split (a line still being written is left for the next call)."""
        with open(self._path, "rb") as f:
            f.seek(self._offset)
            text = f.read().decode()
        whole = text[: text.rfind("\n") + 1]
        self._offset += len(whole.encode())
        self._lines.extend(line.split() for line in whole.splitlines())
        return self._lines

    @property
    def samples(self) -> list[tuple[float, float, float, bool]]:
        """Every sample so far."""
        return [(float(t), float(total), float(anon), pss == "1") for t, total, anon, pss, _ in self._rows()]

    @property
    def busy_s(self) -> float:
        """Seconds the sampler spent reading the counters."""
        return sum(float(row[4]) for row in self._rows())

    def sample_after(self, moment: float, timeout: float = 60.0) -> float:
        """Wait for a sample taken after `moment` (`time.monotonic()`) and return its time; raise if the sampler
        stopped or none came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.samples
            if samples and samples[-1][0] > moment:
                return samples[-1][0]
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the memory sampler stopped sampling")
            time.sleep(0.01)

    def peak(self, start: float, end: float, anonymous: bool = True) -> float:
        """Highest memory (MB) sampled between `start` and `end` (`time.monotonic()` values): anonymous, or in all
        (with the pages of memory-mapped files the process has read)."""
        return max((s[2 if anonymous else 1] for s in self.samples if start <= s[0] <= end), default=float("nan"))


def sample_memory(pid: int, path: Path, interval: float, overhead_ratio: float) -> None:
    """The sampler process of `MemorySampler`: append a line per sample of process `pid` and its workers (this
    process left out) to `path` until `pid` ends or this process is stopped."""
    root = psutil.Process(pid)
    with open(path, "a") as out:
        while root.is_running():
            start = time.monotonic()
            try:
                total, anonymous, pss = _tree_memory_kb(root, ignore=os.getpid())
            except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError, KeyError):
                return  # ended (a killed process stays a zombie, without memory counters, until it is waited for)
            took = time.monotonic() - start
            out.write(f"{start + took} {total / 1024} {anonymous / 1024} {int(pss)} {took}\n")
            out.flush()
            time.sleep(max(interval, overhead_ratio * took))


def clause_pool(work: Path, reviews: int | None = None) -> Path:
    """The clauses of the shared IMDB reviews (3-15 words, as `imdb_shared` cuts them; the first `reviews` of each
    file, default all), one per line, made once."""
    from itertools import islice

    from measure import shared_dir

    from hf_sparse_distill.distillation.data import split_clauses, split_sentences

    pool = work / f"imdb_clauses-{reviews or 'all'}.txt"
    if pool.exists():
        return pool
    work.mkdir(parents=True, exist_ok=True)
    with open(pool.with_suffix(".tmp"), "w", encoding="utf-8") as out:
        for name in ("train", "test", "unsup"):
            with gzip.open(shared_dir() / "data" / "imdb" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
                for line in islice(f, reviews):
                    for sentence in split_sentences(json.loads(line)["text"]):
                        for clause in split_clauses(sentence):
                            if 3 <= len(clause.split()) <= 15 and "\n" not in clause:
                                out.write(clause + "\n")
    os.replace(pool.with_suffix(".tmp"), pool)
    return pool


def write_corpus(pool: Path, count: int, path: Path, seed: int = 0) -> None:
    """`count` texts of two random clauses of the pool joined by a comma, as JSONL (written in blocks)."""
    if path.exists():
        return
    clauses = pool.read_text(encoding="utf-8").splitlines()
    rng = np.random.default_rng(seed)
    with open(path.with_suffix(".tmp"), "w", encoding="utf-8") as out:
        for start in range(0, count, 100_000):
            pairs = rng.integers(0, len(clauses), size=(min(100_000, count - start), 2))
            out.writelines(json.dumps({"text": f"{clauses[a]}, {clauses[b]}"}) + "\n" for a, b in pairs)
    os.replace(path.with_suffix(".tmp"), path)


def tiny_teacher(folder: Path) -> Path:
    """A random-weight 2-layer, 64-wide BERT classifier with the SST-2 teacher's tokenizer and labels."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from measure import shared_dir
    from transformers import AutoConfig, AutoTokenizer, BertConfig, BertForSequenceClassification

    source = shared_dir() / "teachers" / "minilm-l6-sst2"
    reference = AutoConfig.from_pretrained(source)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=reference.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, id2label=reference.id2label, label2id=reference.label2id,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def recipe_file(work: Path, count: int, corpus: Path, teacher: Path, train_rows: int | None = None) -> Path:
    """The recipe of one corpus size: its own output folder and (cold) logit cache."""
    from measure import shared_dir

    data = shared_dir() / "data" / "sst2"
    recipe = {
        "task": "corpus_scale",
        "output_dir": str(work / f"run-{count}"),
        "cache_dir": str(work / f"cache-{count}"),
        "teacher": {"model": str(teacher), "dtype": "float32", "max_length": 64, "batch_size": 256},
        "data": {
            "train": {"path": str(data / "train.jsonl"), "max_rows": train_rows},
            "dev": {"path": str(data / "dev.jsonl")},
            "select_size": 1000,
            "unlabeled": [{"path": str(corpus), "label_column": None}],
        },
        "vocab": {"size": VOCAB_SIZE, "token_pattern": r"(?u)n't|\b\w+\b|[!?]"},
        "student": {"embed_dim": EMBED_DIM, "hidden_dims": [EMBED_DIM], "feature_dropout": 0.0},
        "kd": {"epochs": 1, "batch_size": 512, "learning_rate": 1e-3, "eval_steps": 1_000_000},
        "finetune": {"enabled": False},
        "scratch": {"enabled": False},
    }
    path = work / f"recipe-{count}.json"
    path.write_text(json.dumps(recipe, indent=2))
    return path


def measure(recipe: Path, resumed: str | None = None) -> dict:
    """Run the stages of `recipe` one after the other in this process; wall time and peak RSS of each. With
    `resumed` (a stage), the stages before it are read back from the run folder first, unmeasured (as a resumed
    `distill` reads them), and only that stage is measured: its own peak, without what earlier stages left."""
    from hf_sparse_distill.distillation import Distiller, load_recipe
    from hf_sparse_distill.results import Stage

    distiller = Distiller(load_recipe(str(recipe)))
    steps = {
        "data": distiller.data,
        "vocab": distiller.tokenizer,
        "label": lambda: [distiller.teacher_logits(split) for split in ("kd", "select", "dev")],
        "encode": lambda: distiller.stage_inputs(Stage.KD),
        "train": lambda: distiller.train(Stage.KD),
    }
    first = STAGES.index(resumed) if resumed else 0
    for stage in STAGES[:first]:
        steps[stage]()
    wall, peak, peak_all = {}, {}, {}
    with MemorySampler() as sampler:
        for stage in STAGES[first:]:
            start = time.monotonic()
            steps[stage]()
            end = time.monotonic()
            after = sampler.sample_after(end)  # one more sample after the stage
            wall[stage] = round(end - start, 2)
            peak[stage] = round(sampler.peak(start, after), 1)
            peak_all[stage] = round(sampler.peak(start, after, anonymous=False), 1)
            print(
                f"{stage}: {wall[stage]:.1f} s, peak memory {peak[stage]:,.0f} MB ({peak_all[stage]:,.0f} MB with "
                "file pages)", file=sys.stderr, flush=True,
            )  # fmt: skip
    table_state_mb = 4 * distiller.tokenizer().vocab_size * EMBED_DIM * 4 / 2**20
    return {
        "texts": None,
        "kd_texts": distiller.data().corpus.report.kd_total,
        "peak_rss_mb": peak,
        "peak_pss_with_file_pages_mb": peak_all,
        "wall_s": wall,
        "train_peak_rss_without_table_state_mb": round(peak["train"] - table_state_mb, 1),
        "table_state_mb": round(table_state_mb, 1),
        "disk_mb": disk_mb(distiller.output_dir),
        "memory_samples": len(sampler.samples),
        "memory_samples_pss": sum(sample[3] for sample in sampler.samples),
        "sampling_s": round(sampler.busy_s, 1),
    }


def run_worker(recipe: Path, env: dict, resumed: str | None = None) -> dict:
    """`measure` in a fresh process (its stderr's tail is echoed); exits if it fails."""
    command = [sys.executable, __file__, "--worker", str(recipe)] + (["--resumed", resumed] if resumed else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    sys.stderr.write(done.stderr[-3000:])
    if done.returncode != 0:
        raise SystemExit(f"the run of {recipe} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(caption: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A captioned Markdown table, as lines."""
    return ["", caption, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def report(
    runs: list[dict], machine: str, command: str, words: tuple[float, float] | None = None, note: str | None = None
) -> str:
    """CORPUS_SCALE.md: tables of peak memory and of wall time, with each stage's growth from the smallest run, and
    (given the mean words of a corpus text and of an Amazon review) a projection of the paper's run; `note` is
    printed under the heading."""
    first = runs[0]
    lines = [
        "# Corpus scale: memory and time of each stage against the unlabeled corpus",
        "",
        f"Generated {datetime.date.today().isoformat()} by `{command}` on: {machine}. Corpus: two random IMDB "
        "clauses joined by a comma per text; teacher: random-weight 2-layer, 64-wide BERT; student: "
        f"{VOCAB_SIZE:,} x {EMBED_DIM} table, one KD epoch. Each size ran in a fresh process, cold.",
        *(["", f"**Note.** {note}"] if note else []),
    ]
    memory = []
    for run in runs:
        growth = {s: run["peak_rss_mb"][s] / first["peak_rss_mb"][s] for s in STAGES}
        lean = run["train_peak_rss_without_table_state_mb"] / first["train_peak_rss_without_table_state_mb"]
        memory.append(
            [f"{run['texts']:,}", f"{run['kd_texts']:,}"]
            + [f"{run['peak_rss_mb'][s]:,.0f} ({growth[s]:.2f}×)" for s in STAGES]
            + [f"{run['train_peak_rss_without_table_state_mb']:,.0f} ({lean:.2f}×)"]
        )
    lines += _table(
        "Peak memory (MB) while each stage runs: anonymous memory of the process and its workers (PSS while "
        "vocabulary workers run, else RSS), i.e. the memory the steps hold, without the page cache of the memory-mapped files they read (it includes what the earlier "
        "stages still hold); in brackets, the ratio to the smallest run:",
        ["texts", "KD corpus", *STAGES, "train without table state"],
        memory,
    )
    resumed = [run for run in runs if "train_resumed" in run]
    if resumed:
        base = resumed[0]["train_resumed"]
        lines += _table(
            "The training step alone, in a fresh process that reads the earlier steps' outputs from disk (as a "
            "resumed `distill` or `hf-sparse-distill train` does): its own peak, without what the earlier steps "
            "left in the process; in brackets, the ratio to the smallest run measured so:",
            ["texts", "train", "train without table state", "wall s"],
            [
                [
                    f"{run['texts']:,}",
                    f"{run['train_resumed']['peak_rss_mb']:,.0f} "
                    f"({run['train_resumed']['peak_rss_mb'] / base['peak_rss_mb']:.2f}×)",
                    f"{run['train_resumed']['without_table_state_mb']:,.0f} "
                    f"({run['train_resumed']['without_table_state_mb'] / base['without_table_state_mb']:.2f}×)",
                    f"{run['train_resumed']['wall_s']:,.1f}",
                ]
                for run in resumed
            ],
        )
    lines += _table(
        "The same peaks with the pages of the memory-mapped files the stages read (their resident page cache):",
        ["texts", *STAGES],
        [
            [f"{run['texts']:,}"]
            + [f"{run.get('peak_pss_with_file_pages_mb', {}).get(s, float('nan')):,.0f}" for s in STAGES]
            for run in runs
        ],
    )
    lines += _table(
        "Wall time (s) of each stage; in brackets, seconds per million texts of the corpus:",
        ["texts", *STAGES, "total"],
        [
            [f"{run['texts']:,}"]
            + [f"{run['wall_s'][s]:,.1f} ({run['wall_s'][s] / (run['texts'] / 1e6):,.0f})" for s in STAGES]
            + [f"{sum(run['wall_s'].values()):,.0f}"]
            for run in runs
        ],
    )
    if words is not None:
        lines += ["", *projection(runs[-1], *words)]
    return "\n".join(lines) + "\n"


# The paper's run (Ye et al. 2022, ../shared/docs/paper.md) and the machine assumed for it
PAPER_TEXTS = 75_000_000
PAPER_UPDATES, PAPER_BATCH = 1_000_000, 2048
PAPER_TRAIN_BATCHES_PER_S = 8.0  # a 1B-parameter DAN, batch 2048, one 32 GB GPU (paper section 2.5)
ROBERTA_LARGE_TEXTS_PER_S = 92.3  # RoBERTa-Large fp16, IMDB reviews, batch 32, one Quadro RTX 8000 (paper Tab 12)
GPUS, NODE_CORES = 8, 32
UNION_ROWS_AT_8 = 468_000  # rows of a 1M x 1000 table touched by 8 ranks x 2048 examples (docs: distributed facts)
BUS_GB_PER_S = 150.0  # all-reduce bus bandwidth between the 8 GPUs (NVLink-class)


DISK_PARTS = ("kd_corpus", "teacher_logits", "encoded")


def disk_mb(run_dir: Path) -> dict[str, float]:
    """Size on disk (MB) of the corpus, the logits and the encoded ids a run left in its output folder."""
    return {
        part: round(sum(f.stat().st_size for f in (run_dir / part).rglob("*") if f.is_file()) / 2**20, 1)
        for part in DISK_PARTS
    }


def mean_words(path: Path, limit: int = 100_000) -> float:
    """Mean number of whitespace-separated words of the `text` field of the first `limit` rows of a JSONL file."""
    from itertools import islice

    with open(path, encoding="utf-8") as f:
        counts = [len(json.loads(line)["text"].split()) for line in islice(f, limit)]
    return sum(counts) / len(counts)


def projection(run: dict, corpus_words: float, review_words: float) -> list[str]:
    """Lines of CORPUS_SCALE.md projecting the paper's run (75M Amazon reviews, RoBERTa-Large teacher, 1M x 1000
    table, 1M updates of 2048) on one node of 8 GPUs from the per-text costs measured in `run`."""
    millions, ratio = PAPER_TEXTS / 1e6, review_words / corpus_words
    per_million = {stage: run["wall_s"][stage] / (run["texts"] / 1e6) for stage in STAGES}
    cpu = {  # measured on 2 cores; cost taken as proportional to words; vocab and encode shared by the cores
        "data": per_million["data"] * millions * ratio,
        "vocab": per_million["vocab"] * millions * ratio * 2 / NODE_CORES,
        "encode": per_million["encode"] * millions * ratio * 2 / NODE_CORES,
    }
    label = PAPER_TEXTS / (GPUS * ROBERTA_LARGE_TEXTS_PER_S)
    compute = PAPER_UPDATES / (PAPER_TRAIN_BATCHES_PER_S * GPUS)
    sync_gb = 2 * (GPUS - 1) / GPUS * UNION_ROWS_AT_8 * 1000 * 4 / 1e9
    train = compute + PAPER_UPDATES * sync_gb / BUS_GB_PER_S
    hours = {**cpu, "label": label, "train": train}
    return [
        "## Projection: the paper's run on one node of 8 GPUs",
        "",
        f"75M Amazon reviews, a RoBERTa-Large teacher, a 1M x 1000 table, {PAPER_UPDATES:,} updates of {PAPER_BATCH:,} "
        "(the paper's KD schedule), from the per-text costs of the largest run above. Assumptions, none measured here:",
        "",
        f"- Text length: an Amazon review has {review_words:.0f} words (mean of the shared Blitzer Amazon reviews), a "
        f"text of this benchmark {corpus_words:.1f}; data, vocabulary and encoding cost taken as proportional to words "
        f"({ratio:.1f}x per text).",
        f"- CPU stages: the node has {NODE_CORES} cores; vocabulary counting and encoding are shared out between "
        "processes and workers (linear in cores); the data step (de-duplication, Arrow shards) runs in one process.",
        f"- Labelling: RoBERTa-Large in float16 labels {ROBERTA_LARGE_TEXTS_PER_S} texts/s per GPU (the paper's Tab 12, "
        "IMDB reviews, batch 32, one Quadro RTX 8000; shorter reviews and newer GPUs are faster), 8 GPUs in parallel.",
        f"- Training: per GPU the paper's {PAPER_TRAIN_BATCHES_PER_S:g} batches of 2,048 per second (1B-parameter DAN, one "
        f"32 GB GPU), the global batch split over 8 GPUs; each step all-reduces the union of touched table rows "
        f"({UNION_ROWS_AT_8:,} rows x 4 KB at 8 ranks, measured on IMDB in the distributed notes: {sync_gb:.1f} GB per GPU "
        f"in a ring) at {BUS_GB_PER_S:g} GB/s.",
        "- Memory per GPU: table, gradient rows and SparseAdam's dense moments of 1M x 1000 = 12 GB (fits 40/80 GB).",
        "",
        "| stage | hours | from |",
        "|---|---|---|",
        *[
            f"| {stage} | {seconds / 3600:,.1f} | "
            + {
                "label": "the paper's RoBERTa-Large throughput",
                "train": "the paper's DAN throughput, assumed bandwidth",
            }.get(stage, "s per M texts measured here, scaled")
            + " |"
            for stage, seconds in hours.items()
        ],
        f"| total | {sum(hours.values()) / 3600:,.1f} | |",
        "",
    ] + (
        [
            "Disk grows with the corpus: per million texts of this benchmark, "
            + ", ".join(f"{part} {mb / (run['texts'] / 1e6):,.0f} MB" for part, mb in run["disk_mb"].items())
            + f"; for the paper's corpus about {sum(run['disk_mb'].values()) / (run['texts'] / 1e6) * millions * ratio / 1024:,.0f} GB "
            "(scaled by words).",
        ]
        if "disk_mb" in run
        else []
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", default="1000000,3000000,10000000", help="corpus sizes, comma-separated")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--work", default="runs/corpus_scale", help="corpora, teacher and runs (large)")
    parser.add_argument("--reviews", type=int, help="IMDB reviews read per file for the clause pool (default: all)")
    parser.add_argument("--train-rows", type=int, help="SST-2 train texts used (default: all)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a recipe to measure in this process
    parser.add_argument("--resumed", choices=STAGES, help=argparse.SUPPRESS)  # measure only this stage of it
    parser.add_argument("--sample", nargs=4, help=argparse.SUPPRESS)  # PID FILE INTERVAL RATIO: MemorySampler's
    parser.add_argument("--report-only", action="store_true", help="write CORPUS_SCALE.md from corpus_scale.json")
    parser.add_argument(
        "--update", action="store_true", help="re-measure the sizes of --texts; keep the other sizes' runs in --out"
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(Path(args.worker), args.resumed)))
        return
    if args.sample:
        pid, path, interval, ratio = args.sample
        sample_memory(int(pid), Path(path), float(interval), float(ratio))
        return
    from measure import machine_description, shared_dir

    work, out = Path(args.work), Path(args.out)
    if args.report_only:
        saved = json.loads((out / "corpus_scale.json").read_text())
        runs = saved["runs"]
        for run in runs:  # runs measured before the script recorded disk use: their folders are still there
            if "disk_mb" not in run and (work / f"run-{run['texts']}").exists():
                run["disk_mb"] = disk_mb(work / f"run-{run['texts']}")
        (out / "corpus_scale.json").write_text(json.dumps(saved, indent=2) + "\n")
        words = (
            mean_words(work / f"corpus-{runs[-1]['texts']}.jsonl"),
            mean_words(shared_dir() / "data" / "amazon_multidomain" / "all.jsonl"),
        )
        (out / "CORPUS_SCALE.md").write_text(report(runs, saved["machine"], saved["command"], words, saved.get("note")))
        return
    earlier = None
    if args.update:  # read first: a missing report must not be found out after hours of runs
        if not (out / "corpus_scale.json").exists():
            raise SystemExit(f"--update keeps the other runs of {out / 'corpus_scale.json'}, which does not exist")
        earlier = json.loads((out / "corpus_scale.json").read_text())
    pool, teacher = clause_pool(work, args.reviews), tiny_teacher(work / "teacher")
    runs = []
    for count in [int(n) for n in args.texts.split(",")]:
        corpus = work / f"corpus-{count}.jsonl"
        write_corpus(pool, count, corpus)
        recipe = recipe_file(work, count, corpus, teacher, args.train_rows)
        print(f"corpus of {count:,} texts", file=sys.stderr, flush=True)
        for cold in (f"run-{count}", f"cache-{count}", f"datasets-{count}"):  # output, logit cache, datasets' cache
            shutil.rmtree(work / cold, ignore_errors=True)
        env = {**os.environ, "TQDM_DISABLE": "1", "HF_DATASETS_CACHE": str(work / f"datasets-{count}")}
        run = run_worker(recipe, env)
        # the training step alone, in a fresh process that reads the earlier steps' outputs (a resumed run)
        shutil.rmtree(work / f"run-{count}" / "kd")
        alone = run_worker(recipe, env, resumed="train")
        run["train_resumed"] = {
            "peak_rss_mb": alone["peak_rss_mb"]["train"],
            "without_table_state_mb": alone["train_peak_rss_without_table_state_mb"],
            "wall_s": alone["wall_s"]["train"],
        }
        run["texts"] = count
        runs.append(run)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    command = "python benchmarks/corpus_scale.py " + " ".join(sys.argv[1:])
    saved = {"machine": machine, "command": command, "runs": runs}
    if earlier is not None:  # the other sizes' runs were measured by the recorded command, on the recorded machine
        remeasured = {run["texts"] for run in runs}
        kept = [r for r in earlier["runs"] if r["texts"] not in remeasured]
        saved["runs"] = sorted(kept + runs, key=lambda r: r["texts"])
        saved["command"] = f"{earlier['command']}; {command}"
        saved["machine"] = earlier["machine"] if earlier["machine"] == machine else f"{earlier['machine']}; {machine}"
        if kept and earlier.get("note"):
            saved["note"] = earlier["note"]  # it may speak of the runs kept
    runs, command, machine = saved["runs"], saved["command"], saved["machine"]
    (out / "corpus_scale.json").write_text(json.dumps(saved, indent=2) + "\n")
    words = (
        mean_words(work / f"corpus-{runs[-1]['texts']}.jsonl"),
        mean_words(shared_dir() / "data" / "amazon_multidomain" / "all.jsonl"),
    )
    text = report(runs, machine, command, words, saved.get("note"))
    (out / "CORPUS_SCALE.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
