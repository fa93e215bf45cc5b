"""Teacher labelling: batched logits equal unbatched ones; the per-text cache serves any corpus holding a text,
resumes after a real kill and sets damaged shards aside."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from conftest import random_texts
from safetensors.numpy import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_sparse_distill.distillation.logit_cache import LogitCache
from hf_sparse_distill.distillation.recipe import TeacherConfig
from hf_sparse_distill.distillation.teacher import Teacher


def test_logits_equal_one_by_one_inference(tiny_teacher, tmp_path):
    texts = random_texts(40, seed=3) + ["", "x " * 500]
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=8, chunk_size=16))
    logits = teacher.label(texts, tmp_path, show_progress=False)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    with torch.inference_mode():
        expected = np.stack(
            [model(**tokenizer(t, truncation=True, return_tensors="pt")).logits[0].numpy() for t in texts]
        )
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert logits.dtype == np.float32 and logits.shape == (len(texts), 2)
    assert teacher.id2label == {0: "negative", 1: "positive"}


def test_the_teacher_sees_a_bounded_set_of_batch_shapes(tiny_teacher):
    """The short last batch has its rows and tokens padded to multiples of 8 (compiled kernels are kept per shape:
    a new shape per shard grows memory with the corpus), never past the batch size or the maximum length; full
    batches are not padded further; the filler rows' logits are dropped (single texts and pairs)."""
    texts = random_texts(45, seed=7)
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=20))
    shapes = []
    teacher._load()
    teacher._model.register_forward_pre_hook(lambda _, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)  # fmt: skip
    logits = teacher.predict(texts)
    encoded = teacher._tokenizer(texts, truncation=True, max_length=teacher.config.max_length)
    lengths = sorted(len(ids) for ids in encoded["input_ids"])  # batches are cut from the texts sorted by length
    assert lengths[-1] % 8 and lengths[19] % 8  # so that padding to a multiple of 8 would show
    # full batches as long as their longest text; the last 5 texts with 3 filler rows, tokens up to a multiple of 8
    assert shapes == [(20, lengths[19]), (20, lengths[39]), (8, -(-lengths[-1] // 8) * 8)]
    unpadded = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=1))  # every batch full: none padded
    np.testing.assert_allclose(logits, unpadded.predict(texts), atol=1e-5)
    shapes.clear()
    teacher.config.max_length = unpadded.config.max_length = 29  # not a multiple of 8
    logits = teacher.predict(texts[:19], texts[19:38])  # 19 pairs, truncated to 29 tokens
    assert shapes == [(20, 29)]  # 19 rows padded to the batch size, not to 24; tokens to 29, not 32
    np.testing.assert_allclose(logits, unpadded.predict(texts[:19], texts[19:38]), atol=1e-5)


def test_a_token_budget_fills_each_call_with_texts_of_one_length_class(tiny_teacher):
    """With `batch_tokens`, each call holds texts of one length class (token counts rounded up to a multiple of 8):
    as many as fit in the budget, a multiple of 8 (at least 8); the last call of a class
    is padded within it. The logits are those of one text at a time, in input order."""
    texts = [" ".join(["word"] * n) for n in np.random.default_rng(0).integers(1, 40, size=90)] + ["x " * 300] * 3
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), batch_tokens=160, max_length=60))
    shapes = []
    teacher._load()
    teacher._model.register_forward_pre_hook(lambda _, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)  # fmt: skip
    logits = teacher.predict(texts)
    lengths = np.array([len(ids) for ids in teacher._tokenizer(texts, truncation=True, max_length=60)["input_ids"]])
    classes = -(-lengths // 8) * 8  # the three long texts: class 64, padded to 60 tokens (the maximum length)
    assert sorted(set(classes)) == [8, 16, 24, 32, 40, 48, 64] and sum(rows for rows, _ in shapes) >= len(texts)
    for rows, tokens in shapes:  # every call: rows a multiple of 8, within the budget unless 8 rows, one class
        assert rows % 8 == 0 and (rows * tokens <= 160 or rows == 8) and tokens in set(lengths) | set(classes) | {60}
    expected_shapes = []
    for width in np.unique(classes):  # 160 tokens hold 16 texts of up to 8 tokens, 8 of up to 16, at least 8 longer
        count, per_call = int((classes == width).sum()), max(8, 160 // int(width) // 8 * 8)
        full, rest = divmod(count, per_call)
        members = np.sort(lengths[classes == width])
        expected_shapes += [(per_call, int(members[(i + 1) * per_call - 1])) for i in range(full)]
        expected_shapes += [(-(-rest // 8) * 8, min(int(width), 60))] if rest else []
    assert shapes == expected_shapes and expected_shapes[-1] == (8, 60)
    unbatched = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=1, max_length=60))
    np.testing.assert_allclose(logits, unbatched.predict(texts), atol=1e-5)


def test_truncation_side_picks_the_end_of_long_texts_the_teacher_reads(tiny_teacher, tmp_path):
    """`truncation_side: left` reads a long text's last tokens (transformers' tokenizer setting) and its logits are
    cached apart; unset, the teacher's tokenizer decides (as saved: a teacher taught on the end keeps reading it) and
    the cache key is the one logits were cached under before the setting existed."""
    texts = ["good " * 20 + "bad " * 20, "short text"]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()

    def expected(side: str) -> np.ndarray:
        tokenizer = AutoTokenizer.from_pretrained(tiny_teacher, truncation_side=side)
        with torch.inference_mode():
            encoded = tokenizer(texts, truncation=True, max_length=12, padding=True, return_tensors="pt")
            return model(**encoded).logits.numpy()

    def label(folder: Path, side: str | None) -> tuple[np.ndarray, dict]:
        teacher = Teacher(TeacherConfig(model=str(folder), max_length=12, truncation_side=side))
        return teacher.label(texts, tmp_path / "cache", show_progress=False), teacher.identity()

    default, identity = label(tiny_teacher, None)
    assert "truncation_side" not in identity
    np.testing.assert_allclose(default, expected("right"), atol=1e-5)  # the tiny teacher's tokenizer: right
    left, identity = label(tiny_teacher, "left")
    assert identity["truncation_side"] == "left"
    np.testing.assert_allclose(left, expected("left"), atol=1e-5)
    assert not np.allclose(left[0], default[0])  # the long text: its end, not its start
    np.testing.assert_allclose(left[1], default[1], atol=1e-6)  # the short one: read whole
    assert len(list((tmp_path / "cache" / "teacher_logits").iterdir())) == 2

    saved_left = tmp_path / "taught-on-the-end"
    shutil.copytree(tiny_teacher, saved_left)
    AutoTokenizer.from_pretrained(tiny_teacher, truncation_side="left").save_pretrained(saved_left)
    np.testing.assert_allclose(label(saved_left, None)[0], expected("left"), atol=1e-5)
    np.testing.assert_allclose(label(saved_left, "right")[0], expected("right"), atol=1e-5)


def shards(cache):
    return sorted(cache.glob("teacher_logits/*/shard-*.safetensors"))


def test_cache_is_keyed_by_teacher_settings_and_texts(tiny_teacher, tmp_path):
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), chunk_size=8))
    first = teacher.label(["good movie", "bad film"], tmp_path, show_progress=False)
    teacher.label(["bad film!", "good movie", "bad film"], tmp_path, show_progress=False)  # one new text
    Teacher(TeacherConfig(model=str(tiny_teacher), chunk_size=8, max_length=4)).label(
        ["good movie"], tmp_path, show_progress=False
    )
    folders = sorted((tmp_path / "teacher_logits").iterdir())
    assert len(folders) == 2  # one per teacher settings
    rows = sorted(sum(len(load_file(str(p))["keys"]) for p in f.glob("shard-*.safetensors")) for f in folders)
    assert rows == [1, 3]  # each distinct text labelled once per teacher setting
    again = teacher.label(["bad film", "good movie", "good movie"], tmp_path, show_progress=False)
    np.testing.assert_array_equal(again, first[[1, 0, 0]])


