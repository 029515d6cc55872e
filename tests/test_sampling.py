"""Training-data subsampling: seeded, stratified by label, recorded with the module."""
from collections import Counter

import pytest

from adapterxfer.errors import UserError
from adapterxfer.sampling import subsample

DATA = [{"text_a": f"s{i}", "text_b": None, "label": 0 if i < 600 else (1 if i < 900 else 2)} for i in range(1000)]


def test_stratified_by_label_and_reproducible():
    a = subsample(DATA, size=100, seed=3)
    assert Counter(e["label"] for e in a) == {0: 60, 1: 30, 2: 10}  # 60/30/10 % of the full set
    assert a == subsample(DATA, size=100, seed=3)
    assert a != subsample(DATA, size=100, seed=4)
    assert [e["text_a"] for e in a] == sorted((e["text_a"] for e in a), key=lambda t: int(t[1:]))  # order kept


def test_fraction_and_rounding_to_the_exact_size():
    b = subsample(DATA, fraction=0.05, seed=0)
    assert len(b) == 50 and Counter(e["label"] for e in b) == {0: 30, 1: 15, 2: 5}
    c = subsample(DATA, size=7, seed=0)  # quotas 4.2 / 2.1 / 0.7: largest remainder gives label 2 the 7th
    assert len(c) == 7 and Counter(e["label"] for e in c) == {0: 4, 1: 2, 2: 1}


def test_unlabelled_formats_sample_uniformly_and_large_sizes_keep_everything():
    qa = [{"id": str(i), "question": "q", "context": "c", "answers": {"text": [], "answer_start": []}}
          for i in range(50)]
    assert len(subsample(qa, size=10, seed=1)) == 10
    assert subsample(DATA, size=5000) is DATA


@pytest.mark.parametrize("kw, message", [({"size": 5, "fraction": 0.5}, "not both"),
                                         ({"fraction": 1.5}, r"\(0, 1\]"), ({"size": 0}, "at least 1")])
def test_bad_arguments(kw, message):
    with pytest.raises(UserError, match=message):
        subsample(DATA, **kw)
