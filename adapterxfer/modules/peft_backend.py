"""``peft`` backend: LoRA on a Hugging Face task model, the head trained through ``modules_to_save``."""
from __future__ import annotations

from .base import Backend, HeadSpec, MethodConfig

#: format -> (transformers auto class, peft task type, head module name)
TASK_MODELS = {
    "classification": ("AutoModelForSequenceClassification", "SEQ_CLS", "classifier"),
    "multiple_choice": ("AutoModelForMultipleChoice", None, "classifier"),  # peft has no MC task type
    "tagging": ("AutoModelForTokenClassification", "TOKEN_CLS", "classifier"),
    "span_qa": ("AutoModelForQuestionAnswering", "QUESTION_ANS", "qa_outputs"),
}

_PATTERNS = {"query": r"attention\.self\.query", "key": r"attention\.self\.key",
             "value": r"attention\.self\.value", "intermediate": r"intermediate\.dense",
             "output": r"layer\.\d+\.output\.dense"}


def lora_target_regex(targets) -> str:
    """A peft ``target_modules`` regex for our target names (``output`` is the FFN output only)."""
    return rf".*\.({'|'.join(_PATTERNS[t] for t in targets)})$"


def task_model(model_path: str, head: HeadSpec):
    import transformers

    cls_name, _, _ = TASK_MODELS[head.format]
    kw = {}
    if head.labels:
        kw = {"num_labels": head.num_labels, "id2label": dict(enumerate(head.labels)),
              "label2id": {n: i for i, n in enumerate(head.labels)}}
    return getattr(transformers, cls_name).from_pretrained(model_path, **kw)


class PeftBackend(Backend):
    @classmethod
    def create(cls, model_path: str, name: str, method: MethodConfig, heads: list[HeadSpec]):
        from peft import LoraConfig, get_peft_model

        head = heads[0]
        base = task_model(model_path, head)
        self = cls()
        self.base_parameters = sum(p.numel() for p in base.base_model.parameters())
        _, task_type, head_module = TASK_MODELS[head.format]
        config = LoraConfig(task_type=task_type, r=method.lora_r, lora_alpha=method.lora_alpha,
                            lora_dropout=method.lora_dropout,
                            target_modules=lora_target_regex(method.lora_targets),
                            modules_to_save=[head_module])
        self.model = get_peft_model(base, config)  # adapter "default": saved at the folder's root
        self.name, self.method, self.heads = name, method, {head.name: head}
        return self

    def forward(self, head: str, batch: dict):
        return self.model(**batch)

    def save(self, directory) -> None:
        self.model.save_pretrained(str(directory), safe_serialization=True)