def test_a_local_teacher_is_known_by_its_content_not_its_path(tiny_teacher, tmp_path):
    texts = ["good movie", "bad film"]
    Teacher(TeacherConfig(model=str(tiny_teacher), chunk_size=8)).label(texts, tmp_path / "cache", show_progress=False)
    copy = shutil.copytree(tiny_teacher, tmp_path / "elsewhere" / "teacher")  # new path, new modification times
    Teacher(TeacherConfig(model=str(copy), chunk_size=8)).label(texts, tmp_path / "cache", show_progress=False)
    assert len(list((tmp_path / "cache" / "teacher_logits").iterdir())) == 1
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"negative"', '"NEGATIVE"'))  # any byte changed: another teacher
    Teacher(TeacherConfig(model=str(copy), chunk_size=8)).label(texts, tmp_path / "cache", show_progress=False)
    assert len(list((tmp_path / "cache" / "teacher_logits").iterdir())) == 2


def test_another_mix_of_texts_labels_only_the_new_ones(tiny_teacher, tmp_path):
    texts = random_texts(40, seed=6)
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), chunk_size=8))
    teacher.label(texts[:24], tmp_path, show_progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in shards(tmp_path)}
    mixed = texts[30:] + texts[10:20] + texts[:5]  # reordered, some dropped, 10 new
    logits = teacher.label(mixed, tmp_path, show_progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in shards(tmp_path)}
    assert all(after[name] == t for name, t in before.items())  # nothing labelled before is written again
    new_rows = sum(len(load_file(str(p))["keys"]) for p in shards(tmp_path) if p.name not in before)
    assert new_rows == len(set(mixed) - set(texts[:24]))
    np.testing.assert_allclose(logits, teacher.label(mixed, tmp_path / "fresh", show_progress=False), atol=1e-6)


