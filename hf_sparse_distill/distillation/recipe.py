"""Distillation recipes: typed settings read from YAML, with environment variables expanded in strings.

A recipe names the teacher, the data (Hub dataset ids or local files), the vocabulary, the student's shape and
the two training stages (KD, then optional fine-tuning on gold labels). `${VAR}` and `${VAR:-default}` are
expanded in every string, so `${HFSD_SHARED:-../shared}/data/sst2/train.jsonl` works on any machine.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import os
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..models.sparse_dan import SparseDANConfig

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RecipeError(ValueError):
    """A recipe file or override is malformed; the message names the field."""


@dataclass
class DatasetSource:
    """One split of one dataset.

    `path` is a Hub dataset id (`"glue"`, `"stanfordnlp/imdb"`), a `datasets` builder name used with `data_files`
    (`"json"`, `"csv"`, `"parquet"`, `"text"`), or a local file / glob (`.jsonl`, `.json`, `.csv`, `.parquet`,
    `.txt`, optionally `.gz`), whose format is taken from its extension. `split_sentences` turns each text into
    its sentences, `split_clauses` into the clauses of its sentences that have several (phrase-level transfer
    text, cheap to label); `min_words` / `max_words` then bound each piece and `max_rows` counts pieces.
    `label_map` maps the labels as read to the labels used (`{0: 0, 1: 0, 3: 1, 4: 1}` turns SST-5 into SST-2);
    rows whose label it does not name are dropped. `match` (unlabeled sources) keeps only the texts, or the pieces
    of a split source, in which this regular expression is found (`re.search`; in YAML, `match: '\\?$'` keeps
    questions). `text_pair_column` names the second text of sentence-pair data (every source of a pair recipe has
    one). `streaming` (unlabeled sources) reads the source with
    `load_dataset(..., streaming=True)` and writes its texts, up to `max_rows`, once into local Arrow shards: a Hub
    corpus too big to download whole is read only as far as needed and never held in memory (the copy is kept per
    source settings and, for local files, their size and time; a Hub source is followed by its `revision`).
    """

    path: str
    name: str | None = None
    split: str = "train"
    data_files: str | list[str] | None = None
    revision: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str | None = "label"
    max_rows: int | None = None
    split_sentences: bool = False
    split_clauses: bool = False
    min_words: int = 1
    max_words: int | None = None
    label_map: dict[int, int] | None = None
    match: str | None = None
    streaming: bool = False


@dataclass
class DataConfig:
    """Labeled train / dev (/ test) splits, the selection split and the unlabeled transfer corpus.

    Every choice a run makes (the checkpoint of each stage, KD or KD+FT) is made on the *selection* split, so the
    dev split the results report stays untouched. The selection split is a seeded sample of `select_size` labeled
    texts (default: 10 % of the texts drawn from, at most 2,000) drawn from `select` (default: from the train
    split); the sampled texts are removed from the train split and from the unlabeled corpus. With `select_drop_subtexts`, so is every text that occurs only inside the
    selection texts (as a run of words), e.g. the sub-phrases of held-out sentences in phrase-level data like
    SST: the selection texts are then as new to the student as dev texts are.
    """

    train: DatasetSource
    dev: DatasetSource
    test: DatasetSource | None = None
    unlabeled: list[DatasetSource] = field(default_factory=list)
    include_train_in_kd: bool = True
    select: DatasetSource | None = None
    select_size: int | None = None
    select_seed: int = 0
    select_drop_subtexts: bool = False


@dataclass
class TeacherTrainingConfig:
    """How `hf-sparse-distill teacher` fine-tunes `base_model` (a Hub id + revision, or a folder) into the teacher
    when the user has none: transformers' `Trainer`, AdamW with linear warm-up (`warmup_ratio` of the steps) and
    decay, texts cut to `max_length` tokens, the checkpoint kept the best on the selection split (evaluated every
    `eval_steps`). `labels` are the class names in id order (default `LABEL_0`, `LABEL_1`, ...)."""

    base_model: str | None = None
    revision: str | None = None
    labels: list[str] | None = None
    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    eval_steps: int = 200
    seed: int = 0


@dataclass
class TeacherConfig:
    """The fine-tuned teacher: any `AutoModelForSequenceClassification` (Hub id + revision, or a folder).
    `hub_id` names the teacher on the Hub when `model` is a local folder (the model card's `base_model`).
    `training` says how `hf-sparse-distill teacher` makes one (written to the folder `model`) from a base encoder.
    `truncation_side` is the end of a text longer than `max_length` that the teacher reads, when labelling and when
    fine-tuned: transformers' tokenizer setting, `right` (its first tokens), `left` (its last ones; of a sentence
    pair, those of the longer text) or None (the teacher's tokenizer's own, usually `right`). A teacher fine-tuned
    here keeps it in its tokenizer. `batch_tokens`: instead of `batch_size` texts per call, as many texts of one
    length class (token counts rounded up to a multiple of 8) as fit in that many padded tokens, at least 8: many
    short texts in one call, few long ones; what the logits mean does not depend on it. On SST-2's KD corpus and 2 CPU
    cores, 2048 labelled 1.05-1.08 times as many texts per second as 32 texts per call, 1024 0.96-1.10 times
    (`benchmarks/TEACHER_BATCHING.md`); in a whole run the gain is within the machine's drift (not set in the shipped
    recipes)."""

    model: str
    revision: str | None = None
    hub_id: str | None = None
    max_length: int = 512
    truncation_side: str | None = None
    batch_size: int = 64
    batch_tokens: int | None = None
    dtype: str = "auto"
    chunk_size: int = 4096
    training: TeacherTrainingConfig | None = None

    def tokenizer_settings(self) -> dict:
        """The settings the recipe gives the teacher's tokenizer (none: the tokenizer's own), as keyword arguments of
        `AutoTokenizer.from_pretrained`; they are part of what cached logits and fine-tuned teachers are known by."""
        return {"truncation_side": self.truncation_side} if self.truncation_side is not None else {}


@dataclass
class VocabConfig:
    """The n-gram vocabulary: the `size` most frequent n-grams of train ∪ unlabeled (paper: 1M, n = 1-4)."""

    size: int = 1_000_000
    ngram_range: list[int] = field(default_factory=lambda: [1, 4])
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    min_count: int = 1
    num_workers: int | None = None
    num_partitions: int | None = None


# Student settings are `SparseDANConfig`'s constructor arguments, declared there once: the recipe's `student` section
# takes the same names and defaults, minus what the vocabulary decides and what compression and calibration set.
_NOT_IN_RECIPES = (
    "vocab_size",
    "ngram_range",
    "pad_token_id",
    "table_quantization",
    "folded_first_layer",
    "logit_temperature",
    "cascade_threshold",
    "cascade_min_ngrams",
    "pair_mode",  # set by the data: a recipe with text_pair_column trains a pair student
)


def _student_fields() -> list[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(SparseDANConfig.__init__)
    out = []
    for name, parameter in inspect.signature(SparseDANConfig.__init__).parameters.items():
        if name == "self" or name in _NOT_IN_RECIPES or parameter.kind is parameter.VAR_KEYWORD:
            continue
        hint, default = hints[name], parameter.default
        if isinstance(default, (list, tuple)):  # sequences are lists in YAML
            hint, default = list[int], field(default_factory=functools.partial(list, default))
        out.append((name, hint, default))
    return out


StudentConfig = dataclasses.make_dataclass("StudentConfig", _student_fields())
StudentConfig.__module__ = __name__
StudentConfig.__doc__ = """Shape of the DAN student: the arguments of `SparseDANConfig` (same names, same defaults) except
`vocab_size`, `ngram_range` and `pad_token_id`, which come from the vocabulary, and `pair_mode`, from the data."""


@dataclass
class AugmentConfig:
    """Teacher-labelled augmentation of the train set (Tang et al., 2019): word masking, word replacement (by a
    word seen after the same previous word in the train texts, `augment.py`) and n-gram sampling. `words_from`:
    unlabeled sources (their `text` column, read into memory; bound big ones with `max_rows`) whose words widen the
    replacement: a replacing word is swapped for a word that follows one of its predecessors in the train texts or
    these sources. They are not labelled themselves."""

    enabled: bool = False
    copies_per_example: int = 1
    mask_prob: float = 0.1
    replace_prob: float = 0.0
    ngram_sample_prob: float = 0.25
    max_sample_words: int = 5
    seed: int = 0
    words_from: list[DatasetSource] = field(default_factory=list)


@dataclass
class StageConfig:
    """One training stage. `alpha` weighs the KD loss against gold-label cross-entropy:
    1.0 is pure KD (paper stage 2), 0.0 is plain fine-tuning on labels (paper stage 3).
    `embedding_learning_rate` (default: `learning_rate`) is the table's own rate: with far fewer updates than the
    paper's 1M steps, rare n-gram rows need a larger one to move. `weight_decay` applies to the head;
    `embedding_weight_decay` (decoupled, as AdamW's) and `embedding_max_norm` (a cap on a row's L2 norm) apply to the
    table rows a step updates. `average_last_evaluations` (0: off, else >= 2) averages the weights at the stage's
    last evaluations and keeps the average if it scores higher on the selection split than every checkpoint (it
    holds one more copy of the weights in memory and in each checkpoint). `embedding_init` (kd and scratch, which
    start a new student): `"random"` rows of `student.embedding_init_std`, or `"teacher"`: each n-gram's row is the
    teacher's representation of its text, reduced by PCA and scaled to that standard deviation (`table_init`). A
    finished stage deletes its checkpoints (each holds the table three times: weights and Adam moments) unless
    `keep_checkpoints`."""

    enabled: bool = True
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 2048
    learning_rate: float = 5e-4
    embedding_learning_rate: float | None = None
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    weight_decay: float = 0.01
    embedding_weight_decay: float = 0.0
    embedding_max_norm: float | None = None
    average_last_evaluations: int = 0
    embedding_init: str = "random"
    warmup_ratio: float = 0.06
    temperature: float = 1.0
    alpha: float = 1.0
    max_grad_norm: float | None = None
    eval_steps: int | None = None
    save_steps: int | None = None
    save_total_limit: int = 2
    keep_checkpoints: bool = False
    eval_batch_size: int = 1024


RUNTIME_ONLY_SETTINGS = ("enabled", "save_steps", "save_total_limit", "keep_checkpoints", "eval_batch_size")
"""Stage settings that change how a stage runs and what it keeps on disk, not the student it trains."""


def _default_finetune() -> StageConfig:
    return StageConfig(enabled=False, epochs=3.0, batch_size=32, learning_rate=1e-4, alpha=0.0)


def _default_scratch() -> StageConfig:
    return StageConfig(enabled=False, epochs=5.0, batch_size=256, learning_rate=1e-3, alpha=0.0)


@dataclass
class Recipe:
    """Everything `hf-sparse-distill distill` needs, from data to the published student. `cascade_target_retention`
    is the accuracy (a share of the teacher's, on the selection split) the calibrated cascade threshold aims at."""

    task: str
    data: DataConfig
    teacher: TeacherConfig
    output_dir: str = "runs/student"
    cache_dir: str | None = None
    vocab: VocabConfig = field(default_factory=VocabConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    kd: StageConfig = field(default_factory=StageConfig)
    finetune: StageConfig = field(default_factory=_default_finetune)
    scratch: StageConfig = field(default_factory=_default_scratch)
    seed: int = 0
    mixed_precision: str = "no"
    speed_seconds: float = 5.0
    cascade_target_retention: float = 0.995
    report_to: list[str] = field(default_factory=list)
    hub_repo_id: str | None = None
    hub_private: bool = False
    license: str | None = None
    language: str | None = "en"
    dataset_ids: list[str] = field(default_factory=list)

    @property
    def cache_path(self) -> Path:
        """Where reusable artefacts (teacher logits) live: `cache_dir`, or `<output_dir>/cache`."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.output_dir) / "cache"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what `recipe.json` holds)."""
        return dataclasses.asdict(self)


def expand_env(value: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}`; an unset variable without a default is an error."""

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise RecipeError(f"environment variable {name} is not set (used in {value!r}); set it or give a default")

    return _ENV_PATTERN.sub(replace, value)


def _build(cls: type, data: Any, where: str) -> Any:
    """Turn plain YAML data into the dataclass `cls`, checking field names and basic types."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RecipeError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(names)}")
    values = {key: _convert(hints[key], value, f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise RecipeError(f"{where}: {error}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    if isinstance(value, str):
        value = expand_env(value)
        if hint is int and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)  # `${BATCH:-32}` fills an int field
        if hint is bool and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except RecipeError as error:
                errors.append(str(error))
        raise RecipeError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {hint}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {value!r}")
        key_hint, value_hint = typing.get_args(hint)
        return {
            _convert(key_hint, k, f"{where}.{k}"): _convert(value_hint, v, f"{where}.{k}") for k, v in value.items()
        }
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)  # PyYAML reads `1e-3` (no dot) as a string
        except ValueError:
            raise RecipeError(f"{where}: expected a number, got {value!r}") from None
    if hint is Any or (
        isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    ):
        return value
    raise RecipeError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` override (value parsed as YAML) to raw recipe data; an item of a list is
    named by its index (`data.unlabeled[2].max_rows=1000`)."""
    if "=" not in assignment:
        raise RecipeError(f"override {assignment!r} must look like section.field=value")
    key, raw = assignment.split("=", 1)
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        name, index = re.fullmatch(r"([^\[\]]+)(?:\[(\d+)\])?", part).groups()
        node = node.setdefault(name, {})
        if index is not None:
            if not isinstance(node, list) or int(index) >= len(node):
                raise RecipeError(f"override {assignment!r}: {name} has no item {index}")
            node = node[int(index)]
        if not isinstance(node, dict):
            raise RecipeError(f"override {assignment!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(raw)


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML file of a recipe: a path to a file, or the name of a recipe shipped with the package
    (`sst2_shared` → `hf_sparse_distill/recipes/sst2_shared.yaml`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = resources.files("hf_sparse_distill.recipes")
    candidate = shipped / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if len(path.parts) == 1 and candidate.is_file():
        return Path(str(candidate))
    names = sorted(entry.name.removesuffix(".yaml") for entry in shipped.iterdir() if entry.name.endswith(".yaml"))
    raise FileNotFoundError(
        f"no recipe file {str(name_or_path)!r} and no shipped recipe of that name; shipped: {names}"
    )


def recipe_from_dict(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), where: str = "recipe"
) -> Recipe:
    """Build a recipe from plain data (as read from YAML), after `section.field=value` overrides; environment
    variables are expanded and every field is checked (types, then ranges: see `validate`)."""
    data = copy.deepcopy(data)
    for assignment in overrides:
        apply_override(data, assignment)
    recipe = _build(Recipe, data, where)
    validate(recipe, where)
    return recipe


def _positive(value: Any) -> bool:
    return value > 0


def _at_least_one(value: Any) -> bool:
    return value >= 1


def _optional(check: Any) -> Any:
    return lambda value: value is None or check(value)


def _unit(value: float) -> bool:
    return 0.0 <= value <= 1.0


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _valid_pattern(pattern: str) -> bool:
    return _compiles(pattern) and re.fullmatch(pattern, "") is None and re.fullmatch(pattern, " ") is None


# Range checks, by dataclass: (field, check, what the field must be). Run at load time, before any expensive step.
_RULES: dict[type, list[tuple[str, Any, str]]] = {
    DatasetSource: [
        ("max_rows", _optional(_at_least_one), "None or >= 1"),
        ("min_words", _at_least_one, ">= 1"),
        ("max_words", _optional(_at_least_one), "None or >= 1"),
        ("match", _optional(_compiles), "None or a regular expression"),
    ],
    DataConfig: [("select_size", _optional(_at_least_one), "None or >= 1")],
    TeacherConfig: [
        ("max_length", _at_least_one, ">= 1"),
        ("batch_size", _at_least_one, ">= 1"),
        ("batch_tokens", _optional(_at_least_one), "None or >= 1"),
        ("chunk_size", _at_least_one, ">= 1"),
        ("dtype", lambda v: v in ("auto", "float32", "bfloat16", "float16"), "one of auto, float32, bfloat16, float16"),
        ("truncation_side", _optional(lambda v: v in ("left", "right")), "None, left or right"),
    ],
    TeacherTrainingConfig: [
        ("epochs", _positive, "> 0"),
        ("learning_rate", _positive, "> 0"),
        ("batch_size", _at_least_one, ">= 1"),
        ("max_length", _at_least_one, ">= 1"),
        ("weight_decay", lambda v: v >= 0, ">= 0"),
        ("warmup_ratio", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        ("max_grad_norm", _positive, "> 0"),
        ("eval_steps", _at_least_one, ">= 1"),
    ],
    VocabConfig: [
        ("size", _at_least_one, ">= 1"),
        ("ngram_range", lambda v: len(v) == 2 and 1 <= v[0] <= v[1], "[min_n, max_n] with 1 <= min_n <= max_n"),
        ("token_pattern", _valid_pattern, "a regular expression that matches no empty string or space"),
        ("min_count", _at_least_one, ">= 1"),
        ("num_workers", _optional(lambda v: v >= 0), "None or >= 0"),
        ("num_partitions", _optional(lambda v: v >= 1), "None or >= 1"),
    ],
    AugmentConfig: [
        ("copies_per_example", _at_least_one, ">= 1"),
        ("mask_prob", _unit, "in [0, 1]"),
        ("replace_prob", _unit, "in [0, 1]"),
        ("ngram_sample_prob", _unit, "in [0, 1]"),
        ("max_sample_words", _at_least_one, ">= 1"),
    ],
    StageConfig: [
        ("epochs", _positive, "> 0"),
        ("max_steps", _optional(_at_least_one), "None or >= 1"),
        ("batch_size", _at_least_one, ">= 1"),
        ("learning_rate", _positive, "> 0"),
        ("embedding_learning_rate", _optional(_positive), "None or > 0"),
        ("betas", lambda v: len(v) == 2 and all(0.0 <= b < 1.0 for b in v), "two numbers in [0, 1)"),
        ("eps", _positive, "> 0"),
        ("weight_decay", lambda v: v >= 0, ">= 0"),
        ("embedding_weight_decay", lambda v: v >= 0, ">= 0"),
        ("embedding_max_norm", _optional(_positive), "None or > 0"),
        ("average_last_evaluations", lambda v: v == 0 or v >= 2, "0 (off) or >= 2"),
        ("embedding_init", lambda v: v in ("random", "teacher"), "random or teacher"),
        ("warmup_ratio", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        ("temperature", _positive, "> 0"),
        ("alpha", _unit, "in [0, 1] (1 = pure KD, 0 = gold labels only)"),
        ("max_grad_norm", _optional(_positive), "None or > 0"),
        ("eval_steps", _optional(_at_least_one), "None or >= 1"),
        ("save_steps", _optional(_at_least_one), "None or >= 1"),
        ("save_total_limit", _at_least_one, ">= 1"),
        ("eval_batch_size", _at_least_one, ">= 1"),
    ],
    Recipe: [
        ("mixed_precision", lambda v: v in ("no", "bf16", "fp16"), "one of no, bf16, fp16"),
        ("speed_seconds", lambda v: v >= 0, ">= 0"),
        ("cascade_target_retention", lambda v: 0 < v <= 1, "in (0, 1]"),
    ],
}


def validate(recipe: Recipe, where: str = "recipe") -> None:
    """Check every number and choice of a recipe against its range; raise `RecipeError` naming the first field
    out of range. The student's settings are checked by building its `SparseDANConfig`."""

    def walk(node: Any, path: str) -> None:
        for name, check, expected in _RULES.get(type(node), []):
            value = getattr(node, name)
            if not check(value):
                raise RecipeError(f"{where}: {path}{name} must be {expected}, got {value!r}")
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            children = value if isinstance(value, list) else [value]
            for i, child in enumerate(children):
                if dataclasses.is_dataclass(child):
                    walk(child, f"{path}{f.name}{f'[{i}]' if isinstance(value, list) else ''}.")

    walk(recipe, "")
    if recipe.finetune.embedding_init != "random":
        raise RecipeError(f"{where}: finetune.embedding_init must be random: fine-tuning starts from the KD student")
    augment = recipe.augment
    if augment.words_from and not (augment.enabled and augment.replace_prob > 0):
        raise RecipeError(
            f"{where}: augment.words_from widens word replacement: it needs augment.enabled and augment.replace_prob > 0"
        )
    if any(source.text_pair_column is not None for source in augment.words_from):
        raise RecipeError(f"{where}: augment.words_from reads single texts (its words), not text_pair_column")
    try:
        SparseDANConfig(
            **dataclasses.asdict(recipe.student),
            vocab_size=2,
            ngram_range=recipe.vocab.ngram_range,
            pair_mode=recipe.data.train.text_pair_column is not None,
        )
    except (ValueError, TypeError) as error:
        raise RecipeError(f"{where}: student: {error}") from None


def load_recipe(name_or_path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a YAML recipe (a path, or the name of a shipped recipe), apply `section.field=value` overrides, expand
    environment variables, validate."""
    path = recipe_path(name_or_path)
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return recipe_from_dict(data, overrides, path.name)
