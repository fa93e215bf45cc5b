"""Smoke runs of the benchmark scripts (tiny budgets), so they cannot rot. Needs the shared data."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_hub import RESULTS

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HFSD_SHARED", ROOT.parent / "shared"))
pytestmark = pytest.mark.skipif(not (SHARED / "data").is_dir(), reason="needs the shared data (HFSD_SHARED)")


def run(script: str, *arguments: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HFSD_SHARED": str(SHARED), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_benchmark_smoke(saved_student, tmp_path):
    run_dir = tmp_path / "run"  # a distillation run: its student and results.json
    shutil.copytree(saved_student, run_dir / "student")
    RESULTS.save(run_dir / "results.json")
    run(
        "run.py",
        "--smoke",
        "--run-dir",
        str(run_dir),
        "--out",
        str(tmp_path),
        "--model2vec",
        str(tmp_path / "none"),
        *("--small", str(run_dir / "student"), "--small-label", "copy a"),
        *("--small", str(run_dir / "student"), "--small-label", "copy b"),
    )
    results = json.loads((tmp_path / "results.json").read_text())
    names = {r["name"] for r in results["results"]}
    assert {
        "student (direct API)",
        "student, copy a (direct API)",
        "student, copy b (direct API)",
        "student (stock pipeline)",
        "student (batched pipeline)",
        "student (remote code, shipped pipeline)",
        "teacher MiniLM-L6 (float32)",
        "roberta-large-shaped",
        "distilbert-shaped",
        "fastText (bigrams)",
        "TF-IDF + logistic regression",
    } == names
    for r in results["results"]:
        assert all(v > 0 for v in r["throughput"].values()) and len(r["throughput"]) == 4
    teacher = next(r for r in results["results"] if r["name"].startswith("teacher"))
    assert teacher["accuracy"] == pytest.approx(0.8968, abs=1e-3)  # the teacher README's dev accuracy
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Targets" in text and "texts per second" in text
    for name in ("student (direct API)", "student, copy a (direct API)", "student, copy b (direct API)"):
        assert f"| {name} ≥ fastText texts/s (SST-2, b256), more accurate |" in text
    head = results["head_to_head"]["sst2_b256_median"]  # fastText and the students, measured in turns
    assert set(head) == {"fastText (bigrams)", "student (direct API)", "student (batched pipeline)",
                         "student (remote code, shipped pipeline)", "student, copy a (direct API)",
                         "student, copy b (direct API)"} and all(v > 0 for v in head.values())  # fmt: skip
    assert "## Head to head with fastText" in text
    assert "the DAN (KD+FT) student of that run (dev accuracy 87.16, 97.2 % of the teacher)" in text
    assert (tmp_path / "speed_accuracy.png").stat().st_size > 0


def test_scaling_smoke(tmp_path):
    run("scale.py", "--smoke", "--out", str(tmp_path), "--cache", str(tmp_path / "cache"))
    rows = json.loads((tmp_path / "scaling.json").read_text())
    assert [(r["vocab_size"], r["embed_dim"]) for r in rows] == [(200, 8), (400, 8), (400, 16)]
    assert all(r["direct_sst2_b256"] > 0 and r["disk_mb"] > 0 for r in rows)
    assert "| n-grams | dim |" in (tmp_path / "SCALING.md").read_text()


def test_vocab_speed_smoke(tmp_path):
    run("vocab_speed.py", "--imdb-reviews", "0", "--max-texts", "5000", "--size", "1000", "--out", str(tmp_path))
    result = json.loads((tmp_path / "vocab.json").read_text())
    assert [r["method"] for r in result["rows"]] == ["hf-sparse-distill", "hf-sparse-distill", "countvectorizer"]
    assert result["same_across_workers"] and result["shared"] > 900


def test_cascade_smoke(saved_student, tmp_path):
    run("cascade.py", "--student", str(saved_student), "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "cascade.json").read_text())
    assert len(report["halves"]) == 2 and report["throughput"]["cascade_texts_per_s"] > 0
    assert 0 <= report["faithfulness"]["top3_flip_rate"] <= 1 and (tmp_path / "cascade.png").stat().st_size > 0


def test_compression_smoke(saved_student, tmp_path):
    select = SHARED / "data" / "sst2" / "dev.jsonl"  # any labeled file: the smoke run only checks that it works
    run("compression.py", "--student", str(saved_student), "--select", str(select), "--smoke",
        "--work", str(tmp_path / "work"), "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "compression.json").read_text())
    assert len(report["points"]) == 3 and all(p["size_mb"] > 0 for p in report["points"])
    assert "| n-grams kept |" in (tmp_path / "COMPRESSION.md").read_text()


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="compares with a git revision of the tokenizer")
def test_tokenizer_speed_smoke(saved_student):
    """The current tokenizer against the committed one: same ids on SST-2 dev and long reviews, a speed row each."""
    done = run("tokenizer_speed.py", "--student", str(saved_student), "--baseline", "HEAD", "--rounds", "1",
               "--long-texts", "8")  # fmt: skip
    rows = [line for line in done.stdout.splitlines() if line.startswith("| SST-2 dev") or line.startswith("| IMDB")]
    assert len(rows) == 2 and all(row.endswith("× |") for row in rows)


def test_variants_smoke(tiny_recipe, tmp_path):
    run("variants.py", "--recipe", str(tiny_recipe), "--smoke", "--seeds", "0,1", "--work", str(tmp_path / "work"),
        "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "variants.json").read_text())
    assert [(p["variant"], p["seed"]) for p in report["points"]] == [
        ("recipe as shipped", 0), ("feature dropout 0.1", 0), ("recipe as shipped", 1), ("feature dropout 0.1", 1),
    ]  # fmt: skip
    assert all(0 <= p["report_accuracy"] <= 1 and p["teacher_report_accuracy"] > 0 for p in report["points"])
    assert "| feature dropout 0.1 | 2 |" in (tmp_path / "VARIANTS.md").read_text()
    first = report["points"][0]
    run("variants.py", "--recipe", str(tiny_recipe), "--smoke", "--seeds", "2", "--work", str(tmp_path / "work"),
        "--out", str(tmp_path), "--only", "feature dropout 0.1")  # fmt: skip
    again = json.loads((tmp_path / "variants.json").read_text())
    assert [(p["variant"], p["seed"]) for p in again["points"]] == [
        ("recipe as shipped", 0), ("feature dropout 0.1", 0), ("recipe as shipped", 1), ("feature dropout 0.1", 1),
        ("feature dropout 0.1", 2),
    ] and again["points"][0] == first and "--only 'feature dropout 0.1'" in again["command"]  # fmt: skip


def test_teacher_batching_smoke(tiny_recipe, tmp_path):
    """Fixed-size calls against token budgets on the recipe's KD corpus: the same logits (a float32 teacher), no more
    calls for a larger budget."""
    from hf_sparse_distill.cli import main

    assert main(["vocab", str(tiny_recipe)]) == 0
    run("teacher_batching.py", "--recipe", str(tiny_recipe), "--texts", "200", "--rounds", "1", "--budgets", "64,512",
        "--out", str(tmp_path))  # fmt: skip
    points = json.loads((tmp_path / "teacher_batching.json").read_text())["points"]
    assert [p["scheme"] for p in points] == [
        "16 texts per call", "64 padded tokens per call", "512 padded tokens per call",
    ]  # fmt: skip
    assert all(p["texts_per_s"] > 0 and p["max_logit_difference"] < 1e-4 for p in points)
    # chunks of 64 texts (the recipe's): 4 + 4 + 4 + 1 calls of 16; a budget of 64 tokens holds the minimum of 8
    assert points[0]["calls"] == 13 and points[1]["calls"] >= 25 and points[2]["calls"] <= points[1]["calls"]
    assert "| 512 padded tokens per call |" in (tmp_path / "TEACHER_BATCHING.md").read_text()


def test_a_labelling_budget_pays_once_for_texts_a_source_repeats(monkeypatch):
    """A source that reads an earlier source's texts further costs only its texts past those; a source that buys
    no new text is left out of the corpus."""
    import json
    import math

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from labelling_curve import budget_overrides

    def sources(override: str) -> list[tuple[str, int]]:
        assert override.startswith("data.unlabeled=")
        return [(s["path"], s["max_rows"]) for s in json.loads(override.removeprefix("data.unlabeled="))]

    rates = [
        {"texts": 600, "texts_per_s": 10.0, "stream": {"path": "train"}},  # 1 minute, always paid
        {"texts": 300, "texts_per_s": 10.0, "stream": {"path": "imdb"}},  # the first 300 texts of imdb
        {"texts": 600, "texts_per_s": 20.0, "stream": {"path": "mpqa"}},
        {"texts": 1000, "texts_per_s": 10.0, "stream": {"path": "imdb"}},  # all of imdb: 700 texts more
    ]
    (override,), spent = budget_overrides(rates, math.inf)
    assert sources(override) == [("imdb", 300), ("mpqa", 600), ("imdb", 1000)]
    assert spent == pytest.approx((60 + 30 + 30 + 70) / 60)
    # 2 minutes: 30 s buy imdb's 300, 30 s mpqa's 600, nothing is left for imdb's other 700
    (override,), spent = budget_overrides(rates, 2.0)
    assert sources(override) == [("imdb", 300), ("mpqa", 600)] and spent == pytest.approx(2.0)
    # 2.5 minutes: 30 s more buy imdb's next 300
    (override,), spent = budget_overrides(rates, 2.5)
    assert sources(override) == [("imdb", 300), ("mpqa", 600), ("imdb", 600)] and spent == pytest.approx(2.5)
    (override,), spent = budget_overrides(rates, 1.25)
    assert sources(override) == [("imdb", 150)] and spent == pytest.approx(1.25)
    # the fraction of a text imdb cannot buy must not buy a text of the cheaper mpqa after it
    (override,), spent = budget_overrides(rates, 1.0 + 15.08 / 60)
    assert sources(override) == [("imdb", 150)] and spent == pytest.approx(1.25)


def test_recipes_that_buy_the_same_texts_share_a_curve_point(monkeypatch):
    """Recipes that train the same students from the same bought texts (the override a budget makes) share a
    curve point: the key ignores what does not change a student (checkpoint cadence); another seed or another
    training setting (the full SST-2 recipe's 5 KD epochs against the quick one's 3) is another point."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from labelling_curve import markdown, training_key

    from hf_sparse_distill.distillation import load_recipe

    bought = 'data.unlabeled=[{"path": "mr/all.jsonl", "label_column": null, "max_rows": 1000}]'
    quick, full = (
        training_key(load_recipe(name, [bought, "seed=1", "kd.epochs=3"]))
        for name in ("sst2_shared", "sst2_shared_full")
    )
    assert quick == full
    assert training_key(load_recipe("sst2_shared_full", [bought, "seed=1"])) != quick
    assert training_key(load_recipe("sst2_shared", [bought, "seed=0"])) != quick
    point = {"budget_minutes": 5.0, "labelling_minutes": 5.0, "kd_texts": 1000, "seed": 1, "report_accuracy": 0.8,
             "retention": 0.9, "kd_report_accuracy": 0.8, "student_stage": "kd"}  # fmt: skip
    report = {"date": "today", "machine": "here", "recipes": {
        "quick": {"points": [point], "source_rates": []},
        "full": {"points": [{**point, "same_as": "quick"}], "source_rates": []},
    }}  # fmt: skip
    rows = [line for line in markdown(report).splitlines() if line.startswith(("| quick |", "| full |"))]
    assert rows[0].endswith("| kd |") and rows[1].endswith("| kd † |")  # the full recipe's point is marked


