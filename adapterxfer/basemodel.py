"""The frozen base model: loading its config and tokenizer with clear errors, and its identity hash."""
from __future__ import annotations

from .errors import UserError
from .fileio import sha256_json

#: Encoders that the ``adapters`` flex-head models and peft's task models both support.
SUPPORTED_TYPES = ("xlm-roberta", "roberta", "bert", "xlm-roberta-xl")
#: Those of them that ``adapters`` 1.3 has models for (it has none for XLM-R XL/XXL; peft's LoRA takes them).
ADAPTERS_TYPES = ("xlm-roberta", "roberta", "bert")
#: Hub models whose type matters before their config can be read (offline planning): XL and XXL
#: (facebook/xlm-roberta-xl's config.json: model_type xlm-roberta-xl; XXL is the same architecture).
HUB_TYPES = {"facebook/xlm-roberta-xl": "xlm-roberta-xl", "facebook/xlm-roberta-xxl": "xlm-roberta-xl"}
_VOLATILE = ("_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype", "id2label",
             "label2id", "adapters", "prediction_heads", "custom_heads", "problem_type", "num_labels",
             "finetuning_task", "_attn_implementation_autoset")


def _offline_hint(model: str) -> str:
    return (f"cannot load '{model}': it is not a local model folder and the Hugging Face Hub cannot be "
            f"reached (or has no such model); download it where there is a network "
            f"(huggingface-cli download {model} --local-dir DIR) and pass --model DIR")


def load_config(model: str):
    """The model's config; refuses models that are not XLM-R-compatible encoders."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError):
        raise UserError(_offline_hint(model)) from None
    if config.model_type not in SUPPORTED_TYPES:
        raise UserError(f"'{model}' is a {config.model_type} model; adapterxfer trains modules on "
                        f"XLM-R-compatible encoders ({', '.join(SUPPORTED_TYPES)})")
    return config


def known_type(model: str) -> str | None:
    """The model type of a local model folder ('demo': the tiny XLM-R) or a hub id in :data:`HUB_TYPES`,
    without loading anything; None where it cannot be known offline."""
    import json
    from pathlib import Path

    if model == "demo":
        return "xlm-roberta"
    config = Path(model).expanduser() / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    return HUB_TYPES.get(model)


def check_backend(config, backend: str) -> None:
    """Refuse a base model that ``backend`` has no model class for, before it fails deep inside the library."""
    if backend == "adapters" and config.model_type not in ADAPTERS_TYPES:
        raise UserError(f"the adapters library has no {config.model_type} models ({', '.join(ADAPTERS_TYPES)}): "
                        f"train LoRA with --backend peft on this base")


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError):
        raise UserError(_offline_hint(model)) from None
    if not tokenizer.is_fast:
        raise UserError(f"'{model}' has no fast tokenizer (tokenizer.json); offsets for QA and tagging need one")
    return tokenizer


def config_hash(config) -> str:
    """sha256 of the architecture-defining config values: equal for copies of the same base model."""
    values = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE}
    return sha256_json(values)