def test_texts_another_run_labels_after_the_index_is_made_are_not_labelled_again(tiny_teacher, tmp_path, monkeypatch):
    """A run finds what another run labelled between its own start and its turn at a bucket through the bucket's
    journal of shards, without listing the cache folder again; a journal line that is not a shard name of the
    cache folder (cut short, or pointing elsewhere) is ignored, and the file it names is left alone."""
    texts = random_texts(60, seed=7)
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), chunk_size=8))
    label_buckets, predicted, listings = Teacher._label_buckets, [], []

    def another_run_first(self, *args, **kwargs):  # the index is made: another run labels everything now
        monkeypatch.setattr(Teacher, "_label_buckets", label_buckets)
        Teacher(TeacherConfig(model=str(tiny_teacher), chunk_size=8)).label(texts, tmp_path, show_progress=False)
        for journal in tmp_path.glob("teacher_logits/*/*.shards"):
            journal.write_text(journal.read_text() + "\n../../outside.safetensors\nshard-0a1")
        monkeypatch.setattr(
            Teacher, "predict", lambda _, batch, pairs=None: predicted.append(batch) or np.zeros((len(batch), 2))
        )
        monkeypatch.setattr(LogitCache, "shards", lambda cache: listings.append(cache) or [])
        return label_buckets(self, *args, **kwargs)

    monkeypatch.setattr(Teacher, "_label_buckets", another_run_first)
    (tmp_path / "outside.safetensors").write_bytes(b"not a shard")
    logits = teacher.label(texts, tmp_path, show_progress=False)
    assert predicted == [] and listings == []  # nothing labelled twice, the folder not listed per bucket
    assert (tmp_path / "outside.safetensors").read_bytes() == b"not a shard"
    assert sum(len(load_file(str(p))["keys"]) for p in shards(tmp_path)) == len(set(texts))
    monkeypatch.undo()
    np.testing.assert_array_equal(logits, teacher.label(texts, tmp_path / "fresh", show_progress=False))