def test_the_memory_sampler_sees_a_short_peak(monkeypatch):
    """The sampler, a separate process, sees memory held only while this process is busy, and does not count
    itself as a worker."""
    import time

    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from corpus_scale import MemorySampler

    with MemorySampler() as sampler:
        start = time.monotonic()
        held = np.ones(300 * 2**20 // 8)  # 300 MB, written
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            held.sum()
        del held
        end = time.monotonic()
        after = sampler.sample_after(end)
    before = [s[2] for s in sampler.samples if s[0] < start]
    assert sampler.peak(start, after) > before[-1] + 250
    assert not any(s[3] for s in sampler.samples)  # no worker: the sampler process is not one


def test_corpus_scale_smoke(tmp_path):
    run(
        "corpus_scale.py", "--texts", "3000,6000", "--reviews", "300", "--train-rows", "1500",
        "--out", str(tmp_path), "--work", str(tmp_path / "work"),
    )  # fmt: skip
    runs = json.loads((tmp_path / "corpus_scale.json").read_text())["runs"]
    assert [r["texts"] for r in runs] == [3000, 6000] and runs[1]["kd_texts"] > runs[0]["kd_texts"]
    stages = ["data", "vocab", "label", "encode", "train"]
    for key in ("peak_rss_mb", "wall_s"):
        assert all(list(r[key]) == stages and all(v > 0 for v in r[key].values()) for r in runs)
    assert "| 6,000 |" in (tmp_path / "CORPUS_SCALE.md").read_text()
    # the training step measured again alone, in a process that read the earlier steps back: it trained again
    assert all(r["train_resumed"]["wall_s"] > 0 and r["train_resumed"]["peak_rss_mb"] > 0 for r in runs)
    assert (tmp_path / "work" / "run-6000" / "kd" / "best" / "model.safetensors").exists()
    assert "The training step alone" in (tmp_path / "CORPUS_SCALE.md").read_text()
    run(
        "corpus_scale.py", "--texts", "3000", "--reviews", "300", "--train-rows", "1500", "--update",
        "--out", str(tmp_path), "--work", str(tmp_path / "work"),
    )  # fmt: skip
    updated = json.loads((tmp_path / "corpus_scale.json").read_text())
    assert [r["texts"] for r in updated["runs"]] == [3000, 6000] and updated["runs"][1] == runs[1]
    assert updated["command"].count("corpus_scale.py") == 2 and "--update" in updated["command"].split("; ")[1]


def test_truncation_side_smoke(tmp_path):
    run("truncation_side.py", "--texts", "16", "--max-length", "32", "--out", str(tmp_path))
    report = json.loads((tmp_path / "truncation_side.json").read_text())
    assert [p["truncation_side"] for p in report["points"]] == ["right", "left"] and report["texts"] == 16
    assert all(0 <= p["accuracy"] <= 1 for p in report["points"])
    assert "| left | the last tokens |" in (tmp_path / "TRUNCATION_SIDE.md").read_text()
