"""Hub entries made from a finished module folder, and the model card rendered from an entry.

The model card is ``README.md`` with Hugging Face metadata (``library_name``, ``base_model``, ``tags``),
so the Hugging Face Hub shows it; a peft module already ships a ``README.md`` (peft's template) that its
``adapterxfer.json`` checksums, so there the card is ``MODEL_CARD.md`` and the module stays intact.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..errors import UserError
from ..fileio import sha256_file
from .index import CARD, check_name, check_path

HUB_CARD = "hub.json"  # beside a pulled module in the cache: the entry it was installed from, and the hub
#: head format -> the transformers class a peft module loads on (as ``modules.peft_backend.TASK_MODELS``)
AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification", "multiple_choice": "AutoModelForMultipleChoice",
                "tagging": "AutoModelForTokenClassification", "span_qa": "AutoModelForQuestionAnswering"}


def entry_from_module(folder, name: str, *, license: str = "unknown", description: str = "",
                      training_data: str | None = None, base_model: str | None = None, results=(), hub=None) -> dict:
    """A proposed entry (no version yet) for the finished module in ``folder``; its files are verified.

    ``base_model`` names the base model's public id where the module was trained on a local copy. With
    ``hub``, the hub it goes to, a target's intermediates must be there (see ``composition``).
    """
    from ..modules.composition import read_module

    module = read_module(folder)
    card = module.card
    if module.method == "full":
        raise UserError(f"{folder} is fully fine-tuned (--method full): a hub shares parameter-efficient modules; "
                        f"that folder is a complete model, loaded with from_pretrained({str(folder)!r})")
    files = {rel: Path(folder) / rel for rel in sorted([*card["files"], CARD])}
    for rel in files:
        check_path(rel)
    entry = {
        "name": check_name(name),
        "description": description,
        "license": license,
        "base_model": {**card["base_model"], "id": base_model or card["base_model"]["id"]},
        "task": card["task"],
        "kind": card["kind"],
        "members": card.get("members", []),
        "composition": composition(card.get("composition", {"compose": "none", "intermediates": []}), folder, hub),
        "method": card["method"],
        "heads": card["heads"],
        "training_data": training_data or describe_data(card),
        "hyperparameters": card["hyperparameters"],
        "dev_metrics": card["dev_metrics"],
        "trainable_parameters": card["trainable_parameters"],
        "base_parameters": card["base_parameters"],
        "library_versions": card["library_versions"],
        "adapterxfer_version": __version__,
        "files": {rel: {"sha256": card["files"].get(rel) or sha256_file(path), "size": path.stat().st_size}
                  for rel, path in files.items()},
    }
    if results:
        entry["xtreme_results"] = dict(read_results(r) for r in results)
    return entry


def describe_data(card: dict) -> str:
    """Where the training data came from: the task's Hugging Face data sets, or "local files (<folder>)",
    with its language when not English ("local files (mnli-de), language de")."""
    from ..tasks import get_task, members

    if card.get("training_data", "huggingface") != "huggingface":
        lang = card.get("training_language", "en")
        return f"local files ({Path(card['training_data']).name})" + (f", language {lang}" if lang != "en" else "")
    sources = []
    for member in members(get_task(card["task"])):
        sources += [s.hf_path + (f"/{s.hf_config}" if s.hf_config else "") for s in member.sources if s.hf_path]
    return ", ".join(dict.fromkeys(sources)) or "local files"


def composition(comp: dict, folder=None, hub=None) -> dict:
    """The intermediates a target module was trained on, without local paths: task, method, and
    ``hub: name@version`` where the intermediate came from a hub (its cached ``hub.json``) or, with
    ``hub``, where that hub holds the same files. Pushing to ``hub`` a target whose intermediate is on no
    hub is refused: whoever pulled it could not load it."""
    inters = []
    for ref in comp.get("intermediates", []):
        item = {"task": ref["task"], "method": ref["method"]}
        pulled = Path(ref.get("path", "")) / HUB_CARD
        if ref.get("path") and pulled.is_file():
            e = json.loads(pulled.read_text(encoding="utf-8"))["entry"]
            item["hub"] = f"{e['name']}@{e['version']}"
        elif hub is not None:
            item["hub"] = holding(hub, ref["files"])
            if item["hub"] is None:
                where = (f"push that one first (adapterxfer hub push {ref['path']} --hub {hub} --name NAME), then "
                         f"this one" if hasattr(hub, "entries") else
                         f"{hub} has no index to find it in: train the target on an intermediate pulled from a hub "
                         f"(--stack hub:NAME@VERSION)")
                raise UserError(f"{folder} was trained on the intermediate module {ref['path']} ({ref['task']}), "
                                f"which is not on {hub}, so whoever pulls it could not load it: {where}")
        inters.append(item)
    return {"compose": comp.get("compose", "none"), "intermediates": inters}


def holding(hub, files: dict) -> str | None:
    """``name@version`` of the first entry on ``hub`` whose files include ``files`` (path -> sha256)."""
    for e in sorted(hub.entries() if hasattr(hub, "entries") else [], key=lambda e: (e["name"], e["version"])):
        if all(e["files"].get(rel, {}).get("sha256") == digest for rel, digest in files.items()):
            return f"{e['name']}@{e['version']}"
    return None


def read_results(path) -> tuple[str, dict]:
    """One ``results.json`` of ``adapterxfer evaluate``: (task, {split, languages, scores})."""
    try:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        return r["task"], {"split": r["split"], "languages": r["languages"], "scores": r["scores"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a results.json written by adapterxfer evaluate") from None


# ---------------------------------------------------------------- rendering

def describe_method(method: dict) -> str:
    """``lora (peft): lora_r 8, lora_alpha 16, ...``: the method, its backend and its settings."""
    settings = [f"{k} {','.join(v) if isinstance(v, list) else v}" for k, v in method.items()
                if k not in ("method", "backend")]
    return f"{method['method']} ({method['backend']})" + (": " + ", ".join(settings) if settings else "")


def card_name(entry: dict) -> str:
    return "MODEL_CARD.md" if "README.md" in entry["files"] else "README.md"


def usage(entry: dict, hub: str) -> dict:
    """The exact commands and code to get and use this entry from ``hub``: ``python`` loads it in plain
    adapters / peft with its intermediates composed as in training, or, where only adapterxfer can (light
    fusion's mixing weights), with adapterxfer and ``plain`` false."""
    ref = f"{entry['name']}@{entry['version']}"
    base = entry["base_model"]["id"]
    comp = entry.get("composition") or {"compose": "none", "intermediates": []}
    inters = [i["hub"] for i in comp["intermediates"]]  # name@version (a pushed target's are on a hub)
    fusion = entry.get("hyperparameters", {}).get("fusion", "dynamic")
    plain = not (comp["compose"] == "fuse" and fusion == "light")  # light fusion: mixing weights of our own
    fetched = [("path", ref), *((f"inter{i}", r) for i, r in enumerate(inters) if plain)]
    org = hub.removeprefix("hf://").split("/")[0]  # hf://org/repo: every entry is a repository of org
    if hub.startswith("hf://"):  # plain libraries fetch the tagged version themselves
        get = "from huggingface_hub import snapshot_download\n\n" + "".join(
            f"{var} = snapshot_download({org + '/' + r.split('@')[0]!r}, revision='v{r.split('@')[1]}')\n"
            for var, r in fetched)
    else:
        get = "import os\n\n" + "".join(
            f"{var} = os.path.expanduser({'~/.cache/adapterxfer/hub/' + r.replace('@', '/')!r})  "
            f"# the folder the pull printed\n" for var, r in fetched)
    heads = list(entry.get("heads", {}).items())
    lora = entry["method"]["method"] == "lora"
    if not plain:
        code = (f"from adapterxfer.modules import load_trained\n{get}"
                f"model = load_trained(path, model={base!r}).model  # its intermediates: pull them too, or set "
                f"ADAPTERXFER_HUB={hub}")
    elif entry["method"]["backend"] == "peft":
        fmt = heads[0][1] if heads else {"format": "classification", "labels": []}
        auto = AUTO_CLASSES[fmt["format"]]
        labels = (f", id2label={dict(enumerate(fmt['labels']))!r}, label2id="
                  f"{ {n: i for i, n in enumerate(fmt['labels'])}!r}") if fmt.get("labels") else ""
        code = f"from peft import PeftModel\nfrom transformers import {auto}\n{get}"
        code += f"base = {auto}.from_pretrained({base!r}{labels})\n"
        if inters:  # stacked: trained on W + dW_inter
            code = code.replace("from peft import PeftModel\n", PEFT_MERGE)
            code += "".join(f"base = merged(base, inter{i})\n" for i in range(len(inters)))
        code += "model = PeftModel.from_pretrained(base, path)"
    else:
        blocks = "" if lora else {"fuse": ", Fuse, Stack", "stack": ", Stack"}.get(comp["compose"], "")
        code = f"from adapters import AutoAdapterModel{blocks}\n{get}"
        code += f"model = AutoAdapterModel.from_pretrained({base!r})\n"
        names = [f"inter{i}_{item['task']}" for i, item in enumerate(comp["intermediates"])]
        code += "".join(f"model.load_adapter(inter{i}, with_head=False, load_as={n!r}, use_safetensors=True)\n"
                        for i, n in enumerate(names))
        if inters and lora:  # adapters' Stack chains LoRA deltas: the intermediate goes into the weights instead
            code = code.replace("\n", "\nfrom adapters.methods.lora import LoRALayer\n", 1)
            code += "".join(ADAPTERS_MERGE.format(name=n) for n in names)
        if comp["compose"] == "fuse":
            code += "model.load_adapter_fusion(path + '/fusion', use_safetensors=True)\n"
        code += "name = model.load_adapter(path, use_safetensors=True, set_active=True)"
        if len(heads) > 1:  # a multi-task module: the active head is the last one loaded
            code += "".join(f"\nmodel.load_head(path + '/heads/{h}', use_safetensors=True)" for h, _ in heads)
            code += f"\n# a head per task: name one in each call, e.g. model(**batch, head={heads[0][0]!r})"
        if inters and not lora:
            under = f"Fuse{tuple(names)!r}" if comp["compose"] == "fuse" else repr(names[0])
            code += f"\nmodel.set_active_adapters(Stack({under}, name))  # the intermediates under it, as trained"
    if entry["kind"] == "intermediate":
        use = (f"ADAPTERXFER_HUB={hub} adapterxfer train-target xnli --stack hub:{ref} --model {base} "
               f"--output runs/{entry['name']}-xnli")
    else:
        use = (f"ADAPTERXFER_HUB={hub} adapterxfer evaluate hub:{ref} --data-dir ./download "
               f"--output results/{entry['name']}")
    org_hub = f"hf://{org}" if hub.startswith("hf://") else hub
    pull = "\n".join([f"adapterxfer hub pull {ref} --hub {hub}", *(f"adapterxfer hub pull {r} --hub {org_hub}"
                                                                    for r in inters)])
    return {"pull": pull, "use": use, "python": code, "plain": plain}


#: peft: a LoRA intermediate folded into the base weights, its own head left out (as adapterxfer stacks it)
PEFT_MERGE = """from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file


def merged(base, inter):  # W + dW_inter: the intermediate LoRA folded into the weights, its head left out
    config = LoraConfig.from_pretrained(inter)
    config.modules_to_save = config.task_type = None
    lora = get_peft_model(base, config)
    weights = load_file(inter + '/adapter_model.safetensors')
    set_peft_model_state_dict(lora, {k: v for k, v in weights.items() if 'lora_' in k})
    return lora.merge_and_unload()

"""
#: adapters: the same for a LoRA intermediate; a layer that knows of a merged LoRA would skip every other one
ADAPTERS_MERGE = """for layer in model.modules():  # fold {name} into the weights for good (W + dW_inter)
    if isinstance(layer, LoRALayer) and {name!r} in layer.loras:
        layer.merge_adapter({name!r})
        layer.merged = None  # else adapters would skip the target LoRA on this layer
model.delete_adapter({name!r})
"""


def render(entry: dict, hub: str) -> tuple[str, str]:
    """``(file name, markdown)`` of the entry's model card."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                             autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["method"] = describe_method
    return card_name(entry), env.get_template("model_card.md").render(e=entry, use=usage(entry, hub),
                                                                      results=result_rows(entry))


def result_rows(entry: dict) -> list[dict]:
    """Flat rows for results tables: {where, task, language, metric, value}; dev first, then XTREME."""
    rows = [{"where": "dev (English)", "task": task, "language": "en", "metric": m, "value": v}
            for task, metrics in entry.get("dev_metrics", {}).items() for m, v in metrics.items()
            if isinstance(v, (int, float))]
    for task, res in entry.get("xtreme_results", {}).items():
        where, scores = f"XTREME {res['split']}", res["scores"]
        rows += [{"where": where, "task": task, "language": lang, "metric": m, "value": v}
                 for lang, per in scores.items() if isinstance(per, dict)
                 for m, v in per.items() if isinstance(v, (int, float))]
        averages = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
        if [k for k, v in averages.items() if k != "avg_metric" and v == averages.get("avg_metric")]:
            del averages["avg_metric"]  # the task's one metric again (QA's is the mean of F1 and EM: kept)
        rows += [{"where": where, "task": task, "language": "average", "metric": k.removeprefix("avg_"), "value": v}
                 for k, v in averages.items()]  # after the languages
    return rows
