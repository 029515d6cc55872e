"""Zero-shot evaluation on every language of an XTREME task, in XTREME's submission layout.

``evaluate_run`` loads the model once, runs each language (length-sorted batches, inference mode),
writes ``predictions/<task>/test-<lang>.<tsv|json>``, and scores them with :mod:`adapterxfer.score`
against the gold labels (written beside as ``labels/``, same layout) or a ``--labels`` folder.
BUCC and Tatoeba are sentence retrieval from mean-pooled hidden states of the base model with the
intermediate module active and no head.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from . import basemodel, modules, perturb, retrieval
from .data import available_languages, load_examples, load_retrieval, local_files
from .errors import UserError
from .evaluation import inference_autocast, predict
from .features import cached_tokenize, collate, first_sub_words, sorted_batches, tokenize, word_windows
from .fileio import write_json, write_text
from .languages import CODE_SHAPE, is_language_code
from .score import TASKS as SCORED, Scores, markdown_scores, score_folder, scorer
from .tasks import BENCHMARKS, TASKS, TaskSpec, get_benchmark, get_task


def evaluate_run(module_dir: str | None, output: str, *, task: str | None = None, languages=None,
                 split: str = "dev", data_dir: str | None = None, labels_dir: str | None = None,
                 model: str | None = None, batch_size: int = 64, max_length: int | None = None,
                 layer: int | None = None, cache_dir: str | None = None, perturbations=(), seed: int = 0,
                 benchmark: str = "xtreme", clean_results: str | None = None, log=print) -> dict:
    """Evaluate a module on ``languages`` (default: all of its task's in ``benchmark``, ``xtreme`` or
    ``xtreme-r``) of its task; returns what ``results.json`` holds.

    ``cache_dir`` keeps tokenised inputs between runs (every grid cell evaluates the same files).
    ``perturbations`` (``["char_swap:0.1", ...]``) also evaluate seeded noisy inputs, written under
    ``perturbed/``; results then hold both scores and the drop per language. ``clean_results``: the
    results.json of this same evaluation on clean inputs, whose scores are taken instead of evaluating
    clean inputs again (a grid's perturbation ladder)."""
    if not module_dir and not task:
        raise UserError("say what to evaluate: a module folder, or --task (with --model) for the bare base model")
    if batch_size < 1 or (max_length is not None and max_length < 8):
        raise UserError(f"--batch-size must be at least 1 and --max-length at least 8, got {batch_size} and "
                        f"{max_length}")
    card = modules.read_module(module_dir).card if module_dir else None
    if card and card.get("task_file") and (task or card["task"]) == card["task"] and card["task"] not in TASKS:
        raise UserError(f"{module_dir} was trained on {card['task']} of the task file {card['task_file']['path']} "
                        f"(sha256 {card['task_file']['sha256']}): pass that file, "
                        f"adapterxfer --tasks FILE evaluate {module_dir} ...")
    spec = get_task(task or card["task"])
    if not spec.is_target:
        raise UserError(f"'{spec.name}' is not an XTREME target task ({', '.join(SCORED)})")
    if card and card.get("kind") == "target" and card["task"] != spec.name:
        raise UserError(f"{module_dir} was trained for {card['task']}, not {spec.name}")
    if card and card.get("kind") != "target" and spec.format != "retrieval":
        raise UserError(f"{module_dir} is an intermediate module; train a {spec.name} module on it first "
                        f"(adapterxfer train-target {spec.name} --stack {module_dir})")
    model = model or (card["base_model"]["id"] if card else None)
    if not model:
        raise UserError("without a module, say which base model to evaluate: --model")
    split = _split_for(spec, split, log)
    langs, extras = _languages(spec, languages, split, data_dir, log, benchmark)

    if labels_dir and not Path(labels_dir).is_dir():
        raise UserError(f"--labels {labels_dir} is not a folder")
    ops = perturb.parse(perturbations)
    if data_dir and _moves_labels(spec, ops) and any(split in s.unlabelled for s in spec.sources):
        raise UserError(f"--perturb {', '.join(op.name for op in ops if op.name in perturb.WORD_OPS)}: on "
                        f"{spec.name} a word operation moves each tag with its token, and the {split} files carry "
                        f"no tags to move, so no gold (--labels or later) could be lined up with its predictions; "
                        f"use character operations or --split dev")
    if not card and spec.format != "retrieval":
        raise UserError(f"--task {spec.name} needs a module trained on it (adapterxfer evaluate MODULE_DIR); only "
                        f"retrieval tasks run on the bare --model")
    out = Path(output)
    if spec.format == "retrieval":
        encoder = modules.load_encoder(model, module_dir if card else None)
        depth = encoder.model.config.num_hidden_layers
        if layer is not None and not 0 <= layer <= depth:
            raise UserError(f"--layer {layer}: {model} has hidden states 0 (embeddings) to {depth}")
        layer = layer if layer is not None else retrieval.retrieval_layer(depth)
        run_lang = _retrieval_runner(spec, split, data_dir, model, encoder, batch_size, layer)
    else:
        backend = modules.load_trained(module_dir, model)
        run_lang = _model_runner(spec, split, data_dir, model, backend, batch_size, max_length, cache_dir)
    clean_done = _clean_results(clean_results, spec.name, split, langs, model) if clean_results and ops else None
    variants = ({} if clean_done else {out: []}) | ({out / "perturbed": ops} if ops else {})  # clean, perturbed
    have_gold = dict.fromkeys(variants, True)
    ext = scorer(spec.name).ext
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:  # every language first,
        for lang in langs + extras:  # so that a failure leaves no folder half of this module's and half another's
            for folder, variant in variants.items():
                start = time.perf_counter()
                preds, gold, n = run_lang(lang, variant, seed)
                staged = Path(tmp) / folder.relative_to(out)
                write_text(staged / "predictions" / spec.name / f"test-{lang}.{ext}", preds)
                if gold is None:
                    have_gold[folder] = False
                else:
                    write_text(staged / "labels" / spec.name / f"test-{lang}.{ext}", gold)
                what = f" ({', '.join(map(str, variant))})" if variant else ""
                log(f"{spec.name} {lang}{what}: {n} examples in {time.perf_counter() - start:.1f} s")
        for stale in ("results.json", "results.md"):  # earlier predictions are replaced, not mixed in
            (out / stale).unlink(missing_ok=True)
        for folder, part in itertools.product((out, out / "perturbed"), ("predictions", "labels")):
            staged = (Path(tmp) / folder.relative_to(out) / part / spec.name).is_dir()
            if staged or (folder not in variants and folder != out):  # replaced, not merged; no stale noisy run
                shutil.rmtree(folder / part / spec.name, ignore_errors=True)
        for file in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
            target = out / file.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)

    scores = {out: clean_done} if clean_done else {}
    for folder in variants:
        labels = labels_dir if labels_dir and not (folder != out and _moves_labels(spec, ops)) else \
            (folder / "labels" if have_gold[folder] else None)
        scores[folder] = score_folder(folder / "predictions", labels, [spec.name], benchmark) if labels else {}
    extra = {folder: getattr(scores[folder], "extras", {}).get(spec.name, {}) for folder in scores}
    if not scores[out] and not extra[out]:
        log(f"{split} files carry no labels: predictions written to {out / 'predictions'}; score them with "
            f"adapterxfer score {out / 'predictions'} LABEL_DIR")
    clean = scores[out].get(spec.name, {})
    results = {"task": spec.name, "split": split, "module": str(module_dir) if module_dir else None,
               "model": model, "languages": langs,
               "missing_languages": [l for l in languages_list(spec, languages, benchmark, extras=True)
                                     if l not in langs + extras],
               "scores": clean, "warnings": getattr(scores[out], "warnings", [])}
    if extras:  # scored apart: never in "scores" (the benchmark's languages and averages)
        results.update(extra_languages=extras, extra_scores=extra[out])
    if spec.origin:  # a task file's task: which file, as it was
        results["task_file"] = spec.task_file
    for warning in results["warnings"]:
        log(f"warning: {warning}")
    if spec.format == "retrieval":
        results["layer"] = layer  # index into hidden_states (0: embeddings)
    if ops:
        noisy = scores[out / "perturbed"].get(spec.name, {})
        results.update(perturbations=[str(op) for op in ops], seed=seed, perturbed_scores=noisy,
                       drop=_drop(clean, noisy))
        results.update({"perturbed_extra_scores": extra[out / "perturbed"]} if extras else {})
    write_json(out / "results.json", results)
    if clean or extra[out]:
        table = markdown_scores({spec.name: clean} if clean else {}, {spec.name: extra[out]} if extra[out] else {})
        if ops and results["drop"]:
            table += "\n\n" + _drop_table(spec.name, results)
        write_text(out / "results.md", table + "\n")
        log(table)
    return results


