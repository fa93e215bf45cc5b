"""Freed heap memory is given back once the resident memory has grown enough, not at every call."""

from hf_sparse_distill.distillation import memory


def test_the_heap_is_trimmed_only_after_enough_growth(monkeypatch):
    resident, trims = [1000.0], []

    def trim(pad):
        trims.append(pad)
        resident[0] -= 300  # what the trim gives back

    monkeypatch.setattr(memory, "_malloc_trim", lambda: trim)
    monkeypatch.setattr(memory, "anonymous_memory_mb", lambda: resident[0])
    monkeypatch.setattr(memory, "_last_trimmed_mb", None)
    assert memory.release_free_memory(min_growth_mb=128) and trims == [0]  # the first call trims: 700 MB left
    resident[0] = 800.0
    assert not memory.release_free_memory(min_growth_mb=128) and trims == [0]  # +100 MB: a cheap check only
    resident[0] = 830.0
    assert memory.release_free_memory(min_growth_mb=128) and trims == [0, 0]  # +130 MB: trimmed, 530 MB left
    assert memory._last_trimmed_mb == 530.0
    resident[0] = 300.0  # a large structure freed (e.g. the teacher after labelling)
    assert not memory.release_free_memory(min_growth_mb=128) and memory._last_trimmed_mb == 300.0
    resident[0] = 440.0
    assert memory.release_free_memory(min_growth_mb=128) and len(trims) == 3  # +140 MB from the low point


def test_nothing_happens_where_the_c_library_cannot_trim(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    monkeypatch.setattr(memory, "_last_trimmed_mb", None)
    assert not memory.release_free_memory()


def test_this_process_memory_is_read():
    mb = memory.anonymous_memory_mb()
    assert mb is None or mb > 1  # Linux reports it; elsewhere it is unknown
