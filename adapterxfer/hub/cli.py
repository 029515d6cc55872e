"""``adapterxfer hub``: push, pull, search, show and serve modules (registered in ``adapterxfer.cli``)."""
from __future__ import annotations

import json

import click

from .. import errors

HUB_HELP = ("The hub: a folder (./dir, file://dir), an adapterxfer server (http://host:port) or the Hugging Face "
            "Hub (hf://org[/repo]) [$ADAPTERXFER_HUB].")


friendly = errors.friendly(
    interrupted="interrupted: nothing was published or installed half-way; run the command again")


def hub_options(fn):
    fn = click.option("--token", envvar="ADAPTERXFER_HUB_TOKEN",
                      help="Token for pushes and token-only reads [$ADAPTERXFER_HUB_TOKEN].")(fn)
    return click.option("--hub", "hub_spec", envvar="ADAPTERXFER_HUB", required=True, help=HUB_HELP)(fn)


def open_hub(hub_spec: str, token: str | None):
    from .backends import open_hub as open_

    return open_(hub_spec, token)


@click.group("hub")
def hub():
    """Share modules: push them to a hub, search it, pull them verified into a local cache, serve a hub.

    \b
    adapterxfer hub serve ./hubdata --port 8731 --token-file tokens.txt
    adapterxfer hub push modules/mnli --hub http://127.0.0.1:8731 --name mnli-seq_bn-xlmr-large
    adapterxfer hub search nli --hub http://127.0.0.1:8731
    adapterxfer hub pull mnli-seq_bn-xlmr-large@1 --hub http://127.0.0.1:8731
    adapterxfer train-target xnli --stack hub:mnli-seq_bn-xlmr-large@1 --output runs/mnli-xnli
    """


@hub.command("push")
@click.argument("module_dir", type=click.Path(file_okay=False))
@hub_options
@click.option("--name", help="Entry name [the folder's name; hf://org/repo: the repository's].")
@click.option("--license", "license_", default="unknown", show_default=True, help="SPDX licence id of the module.")
@click.option("--description", default="", help="One line about the module.")
@click.option("--training-data", help="What it was trained on [the task's data sets, or 'local files (<folder>)'].")
@click.option("--base-model", help="The base model's public id, when it was trained on a local copy.")
@click.option("--results", "results", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A results.json of adapterxfer evaluate (repeatable): its XTREME scores go on the card.")
@friendly
def push_cmd(module_dir, hub_spec, token, name, license_, description, training_data, base_model, results):
    """Publish the finished module in MODULE_DIR as the next version of --name on the hub.

    Versions never change: pushing a name again makes a new version. Weights go as safetensors only.

    \b
    Examples:
      adapterxfer hub push modules/mnli --hub ./hubdata --name mnli-seq_bn-xlmr-large --license mit
      adapterxfer hub push runs/mnli-xnli --hub http://127.0.0.1:8731 --results results/mnli-xnli/results.json
      adapterxfer hub push modules/mnli --hub hf://my-org/mnli-adapter
    """
    from pathlib import Path

    from . import push

    hub_ = open_hub(hub_spec, token)
    if name is None:  # an empty --name (an unset shell variable) is refused, not replaced
        name = getattr(hub_, "repo", None) or Path(module_dir).resolve().name
    entry = push(module_dir, hub_, name, license=license_, description=description, training_data=training_data,
                 base_model=base_model, results=results)
    click.echo(f"pushed {entry['name']}@{entry['version']} to {hub_} ({len(entry['files'])} files)")
    click.echo(f"use it: adapterxfer hub pull {entry['name']}@{entry['version']} --hub {hub_}")


@hub.command("pull")
@click.argument("ref")
@hub_options
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Where modules are installed [$ADAPTERXFER_HUB_CACHE or ~/.cache/adapterxfer/hub].")
@friendly
def pull_cmd(ref, hub_spec, token, cache_dir):
    """Install REF (NAME@VERSION, or NAME for the latest) from the hub, every file checked; print its folder.

    \b
    Examples:
      adapterxfer hub pull mnli-seq_bn-xlmr-large@1 --hub http://127.0.0.1:8731
      adapterxfer hub pull mnli-adapter --hub hf://my-org
    """
    from . import pull

    click.echo(pull(open_hub(hub_spec, token), ref.removeprefix("hub:"), cache_dir))


@hub.command("search")
@click.argument("query", required=False, default="")
@hub_options
@click.option("--task", default="", help="Only this task.")
@click.option("--method", default="", help="Only this method (seq_bn, double_seq_bn, lora).")
@click.option("--base-model", default="", help="Only modules for this base model id.")
@click.option("--json", "as_json", is_flag=True, help="Print the matching entries as JSON.")
@friendly
def search_cmd(query, hub_spec, token, task, method, base_model, as_json):
    """List the latest version of each module matching QUERY (every word, in name, task, description, ...).

    Without QUERY and filters, every module.

    \b
    Examples:
      adapterxfer hub search nli --hub http://127.0.0.1:8731
      adapterxfer hub search --method lora --base-model xlm-roberta-large --hub ./hubdata
    """
    found = open_hub(hub_spec, token).search(query=query, task=task, method=method, base_model=base_model)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    rows = [("name", "version", "task", "method", "base model", "dev")] + [
        (e["name"], str(e["version"]), e["task"], f"{e['method']['method']}/{e['method']['backend']}",
         e["base_model"]["id"], ", ".join(f"{t} {k} {v:.1f}" for t, m in e["dev_metrics"].items()
                                         for k, v in m.items() if isinstance(v, (int, float))))
        for e in found]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    click.echo(f"{len(found)} module(s)", err=True)


@hub.command("show")
@click.argument("ref")
@hub_options
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@friendly
def show_cmd(ref, hub_spec, token, as_json):
    """Print the card of REF (NAME@VERSION, or NAME for the latest).

    \b
    Example:
      adapterxfer hub show mnli-seq_bn-xlmr-large@1 --hub http://127.0.0.1:8731
    """
    from .card import render
    from .index import parse_ref

    hub_ = open_hub(hub_spec, token)
    entry = hub_.entry(*parse_ref(ref.removeprefix("hub:")))
    click.echo(json.dumps(entry, indent=2, ensure_ascii=False) if as_json else render(entry, str(hub_))[1])


@hub.command("serve")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8731, show_default=True, help="Port (0: any free port).")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="Tokens that may push, one per line; without it the hub takes no pushes.")
@click.option("--read", type=click.Choice(["public", "token"]), default="public", show_default=True,
              help="Whether reads (API, files, web page) need a token too.")
@friendly
def serve_cmd(root, host, port, token_file, read):
    """Serve the hub folder ROOT over HTTP: the API, the files, and a web page at / for people.

    \b
    Example:
      adapterxfer hub serve ./hubdata --port 8731 --token-file tokens.txt
    """
    from .server import serve

    serve(root, host, port, token_file, read, log=click.echo)