def _clean_results(path: str, task: str, split: str, langs: list[str], model: str) -> Scores:
    """The scores of a finished clean evaluation of the same task, split, languages and base model."""
    try:
        done = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"clean results {path}: cannot be read ({e})") from None
    if (done.get("task"), done.get("split"), done.get("languages"), done.get("model")) != (task, split, langs, model):
        raise UserError(f"clean results {path} are of another evaluation (task, split, languages or model differ)")
    scores = Scores()
    scores.update({task: done["scores"]} if done["scores"] else {})
    scores.warnings.extend(done.get("warnings", []))
    return scores


def _moves_labels(spec: TaskSpec, ops) -> bool:
    """Word operations on tagging inputs move tags with their tokens: only our own gold fits then."""
    return spec.format == "tagging" and any(op.name in perturb.WORD_OPS for op in ops)


def _main_metric(result: dict) -> str | None:
    langs = [k for k in result if isinstance(result[k], dict)]
    return next((m for m in ("f1", "accuracy") if langs and m in result[langs[0]]), None)


def _drop(clean: dict, noisy: dict) -> dict:
    """Clean minus perturbed, per language and on average, in the task's main metric."""
    metric = _main_metric(clean)
    if not metric or not noisy:
        return {}
    drop = {lang: clean[lang][metric] - noisy[lang][metric] for lang in clean
            if isinstance(clean[lang], dict) and lang in noisy}
    return {"metric": metric, "avg": clean[f"avg_{metric}"] - noisy[f"avg_{metric}"], **drop}