def test_damaged_shards_are_set_aside_and_relabelled(tiny_teacher, tmp_path, caplog):
    texts = random_texts(24, seed=8)
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), chunk_size=8))
    expected = teacher.label(texts, tmp_path, show_progress=False)
    count = len(shards(tmp_path))
    flipped, truncated = shards(tmp_path)[:2]
    data = bytearray(flipped.read_bytes())
    data[-3] ^= 0xFF  # a flipped byte inside the logits
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with caplog.at_level("WARNING"):
        logits = teacher.label(texts, tmp_path, show_progress=False)
    np.testing.assert_array_equal(logits, expected)
    for path in (flipped, truncated):
        assert str(path) in caplog.text and path.with_suffix(".corrupt").exists()
    assert len(shards(tmp_path)) == count  # the two damaged shards' texts are labelled again


LABEL_SCRIPT = """
import json, sys
from hf_sparse_distill.distillation.recipe import TeacherConfig
from hf_sparse_distill.distillation.teacher import Teacher
texts = json.load(open(sys.argv[1]))
logits = Teacher(TeacherConfig(model=sys.argv[2], batch_size=16, chunk_size=50)).label(texts, sys.argv[3])
print("rows", len(logits))
"""


def test_killed_labelling_resumes_without_loss_or_duplication(tiny_teacher, tmp_path):
    import json

    texts = random_texts(2500, seed=12)
    corpus = tmp_path / "texts.json"
    corpus.write_text(json.dumps(texts))
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", LABEL_SCRIPT, str(corpus), str(tiny_teacher), str(cache)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    chunks = []
    while time.time() < deadline and len(chunks) < 5:
        chunks = shards(cache)
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = {p.name: p.stat().st_mtime_ns for p in shards(cache)}
    assert 5 <= len(written) < len(set(texts)) // 50, "the run should have been killed part-way"

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    folder = next(cache.glob("teacher_logits/*"))
    assert {p.name: p.stat().st_mtime_ns for p in shards(cache) if p.name in written} == written
    assert sum(len(load_file(str(p))["keys"]) for p in shards(cache)) == len(set(texts))  # each text once
    assert not list(folder.glob("*.tmp"))

    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=16, chunk_size=50))
    logits = teacher.label(texts, cache, show_progress=False)
    fresh = teacher.label(texts, tmp_path / "fresh_cache", show_progress=False)
    assert logits.shape == (len(texts), 2)
    np.testing.assert_array_equal(logits, fresh)


def test_a_shard_a_killed_run_was_writing_is_removed_and_a_live_writers_kept(tiny_teacher, tmp_path):
    """A kill during a shard's write leaves its temporary file (what made the test above fail now and then); the
    next run removes it, but not the temporary file of a process still writing."""
    from hf_sparse_distill.distillation.logit_cache import identity_folder_name

    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=16, chunk_size=50))
    folder = tmp_path / "cache" / "teacher_logits" / identity_folder_name(teacher.identity())
    folder.mkdir(parents=True)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = folder / f".shard-{'a' * 64}.safetensors.{int(ended.stdout)}.tmp"
    live = folder / f".shard-{'b' * 64}.safetensors.{os.getpid()}.tmp"
    for path in (abandoned, live):
        path.write_bytes(b"half a shard")
    logits = teacher.label(random_texts(20, seed=3), tmp_path / "cache", show_progress=False)
    assert logits.shape == (20, 2) and live.exists() and not abandoned.exists()


def test_logits_written_to_disk_equal_those_in_memory(tiny_teacher, tmp_path):
    """With `out`, the logits are filled bucket by bucket into a memory-mapped file, from texts read off an Arrow
    corpus; they equal the in-memory answer for the same texts (duplicates and an empty text included)."""
    from hf_sparse_distill.distillation.data import TextSet, build_kd_corpus, dedup_key
    from hf_sparse_distill.distillation.recipe import VocabConfig

    texts = random_texts(300, seed=8)
    corpus = build_kd_corpus(TextSet(texts[:50] + texts[:5] + [""], [0] * 56), [], [], dedup_key(VocabConfig()))
    teacher = Teacher(TeacherConfig(model=str(tiny_teacher), batch_size=16, chunk_size=8))  # 8 buckets
    on_disk = teacher.label(corpus.texts, tmp_path / "cache", show_progress=False, out=tmp_path / "kd.npy")
    assert isinstance(on_disk, np.memmap) and on_disk.shape == (56, 2)
    in_memory = teacher.label(list(corpus.texts), tmp_path / "fresh", show_progress=False)
    np.testing.assert_array_equal(on_disk, in_memory)
    np.testing.assert_array_equal(on_disk[50:55], on_disk[:5])
    assert sum(len(load_file(str(p))["keys"]) for p in shards(tmp_path / "cache")) == len(
        set(corpus.texts)
    )  # once each


