"""The batched pipeline returns exactly what the stock text-classification pipeline returns."""

import pytest
from conftest import random_texts
from test_odd_inputs import ODD_TEXTS
from transformers import pipeline

from hf_sparse_distill import SparseDANClassificationPipeline

OPTIONS = [
    {},
    {"top_k": None},
    {"top_k": 1},
    {"top_k": 2},
    {"function_to_apply": "sigmoid"},
    {"function_to_apply": "none"},
    {"truncation": True},
    {"truncation": False},
    {"max_length": 3},  # the tokenizer truncates when max_length is given without truncation
    {"truncation": True, "max_length": 2},
    {"truncation": False, "max_length": 2},
    {"truncation": "longest_first", "max_length": 2},
    {"padding": True},
    {"num_workers": 0},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_same_outputs_as_the_stock_pipeline(model, tokenizer, options):
    stock = pipeline("text-classification", model=model, tokenizer=tokenizer)
    fast = pipeline(
        "text-classification", model=model, tokenizer=tokenizer, pipeline_class=SparseDANClassificationPipeline
    )
    assert isinstance(fast, SparseDANClassificationPipeline)
    texts = random_texts(40, seed=8) + ODD_TEXTS[:-1]
    expected = stock(texts, batch_size=4, **options)
    for batch_size in (1, 7, None):
        got = fast(texts, **({"batch_size": batch_size} if batch_size else {}), **options)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            pairs = zip(a, b) if isinstance(a, list) else [(a, b)]
            for x, y in pairs:
                assert x["label"] == y["label"] and x["score"] == pytest.approx(y["score"], abs=1e-6)


@pytest.mark.parametrize(
    "options", [{"top_k": None}, {"function_to_apply": "SIGMOID"}, {"truncation": True, "max_length": 2}]
)
def test_options_given_to_pipeline_apply_as_in_the_stock_pipeline(model, tokenizer, options):
    """Options passed when the pipeline is built count for every call (base `Pipeline.__call__` merges them)."""
    texts = random_texts(20, seed=10)
    expected = pipeline("text-classification", model=model, tokenizer=tokenizer, **options)(texts, batch_size=4)
    fast = pipeline(
        "text-classification",
        model=model,
        tokenizer=tokenizer,
        pipeline_class=SparseDANClassificationPipeline,
        **options,
    )
    calls = [fast(texts)] + ([] if "top_k" in options else [fast(texts, coverage=True)])
    for got in calls:
        for a, b in zip(got, expected, strict=True):
            for x, y in zip(a, b) if isinstance(a, list) else [(a, b)]:
                assert x["label"] == y["label"] and x["score"] == pytest.approx(y["score"], abs=1e-6)


@pytest.mark.parametrize("problem_type", ["regression", "multi_label_classification", "single_label_classification"])
def test_default_scores_follow_the_problem_type_like_the_stock_pipeline(model, tokenizer, problem_type):
    import copy

    model = copy.deepcopy(model)
    model.config.problem_type = problem_type
    texts = random_texts(30, seed=9)
    stock = pipeline("text-classification", model=model, tokenizer=tokenizer)(texts, batch_size=4)
    fast = pipeline(
        "text-classification", model=model, tokenizer=tokenizer, pipeline_class=SparseDANClassificationPipeline
    )
    for x, y in zip(fast(texts, batch_size=8), stock, strict=True):
        assert x["label"] == y["label"] and x["score"] == pytest.approx(y["score"], abs=1e-6)


def test_single_text_and_errors_use_the_stock_path(model, tokenizer, saved_student):
    fast = pipeline("text-classification", model=str(saved_student), pipeline_class=SparseDANClassificationPipeline)
    stock = pipeline("text-classification", model=str(saved_student))
    assert fast("the movie is good")[0]["label"] == stock("the movie is good")[0]["label"]
    with pytest.raises(TypeError):
        fast(["fine", 3])


@pytest.mark.parametrize(
    "options, error",
    [
        ({"batch_size": -1}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"return_offsets_mapping": True}, NotImplementedError),
        ({"no_such_option": 1}, TypeError),
        ({"max_length": 0}, ValueError),
    ],
)
def test_same_errors_as_the_stock_pipeline(model, tokenizer, options, error):
    stock = pipeline("text-classification", model=model, tokenizer=tokenizer)
    fast = pipeline(
        "text-classification", model=model, tokenizer=tokenizer, pipeline_class=SparseDANClassificationPipeline
    )
    texts = random_texts(5, seed=2)
    with pytest.raises(error):
        stock(texts, **options)
    with pytest.raises(error):
        fast(texts, **options)