def _drop_table(task: str, results: dict) -> str:
    drop, metric = results["drop"], results["drop"]["metric"]
    clean, noisy = results["scores"], results["perturbed_scores"]
    lines = [f"### {task}: clean vs perturbed ({', '.join(results['perturbations'])}, seed {results['seed']})",
             "", f"| language | clean {metric} | perturbed {metric} | drop |", "|---|---:|---:|---:|"]
    lines += [f"| {lang} | {clean[lang][metric]:.2f} | {noisy[lang][metric]:.2f} | {drop[lang]:.2f} |"
              for lang in results["languages"] if lang in drop]
    lines.append(f"| **avg** | **{clean[f'avg_{metric}']:.2f}** | **{noisy[f'avg_{metric}']:.2f}** | "
                 f"**{drop['avg']:.2f}** |")
    return "\n".join(lines)


def languages_list(spec: TaskSpec, languages, benchmark: str = "xtreme", extras: bool = False) -> list[str]:
    """``languages`` checked against the task's (of any benchmark); ``all`` (alone or in the list): the task's
    in ``benchmark``. ``extras``: codes outside the task's languages are kept too (evaluate's extra languages)."""
    if languages in (None, "all", ("all",), ["all"]):
        return list(spec.languages_in(get_benchmark(benchmark).name))
    langs = [l.strip() for l in languages.split(",") if l.strip()] if isinstance(languages, str) else list(languages)
    if not langs:
        raise UserError("--languages is empty: give comma-separated language codes, or all")
    langs = list(dict.fromkeys(x for l in langs for x in (languages_list(spec, l, benchmark) if l == "all" else [l])))
    unknown = [l for l in langs if l not in spec.all_languages]
    if unknown and not extras:
        raise UserError(f"--languages: {spec.name} has no {', '.join(unknown)} "
                        f"(its languages: {', '.join(spec.all_languages)})")
    malformed = [l for l in unknown if not is_language_code(l)]
    if malformed:
        raise UserError(f"--languages: {', '.join(map(repr, malformed))} is not a language code ({CODE_SHAPE})")
    return langs