def test_the_lookup_index_holds_only_the_keys_a_run_needs(tmp_path):
    """A small split labelled against a large cache: its index keeps the few keys it needs, not the whole cache
    (with one bucket it would otherwise read every cached logit into memory), and writes nothing else."""
    from hf_sparse_distill.distillation.logit_cache import KEY_DTYPE, BucketIndex, LogitCache, text_keys

    cache = LogitCache(tmp_path / "cache", 2)
    texts = random_texts(3000, seed=5)
    for start in range(0, 3000, 500):
        cache.add(texts[start : start + 500], np.full((500, 2), start, dtype=np.float32))
    more = random_texts(10, seed=6)
    wanted = text_keys([texts[7], texts[2500], "not cached", more[0]]).view(KEY_DTYPE).ravel()
    reads = []

    def wanted_keys(bucket):
        reads.append(bucket)
        return wanted

    index = BucketIndex(cache, 1, {0}, tmp_path / "index", wanted=wanted_keys, flush_rows=700)
    keys, logits = index.logits(0)
    assert len(keys) == 2 and sorted(logits[:, 0].tolist()) == [0.0, 2500.0]
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["bucket-0000000.bin"]
    assert (tmp_path / "index" / "bucket-0000000.bin").stat().st_size < 200
    assert reads == [0]  # the wanted keys are read once, not at every flush of 700 records

    cache.add(more, np.full((10, 2), -1, dtype=np.float32))
    index.absorb_new_shards()  # a shard another process wrote meanwhile
    keys, logits = index.logits(0)
    assert len(keys) == 3 and sorted(logits[:, 0].tolist()) == [-1.0, 0.0, 2500.0] and reads == [0]


def test_a_lookup_too_large_for_memory_goes_in_two_passes(tmp_path):
    """When the wanted keys do not all fit in memory, the buckets beyond go through raw files filtered once each:
    every wanted key found with its own logits, no raw file left, the wanted keys never read at every flush."""
    from hf_sparse_distill.distillation.logit_cache import KEY_DTYPE, BucketIndex, LogitCache, text_keys

    cache = LogitCache(tmp_path / "cache", 2)
    texts = [f"{text} {i}" for i, text in enumerate(random_texts(3000, seed=7))]  # distinct: one logit row each
    for start in range(0, 3000, 500):
        rows = np.arange(start, start + 500, dtype=np.float32)
        cache.add(texts[start : start + 500], np.stack([rows, -rows], axis=1))
    keys = text_keys(texts[::3] + ["not cached"]).view(KEY_DTYPE).ravel()  # 1,001 keys, about 250 per bucket
    reads = []

    def wanted(bucket):
        reads.append(bucket)
        return keys[keys["hi"] % np.uint64(4) == bucket]

    index = BucketIndex(cache, 4, {0, 1, 2, 3}, tmp_path / "index", wanted=wanted, flush_rows=700)
    assert 0 < len(index._two_pass) < 4  # some buckets in memory (about 2 x 250 keys fit in 700), the rest not
    assert not list((tmp_path / "index").glob("raw-*"))
    found = {}
    for bucket in range(4):
        bucket_keys, logits = index.logits(bucket)
        found.update({(int(k["hi"]), int(k["lo"])): row for k, row in zip(bucket_keys, logits[:, 0])})
    expected = {(int(k["hi"]), int(k["lo"])): float(3 * i) for i, k in enumerate(keys[:-1])}
    assert found == expected
    assert max(reads.count(b) for b in range(4)) <= 2  # once to try memory, once to filter; not once per flush
