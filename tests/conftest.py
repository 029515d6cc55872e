"""Shared fixtures: the tiny pretrained XLM-R, the synthetic data of every intermediate task and of the
grid's XTREME targets, built once per test session (about half a minute on two cores)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a hub; read before transformers is imported
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

from adapterxfer import synthetic  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A model folder loadable with ``from_pretrained``: tiny XLM-R weights, config and tokenizer."""
    return synthetic.build_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """A data root with one folder per intermediate task, in the tasks' local layout."""
    return synthetic.write_all(tmp_path_factory.mktemp("synthetic") / "data")


@pytest.fixture(scope="session")
def xtreme(tmp_path_factory):
    """Synthetic XTREME data (XNLI, PAN-X, BUCC, Tatoeba) for the grid tests' targets, and Tatoeba's gold."""
    root = tmp_path_factory.mktemp("xtreme")
    data = synthetic.write_xtreme(root / "download", tasks=["xnli", "panx", "bucc2018", "tatoeba"],
                                  n_train=32, n_dev=6, n_test=6)
    return data, synthetic.write_tatoeba_labels(data, root / "labels")


@pytest.fixture
def one_thread():
    """One torch thread: the tiny model gains nothing from more, and on busy shared cores more are far slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