def _languages(spec, languages, split, data_dir, log, benchmark) -> tuple[list[str], list[str]]:
    """The requested languages of the task in ``benchmark`` that have data, and the extra ones: codes outside
    the task's languages (in every benchmark), each evaluated only from its local files under ``data_dir``
    (XTREME's naming) and scored apart."""
    wanted, bench = languages_list(spec, languages, benchmark, extras=True), get_benchmark(benchmark)
    extras = [l for l in wanted if l not in spec.all_languages and l != "en"]  # en: the training language
    wanted = [l for l in wanted if l not in extras]
    if extras:
        _check_extras(spec, extras, split, data_dir, benchmark)
        whose = "task file's" if spec.origin else bench.title
        log(f"{spec.name}: {', '.join(extras)} outside its {whose} languages, scored apart (not in its average)")
    other = [l for l in wanted if l not in spec.languages_in(bench.name)]
    if other:  # another benchmark's (XTREME-R's az for PAN-X): its data may be there, but not its scoring
        hint = next((f": add --benchmark {b.name}" for b in BENCHMARKS.values()
                     if spec.name in b.tasks and set(other) <= set(b.languages(spec.name))), "")
        where = f"(its task file's languages: {', '.join(spec.all_languages)})" if spec.origin else f"in {bench.title}"
        raise UserError(f"--languages: {spec.name} has no {', '.join(other)} {where}{hint}")
    present, missing = available_languages(spec, split, data_dir, benchmark)
    absent = [l for l in wanted if l not in present]
    if absent:
        log(f"missing {spec.name} {split} data for {len(absent)} language(s), not evaluated: {', '.join(absent)}")
    langs = [l for l in wanted if l in present]
    if not langs and not extras:
        files = [s.files[split] for s in spec.sources if split in s.files]
        hint = f"expected {Path(data_dir) / files[-1]}; --data-dir is" if data_dir else "pass --data-dir,"
        folder = ("the folder its task file's patterns start from" if spec.origin
                  else "the download/ folder of XTREME's scripts/download_data.sh")
        raise UserError(f"no {spec.name} {split} data for any requested language under {data_dir or 'the hub'}; "
                        f"{hint} {folder}")
    return langs, extras


def _check_extras(spec, extras, split, data_dir, benchmark) -> None:
    """Refuse extra languages that cannot be evaluated: a task whose metric depends on the language, no
    --data-dir (the Hub serves the task's languages only), a missing local file."""
    known = f"--languages: {spec.name} has no {', '.join(extras)} (its languages: {', '.join(spec.all_languages)})"
    if scorer(spec.name).no_extras:
        raise UserError(f"{known}, and takes no other: {scorer(spec.name).no_extras}; tasks that do: "
                        f"{', '.join(t for t, x in SCORED.items() if not x.no_extras)}")
    if data_dir is None:
        raise UserError(f"{known}; a language outside them needs its local files: pass --data-dir, a folder "
                        f"with {' and '.join(local_files(spec, split, extras[0]))}" +
                        ("" if spec.origin else " as XTREME's download/ names them"))
    absent = [l for l in extras if l not in available_languages(spec, split, data_dir, benchmark, extras)[0]]
    if absent:
        missing = [Path(data_dir) / f for f in local_files(spec, split, absent[0])]
        raise UserError(f"{known}; a language outside them is read from its local files only: missing "
                        f"{', '.join(str(p) for p in missing if not p.is_file())}")


def _split_for(spec: TaskSpec, split: str, log) -> str:
    """``dev`` where the task has per-language dev sets; else its (labelled) test set, said aloud."""
    if split not in ("dev", "test"):
        raise UserError(f"--split must be dev or test, not {split}")
    if split == "dev":
        per_lang = [s for s in spec.sources if "dev" in s.splits and (not s.files or "{lang}" in s.files["dev"])]
        if not per_lang:
            log(f"{spec.name} has no dev set in its languages (XTREME evaluates it on test): using test")
            return "test"
    return split


# ---------------------------------------------------------------- models with heads

