"""Streaming top-K vocabulary: equal to CountVectorizer(max_features=K) where both fit, for any chunking and
any number of processes; deterministic ties."""

import numpy as np
import pytest
from conftest import CORPUS, random_texts
from sklearn.feature_extraction.text import CountVectorizer

from hf_sparse_distill.distillation.vocab import Analyzer, build_vocabulary, count_top_ngrams

TEXTS = CORPUS * 3 + random_texts(600, seed=21)


@pytest.fixture(scope="module")
def reference_counts() -> dict[str, int]:
    vectorizer = CountVectorizer(ngram_range=(1, 4))
    totals = np.asarray(vectorizer.fit_transform(TEXTS).sum(axis=0)).ravel()
    return dict(zip(vectorizer.get_feature_names_out().tolist(), totals.tolist()))


def untied_sizes(counts: dict[str, int], how_many: int) -> list[int]:
    """Vocabulary sizes K where the K-th and (K+1)-th counts differ, so the top K is unique."""
    ordered = sorted(counts.values(), reverse=True)
    untied = [k for k in range(1, len(ordered)) if ordered[k - 1] > ordered[k]]
    return untied[:: max(1, len(untied) // how_many)][:how_many]


def test_counts_are_exact(reference_counts):
    counted = dict(count_top_ngrams(TEXTS, size=10**9, num_workers=1, show_progress=False))
    assert counted == reference_counts


@pytest.mark.parametrize("workers, chunk_size, partitions", [(1, 10**6, 1), (1, 37, 5), (2, 50, 16)])
def test_same_top_k_as_countvectorizer(reference_counts, workers, chunk_size, partitions):
    sizes = untied_sizes(reference_counts, 6) + [len(reference_counts)]
    assert len(sizes) >= 4
    for k in sizes:
        expected = set(CountVectorizer(ngram_range=(1, 4), max_features=k).fit(TEXTS).get_feature_names_out())
        ours = build_vocabulary(
            TEXTS, k, num_workers=workers, chunk_size=chunk_size, num_partitions=partitions, show_progress=False
        )
        assert len(ours) == k and set(ours) == expected


def test_order_and_ties_are_deterministic(reference_counts):
    ranked = count_top_ngrams(iter(TEXTS), size=500, num_workers=2, chunk_size=64, show_progress=False)
    assert ranked == sorted(ranked, key=lambda item: (-item[1], item[0]))
    expected = sorted(reference_counts.items(), key=lambda item: (-item[1], item[0]))[:500]
    assert ranked == expected  # the boundary may be tied: ties are broken by the n-gram string


def test_min_count_and_custom_analysis():
    texts = ["Good good GOOD movie", "good film"]
    assert dict(count_top_ngrams(texts, 100, min_count=2, num_workers=1, show_progress=False)) == {
        "good": 4,
        "good good": 2,
    }
    analyzer = Analyzer(ngram_range=(2, 2), lowercase=False)
    assert build_vocabulary(texts, 2, analyzer, num_workers=1, show_progress=False) == ["GOOD movie", "Good good"]


def test_generator_input_larger_than_one_chunk():
    generated = (f"text number {i % 50} with words" for i in range(5000))
    ranked = count_top_ngrams(generated, size=3, num_workers=2, chunk_size=300, show_progress=False)
    assert ranked[0] == ("number", 5000)


def test_an_interrupted_count_resumes_from_its_chunks(tmp_path, monkeypatch):
    from hf_sparse_distill.distillation import vocab

    texts = random_texts(600, seed=12)
    expected = count_top_ngrams(texts, size=300, num_workers=1, chunk_size=100, show_progress=False)
    counted = []
    real = vocab._count_chunk
    monkeypatch.setattr(vocab, "_count_chunk", lambda t, a, i, *rest: counted.append(i) or real(t, a, i, *rest))
    settings = dict(size=300, num_workers=1, chunk_size=100, show_progress=False, counts_dir=tmp_path / "counts")
    assert count_top_ngrams(texts, identity={"corpus": "a"}, **settings) == expected
    assert counted == [0, 1, 2, 3, 4, 5]
    # an interruption while chunk 4 was written: its marker and every partition's top are missing
    (tmp_path / "counts" / "chunk0000004.done").unlink()
    for top in (tmp_path / "counts").glob("top.part*.tsv"):
        top.unlink()
    counted.clear()
    assert count_top_ngrams(texts, identity={"corpus": "a"}, **settings) == expected
    assert counted == [4]
    counted.clear()  # other texts (another identity): nothing is reused
    other = count_top_ngrams(texts[:300], identity={"corpus": "b"}, **settings)
    assert counted == [0, 1, 2] and other == count_top_ngrams(texts[:300], 300, num_workers=1, show_progress=False)


def test_the_worker_pool_is_renewed_every_few_tasks():
    """Every `tasks_per_pool` calls run in a fresh pool (a worker's memory grows with the calls it runs), and every
    result comes back once."""
    import os

    from hf_sparse_distill.distillation.vocab import _run_bounded

    pids = list(_run_bounded(2, [(os.getpid,)] * 6, limit=2, tasks_per_pool=2))
    assert len(pids) == 6 and os.getpid() not in pids
    assert len(set(pids)) >= 3  # three pools of two workers: a single pool has only two