def _model_runner(spec, split, data_dir, model, backend, batch_size, max_length, cache_dir):
    tokenizer = basemodel.load_tokenizer(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backend.model.to(device)
    autocast = inference_autocast(device)
    head = backend.heads[spec.name]
    max_length = max_length or spec.max_length

    read = functools.lru_cache(maxsize=1)(lambda lang: load_examples(spec, split, data_dir, lang))  # clean, noisy

    def run(lang, ops, seed):
        examples = [perturb.perturb_example(e, spec.format, ops, seed, f"{lang}/{i}") for i, e in enumerate(read(lang))]
        key = {"task": spec.name, "split": f"{split}-{lang}"}
        if spec.format == "classification":
            feats = cached_tokenize(cache_dir, key, "classification", examples, tokenizer, max_length, train=False)
            outputs = predict(backend, spec.name, feats, batch_size, tokenizer.pad_token_id, device, autocast)
            preds = [head.labels[int(o.argmax())] for o in outputs]
            gold = None if examples[0]["label"] is None else [spec.labels[e["label"]] for e in examples]
            return _lines(preds), gold and _lines(gold), len(examples)
        if spec.format == "multiple_choice":  # one line per question: the index of the chosen answer
            feats = cached_tokenize(cache_dir, key, "multiple_choice", examples, tokenizer, max_length, train=False)
            outputs = predict(backend, spec.name, feats, batch_size, tokenizer.pad_token_id, device, autocast)
            gold = None if examples[0]["label"] is None else [e["label"] for e in examples]
            return _lines(int(o.argmax()) for o in outputs), gold and _lines(gold), len(examples)
        if spec.format == "tagging":
            preds = _tag(examples, tokenizer, max_length, backend, spec.name, head.labels, batch_size, device,
                         autocast)
            gold = None if examples[0]["tags"] is None else [e["tags"] for e in examples]
            return _sentences(preds), gold and _sentences(gold), len(examples)
        from . import qa

        feats = cached_tokenize(cache_dir, key, "span_qa", examples, tokenizer, max_length, train=False,
                                doc_stride=min(128, max_length // 3))  # XTREME's 128 at 384 tokens
        outputs = predict(backend, spec.name, feats, batch_size, tokenizer.pad_token_id, device, autocast)
        answers = qa.postprocess(examples, feats, [o[0] for o in outputs], [o[1] for o in outputs])
        labelled = all(e["answers"] is not None and any(e["answers"]["text"]) for e in examples)
        return json.dumps(answers, ensure_ascii=False), _squad_json(examples) if labelled else None, len(examples)

    return run


def _tag(examples, tokenizer, max_length, backend, head, labels, batch_size, device, autocast) -> list[list[str]]:
    """Word-level tags from the first sub-word of each word; sentences too long for one window are
    cut into consecutive windows, so every word gets a tag (as XTREME's preprocessing splits them; a word the
    tokenizer drops is tagged as the unknown token)."""
    windows = word_windows([e["tokens"] for e in examples], tokenizer, max_length)
    outputs = predict(backend, head, [{"input_ids": ids} for _, _, ids, _ in windows], batch_size,
                      tokenizer.pad_token_id, device, autocast)
    tags = [[labels[0]] * len(e["tokens"]) for e in examples]
    for (n, start, _, word_ids), logits in zip(windows, outputs):
        best = logits.argmax(-1).tolist()
        for pos, word in enumerate(first_sub_words(word_ids)):
            if word is not None:
                tags[n][start + word] = labels[best[pos]]
    return tags


# ---------------------------------------------------------------- retrieval

def _retrieval_runner(spec, split, data_dir, model, encoder, batch_size, layer):
    tokenizer = basemodel.load_tokenizer(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder.model.to(device)
    autocast = inference_autocast(device)

    def embed(sentences):
        feats = tokenize("classification", [{"text_a": s or " ", "text_b": None, "label": None} for s in sentences],
                         tokenizer, 512, train=False)
        out = torch.empty(len(feats), encoder.model.config.hidden_size)
        with torch.inference_mode():
            for idx in sorted_batches([len(f["input_ids"]) for f in feats], batch_size, pack=device == "cuda"):
                batch = {k: v.to(device) for k, v in
                         collate([{"input_ids": feats[i]["input_ids"]} for i in idx], tokenizer.pad_token_id).items()}
                with autocast():
                    hidden = encoder(batch["input_ids"], batch["attention_mask"])[layer]
                out[idx] = retrieval.mean_pool(hidden, batch["attention_mask"]).cpu()
        return out

    @functools.lru_cache(maxsize=1)  # a language's data and English-side embeddings serve clean and noisy runs
    def read(lang):
        data = load_retrieval(spec, split, lang, data_dir)
        return data, embed(data["target"])

    def run(lang, ops, seed):
        data, tgt = read(lang)
        noisy = [perturb.perturb_text(t, ops, seed, f"{lang}/{i}") for i, t in enumerate(data["source"])]
        src = embed(noisy)  # the non-English side is perturbed
        if spec.name == "tatoeba":
            return (*_tatoeba_lines(data, src, tgt), len(data["source"]))
        threshold = _bucc_threshold(spec, lang, data_dir, embed) if split != "dev" else None
        candidates = _bucc_candidates(data, noisy, src, tgt)
        if threshold is None:
            threshold = retrieval.tune_threshold(candidates, _gold_pairs(data, spec, lang, data_dir))
        preds = _lines(f"{s}\t{t}" for s, t in sorted(retrieval.mine_pairs(candidates, threshold)))
        gold = None if data["gold"] is None else _lines(f"{s}\t{t}" for s, t in data["gold"])
        return preds, gold, len(data["source"])

    return run


def _tatoeba_lines(data, src, tgt) -> tuple[str, str | None]:
    """Tatoeba's prediction and gold files as XTREME's: for each English sentence (``tgt``), in order, the line
    of its nearest source sentence (``similarity_search`` in XTREME's ``evaluate_retrieval.py`` queries with
    the English side; querying with the other side gives other numbers)."""
    preds = _lines(int(i) for i in retrieval.nearest_neighbors(tgt, src))
    if data["gold"] is None:
        return preds, None
    line = {s: n for n, s in enumerate(data["source_ids"])}
    source_of = {t: line[s] for s, t in data["gold"]}
    return preds, _lines(source_of[t] for t in data["target_ids"])


def _bucc_candidates(data, source: list[str], src, tgt) -> dict[tuple[str, str], float]:
    """XTREME's BUCC candidates ``{(source_id, target_id): margin}`` from the embeddings of every line (``source``:
    the source texts as embedded). As its ``mine_bitext``, each distinct sentence is mined once, with the
    embedding of its last line, so copies take no neighbour slots; as its ``read_sent2id``, a sentence whose
    stripped text is on several lines has no id, so its pairs are dropped."""
    def unify(ids, texts):
        rows = {}  # each text in the order first seen, with its last line
        for n, text in enumerate(texts):
            rows[text] = n
        count = Counter(text.strip() for text in texts)
        return list(rows.values()), [ids[n] if count[text.strip()] == 1 else None for text, n in rows.items()]

    src_rows, src_ids = unify(data["source_ids"], source)
    tgt_rows, tgt_ids = unify(data["target_ids"], data["target"])
    candidates = retrieval.mine_candidates(src[src_rows], tgt[tgt_rows])
    return {(src_ids[i], tgt_ids[j]): score for (i, j), score in candidates.items()
            if src_ids[i] is not None and tgt_ids[j] is not None}


def _gold_pairs(data, spec, lang, data_dir) -> list[tuple[str, str]]:
    if not data["gold"]:
        gold = Path(data_dir) / spec.sources[0].files["dev"].format(lang=lang, side="gold")
        raise UserError(f"BUCC threshold tuning needs the dev ('sample') gold pairs: {gold} is missing "
                        f"(XTREME's download_bucc18 writes it)")
    return data["gold"]


def _bucc_threshold(spec, lang, data_dir, embed) -> float:
    """The margin threshold tuned on the dev ('sample') split of ``lang``, as XTREME applies it to test."""
    dev = load_retrieval(spec, "dev", lang, data_dir)
    candidates = _bucc_candidates(dev, dev["source"], embed(dev["source"]), embed(dev["target"]))
    return retrieval.tune_threshold(candidates, _gold_pairs(dev, spec, lang, data_dir))


# ---------------------------------------------------------------- file formats

def _lines(items) -> str:
    return "".join(f"{x}\n" for x in items)


def _sentences(tags: list[list[str]]) -> str:
    return "".join("".join(f"{t}\n" for t in sentence) + "\n" for sentence in tags)


def _squad_json(examples) -> str:
    paragraphs = [{"context": e["context"], "qas": [{"id": e["id"], "question": e["question"], "answers": [
        {"text": t, "answer_start": s} for t, s in zip(e["answers"]["text"], e["answers"]["answer_start"])]}]}
        for e in examples]
    return json.dumps({"version": "1.1", "data": [{"title": "", "paragraphs": paragraphs}]}, ensure_ascii=False)
