"""The module hub: a real ``hub serve`` on loopback (push, search, pull, its web page over HTTP and in a
headless browser), a folder hub, what a Hugging Face push would upload, and the integrity and safety
refusals (tampered file, tokens, paths, pickles, parallel pushes, interrupted download)."""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from adapterxfer.cli import main
from adapterxfer.errors import UserError
from adapterxfer.features import collate
from adapterxfer.fileio import sha256_file, write_json
from adapterxfer.hub import pull, push
from adapterxfer.hub.backends import HttpHub, LocalHub, hf_folder
from adapterxfer.hub.card import entry_from_module
from adapterxfer.hub.index import read_index
from adapterxfer.hub.server import create_app
from adapterxfer.training import TrainConfig, train
from xtreme_fixtures import write_xtreme_layout

TOKEN = "team-token-1"
CHROMIUM = shutil.which("chromium")
BATCH = collate([{"input_ids": [0, 5, 6, 7, 2, 2, 8, 9, 2]}, {"input_ids": [0, 10, 2, 2, 11, 12, 2]}], pad_id=1)


def cli(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert not ok or result.exit_code == 0, result.output
    return result


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test pulls into its own cache and names its hubs explicitly."""
    monkeypatch.setenv("ADAPTERXFER_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("ADAPTERXFER_HUB", raising=False)
    monkeypatch.delenv("ADAPTERXFER_HUB_TOKEN", raising=False)
    return tmp_path / "hub-cache"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, synthetic_data):
    """A bottleneck adapter (adapters) and a LoRA (peft), each trained for two steps on the tiny model."""
    root = tmp_path_factory.mktemp("modules")
    for name, extra in (("mnli", {}), ("mnli-lora", {"method": "lora", "backend": "peft"})):
        cfg = TrainConfig.load(None, task="mnli", model=str(tiny_model_dir), data_dir=str(synthetic_data / "mnli"),
                               output=str(root / name), cache_dir=str(root / "cache"), max_steps=2, batch_size=8,
                               max_length=64, **extra)
        train(cfg, progress=False, log=lambda *_: None)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``adapterxfer hub serve`` in a subprocess on 127.0.0.1 (an ephemeral port): (url, hub folder)."""
    root = tmp_path_factory.mktemp("hubserver")
    (root / "tokens.txt").write_text(f"# who may push\n{TOKEN}\n")
    proc = subprocess.Popen([sys.executable, "-m", "adapterxfer.cli", "hub", "serve", str(root / "data"), "--host",
                             "127.0.0.1", "--port", "0", "--token-file", str(root / "tokens.txt")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    assert found, f"server did not start: {line!r}"
    yield found.group(0), root / "data"
    proc.terminate()
    proc.wait(10)


def adapters_logits(model_dir, module_dir):
    from adapters import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(model_dir))
    head = model.load_adapter(str(module_dir), use_safetensors=True, set_active=True)
    with torch.no_grad():
        return model.eval()(**BATCH, head=head).logits


def peft_logits(model_dir, module_dir):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=3)
    with torch.no_grad():
        return PeftModel.from_pretrained(base, str(module_dir)).eval()(**BATCH).logits


def test_push_search_pull_over_http_gives_identical_files_and_logits(server, trained, tiny_model_dir):
    url, _ = server
    out = cli("hub", "push", trained / "mnli", "--hub", url, "--name", "nli-seq_bn-tiny", "--token", TOKEN,
              "--license", "mit").output
    assert "pushed nli-seq_bn-tiny@1" in out
    cli("hub", "push", trained / "mnli-lora", "--hub", url, "--name", "nli-lora-tiny", "--token", TOKEN)

    out = cli("hub", "search", "nli", "--hub", url).output
    assert "nli-seq_bn-tiny" in out and "nli-lora-tiny" in out
    out = cli("hub", "search", "nli", "--method", "lora", "--hub", url).output
    assert "nli-lora-tiny" in out and "nli-seq_bn-tiny" not in out

    folder = Path(cli("hub", "pull", "nli-seq_bn-tiny@1", "--hub", url).output.strip())
    card = json.loads((trained / "mnli" / "adapterxfer.json").read_text())
    for rel in [*card["files"], "adapterxfer.json"]:
        assert (folder / rel).read_bytes() == (trained / "mnli" / rel).read_bytes(), rel
    assert torch.equal(adapters_logits(tiny_model_dir, folder), adapters_logits(tiny_model_dir, trained / "mnli"))

    lora = Path(cli("hub", "pull", "nli-lora-tiny", "--hub", url).output.strip())  # name alone: the latest
    assert lora.name == "1" and (lora / "MODEL_CARD.md").is_file()  # peft's own README.md stays as it was
    assert torch.equal(peft_logits(tiny_model_dir, lora), peft_logits(tiny_model_dir, trained / "mnli-lora"))


def test_train_target_stacks_a_hub_module_and_refuses_another_base(server, trained, tiny_model_dir, tmp_path,
                                                                  monkeypatch, cache):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    url, _ = server
    cli("hub", "push", trained / "mnli", "--hub", url, "--name", "stack-me", "--token", TOKEN)
    monkeypatch.setenv("ADAPTERXFER_HUB", url)  # hub: references not yet in the cache are pulled from here
    xtreme = write_xtreme_layout(tmp_path / "download", languages=["en", "de"])
    quick = ["--data-dir", xtreme, "--cache-dir", tmp_path / "features", "--max-steps", "2", "--batch-size", "4",
             "--max-length", "64", "--quiet"]
    cli("train-target", "xnli", "--stack", "hub:stack-me@1", "--model", tiny_model_dir, "--output",
        tmp_path / "run", *quick)
    card = json.loads((tmp_path / "run" / "adapterxfer.json").read_text())
    assert card["composition"]["intermediates"][0]["path"] == str((cache / "stack-me" / "1").resolve())

    # a target with its XTREME results goes on the hub too, names its intermediate, and evaluates from there
    evaluate = ["--languages", "en,de", "--data-dir", xtreme, "--cache-dir", tmp_path / "features"]
    cli("evaluate", tmp_path / "run", "--output", tmp_path / "res", *evaluate)
    cli("hub", "push", tmp_path / "run", "--hub", url, "--name", "xnli-on-stack-me", "--token", TOKEN,
        "--results", tmp_path / "res" / "results.json")
    entry = HttpHub(url).entry("xnli-on-stack-me")
    assert entry["composition"]["intermediates"][0]["hub"] == "stack-me@1"
    local = json.loads((tmp_path / "res" / "results.json").read_text())
    assert entry["xtreme_results"]["xnli"]["scores"] == local["scores"] and "de" in local["scores"]
    cli("evaluate", "hub:xnli-on-stack-me@1", "--output", tmp_path / "res-hub", *evaluate)
    assert json.loads((tmp_path / "res-hub" / "results.json").read_text())["scores"] == local["scores"]

    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    config = XLMRobertaConfig.from_pretrained(other)
    config.num_hidden_layers = 2  # same tokenizer, another base model
    XLMRobertaModel(config).save_pretrained(other)
    result = cli("train-target", "xnli", "--stack", "hub:stack-me@1", "--model", other, "--output",
                 tmp_path / "refused", *quick, ok=False)
    assert result.exit_code == 2 and "was trained on base model" in result.output
    assert not (tmp_path / "refused").exists()


def test_a_target_on_a_local_intermediate_goes_to_the_hub_after_it(trained, tiny_model_dir, tmp_path, monkeypatch):
    inter = tmp_path / "inter"
    shutil.copytree(trained / "mnli", inter)
    xtreme = write_xtreme_layout(tmp_path / "download", languages=["en", "de"])
    cli("train-target", "xnli", "--stack", inter, "--model", tiny_model_dir, "--output", tmp_path / "run",
        "--data-dir", xtreme, "--cache-dir", tmp_path / "features", "--max-steps", "2", "--batch-size", "4",
        "--max-length", "64", "--quiet")
    hub = tmp_path / "team-hub"
    result = cli("hub", "push", tmp_path / "run", "--hub", hub, "--name", "xnli-on-mnli", ok=False)
    assert result.exit_code == 2 and f"adapterxfer hub push {inter.resolve()} --hub {hub}" in result.output
    assert read_index(hub) == []  # nothing published
    cli("hub", "push", inter, "--hub", hub, "--name", "mnli-inter")
    cli("hub", "push", tmp_path / "run", "--hub", hub, "--name", "xnli-on-mnli")
    entry = LocalHub(hub).entry("xnli-on-mnli")
    assert entry["composition"]["intermediates"][0]["hub"] == "mnli-inter@1"

    # on a machine without the intermediate's folder, the pulled target finds it on the hub
    evaluate = ["--languages", "en,de", "--data-dir", xtreme, "--cache-dir", tmp_path / "features"]
    cli("evaluate", tmp_path / "run", "--output", tmp_path / "res", *evaluate)
    shutil.rmtree(inter)
    monkeypatch.setenv("ADAPTERXFER_HUB", str(hub))
    cli("evaluate", "hub:xnli-on-mnli@1", "--output", tmp_path / "res-hub", *evaluate)
    scores = [json.loads((tmp_path / r / "results.json").read_text())["scores"] for r in ("res", "res-hub")]
    assert scores[0] == scores[1] and "de" in scores[0]


def test_folder_hub_versions_never_change(trained, tiny_model_dir, tmp_path):
    hub = f"file://{tmp_path / 'team-hub'}"
    assert "pushed mnli-tiny@1" in cli("hub", "push", trained / "mnli", "--hub", hub, "--name", "mnli-tiny").output
    first = read_index(tmp_path / "team-hub")[0]
    assert "pushed mnli-tiny@2" in cli("hub", "push", trained / "mnli", "--hub", hub, "--name", "mnli-tiny").output
    entries = read_index(tmp_path / "team-hub")
    assert [e["version"] for e in entries] == [1, 2] and entries[0] == first
    assert Path(cli("hub", "pull", "mnli-tiny", "--hub", hub).output.strip()).name == "2"
    assert json.loads(cli("hub", "show", "mnli-tiny@1", "--json", "--hub", hub).output)["files"] == first["files"]
    readme = (tmp_path / "team-hub" / "modules" / "mnli-tiny" / "1" / "README.md").read_text()
    assert "| dev (English) | mnli | en | accuracy |" in readme

    # the card's commands and code work as written
    pull_line = next(line for line in readme.splitlines() if line.startswith("adapterxfer hub pull"))
    folder = Path(cli(*pull_line.split()[1:]).output.strip())
    code = readme.split("```python\n")[1].split("```")[0]
    code = re.sub(r"os\.path\.expanduser\('[^']+'\)", repr(str(folder)), code)
    scope = {}
    exec(code, scope)
    with torch.no_grad():
        logits = scope["model"].eval()(**BATCH, head=scope["name"]).logits
    assert torch.equal(logits, adapters_logits(tiny_model_dir, trained / "mnli"))


def test_a_folder_hub_reads_for_the_team_as_its_other_files_do(trained, tmp_path):
    """What a push renames into place (the index, the version's folder) has the mode a plain file or folder
    gets there (the umask's), not the private one of a temporary file: teammates can search and pull."""
    hub = tmp_path / "team-hub"
    cli("hub", "push", trained / "mnli", "--hub", hub, "--name", "mnli-tiny")
    (hub / "plain").mkdir()
    (hub / "plain.txt").write_text("")
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(hub / "index.json") == mode(hub / "plain.txt")
    assert mode(hub / "modules" / "mnli-tiny" / "1") == mode(hub / "plain")
    assert all(mode(f) == mode(hub / "plain.txt") for f in (hub / "modules" / "mnli-tiny" / "1").iterdir())


@pytest.mark.parametrize("kind", ["stack-seq_bn", "stack-lora-adapters", "stack-lora-peft", "fuse-dynamic",
                                  "fuse-light"])
def test_the_card_of_a_composed_target_loads_it_in_plain_libraries(kind, trained, tiny_model_dir, synthetic_data,
                                                                    xtreme, tmp_path, monkeypatch, cache):
    """The card's pull lines and code, run as written (by a user whose cache is the default one), give the logits
    of adapterxfer's own loading: the intermediates composed under the target as in training. Light fusion's
    mixing weights are our own: its card says so and loads it with adapterxfer."""
    from adapterxfer.modules import load_trained

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADAPTERXFER_HUB_CACHE", str(tmp_path / "home" / ".cache" / "adapterxfer" / "hub"))
    method = {"stack-lora-adapters": {"method": "lora"}, "stack-lora-peft": {"method": "lora", "backend": "peft"}}
    extra = method.get(kind, {})
    quick = dict(model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"), max_steps=2, batch_size=8,
                 max_length=64, lr=3e-2, **extra)
    fuse = kind.startswith("fuse")
    seeds = (1, 2) if fuse else (1,)
    inters = [tmp_path / f"inter{s}" for s in seeds]
    for seed, out in zip(seeds, inters):
        train(TrainConfig.load(None, task="mnli", data_dir=str(synthetic_data / "mnli"), output=str(out), seed=seed,
                               **quick), progress=False, log=lambda *_: None)
    compose = {"fuse": ",".join(map(str, inters)), "fusion": kind.split("-")[1]} if fuse else \
        {"stack": str(inters[0])}
    train(TrainConfig.load(None, task="xnli", data_dir=str(xtreme[0]), output=str(tmp_path / "target"), **quick,
                           **compose), progress=False, log=lambda *_: None)
    hub = f"file://{tmp_path / 'team-hub'}"
    for i, folder in enumerate([*inters, tmp_path / "target"]):
        cli("hub", "push", folder, "--hub", hub, "--name", f"m{i}")
    entry = tmp_path / "team-hub" / "modules" / f"m{len(inters)}" / "1"
    readme = next(entry / n for n in ("MODEL_CARD.md", "README.md") if (entry / n).is_file()).read_text()
    assert ("plain adapters\ncannot load this module" in readme) == (kind == "fuse-light")
    page = create_app(tmp_path / "team-hub").test_client().get(f"/modules/m{len(inters)}/1").get_data(as_text=True)
    assert ("cannot load this module" in page) == (kind == "fuse-light")
    pulls = [line.split()[1:] for line in readme.splitlines() if line.startswith("adapterxfer hub pull")]
    assert [p[2] for p in pulls] == [f"m{len(inters)}@1", *(f"m{i}@1" for i in range(len(inters)))]
    for line in pulls:
        cli(*line)
    scope = {}
    exec(readme.split("```python\n")[1].split("```")[0], scope)
    with torch.no_grad():
        plain = scope["model"].eval()(**BATCH).logits
        ours = load_trained(Path(scope["path"])).forward("xnli", dict(BATCH)).logits
    assert torch.allclose(plain, ours, atol=1e-5)
    labels = json.loads((tmp_path / "target" / "adapterxfer.json").read_text())["heads"]["xnli"]["labels"]
    model = scope["model"]  # the label names as adapterxfer predicts them, in its order
    id2label = model.get_labels_dict() if hasattr(model, "get_labels_dict") else model.config.id2label
    assert [id2label[i] for i in range(len(labels))] == labels


def test_the_card_of_a_multi_task_module_loads_every_head_in_plain_adapters(tiny_model_dir, synthetic_data, tmp_path,
                                                                             monkeypatch):
    """A multi-task module's card loads each task's head and says to name one per call: each gives the logits of
    adapterxfer's own loading for that task."""
    import adapterxfer.tasks as tasks
    from adapterxfer.modules import load_trained

    monkeypatch.setitem(tasks.TASKS, "multi", tasks.TaskSpec(name="multi", format="multi", metric="average",
                                                             sources=(), members=("mnli", "ccg")))
    train(TrainConfig.load(None, task="multi", model=str(tiny_model_dir), data_dir=str(synthetic_data),
                           output=str(tmp_path / "multi"), cache_dir=str(tmp_path / "cache"), max_steps=2,
                           batch_size=8, max_length=64, lr=3e-2), progress=False, log=lambda *_: None)
    cli("hub", "push", tmp_path / "multi", "--hub", tmp_path / "hub", "--name", "multi")
    entry = tmp_path / "hub" / "modules" / "multi" / "1"
    readme = next(entry / n for n in ("MODEL_CARD.md", "README.md") if (entry / n).is_file()).read_text()
    code = readme.split("```python\n")[1].split("```")[0]
    assert re.search(r"^# a head per task: .*model\(\*\*batch, head='(mnli|ccg)'\)$", code, re.M)
    scope = {}
    exec(code.replace(next(line for line in code.splitlines() if line.startswith("path = ")),
                      f"path = {str(entry)!r}"), scope)
    ours = load_trained(entry)
    with torch.no_grad():
        for head in ("mnli", "ccg"):
            plain = scope["model"].eval()(**BATCH, head=head).logits
            assert torch.allclose(plain, ours.forward(head, dict(BATCH)).logits, atol=1e-5)


def test_a_fully_fine_tuned_model_is_refused_by_name(tiny_model_dir, synthetic_data, tmp_path):
    cfg = TrainConfig.load(None, task="mnli", model=str(tiny_model_dir), data_dir=str(synthetic_data / "mnli"),
                           output=str(tmp_path / "full"), cache_dir=str(tmp_path / "cache"), max_steps=1,
                           batch_size=4, max_length=32, method="full")
    train(cfg, progress=False, log=lambda *_: None)
    result = cli("hub", "push", tmp_path / "full", "--hub", tmp_path / "hub", "--name", "full", ok=False)
    assert result.exit_code == 2 and f"{tmp_path / 'full'} is fully fine-tuned" in result.output
    assert not (tmp_path / "hub" / "modules").exists()


def test_tampered_file_is_refused_and_the_download_deleted(server, trained, cache):
    url, data = server
    push(trained / "mnli", HttpHub(url, TOKEN), "tamper-me")
    stored = data / "modules" / "tamper-me" / "1" / "adapter.safetensors"
    blob = bytearray(stored.read_bytes())
    blob[-1] ^= 1
    stored.write_bytes(bytes(blob))
    result = cli("hub", "pull", "tamper-me@1", "--hub", url, ok=False)
    assert result.exit_code == 2
    assert "adapter.safetensors does not match its sha256" in result.output and "deleted" in result.output
    assert not (cache / "tamper-me").exists() and not list(cache.glob(".pull-*"))


def test_a_changed_cached_copy_is_refused_on_pull(trained, tmp_path, cache):
    hub = tmp_path / "team-hub"
    push(trained / "mnli", LocalHub(hub), "mnli-tiny")
    folder = Path(cli("hub", "pull", "mnli-tiny@1", "--hub", hub).output.strip())
    blob = bytearray((folder / "adapter.safetensors").read_bytes())
    blob[-1] ^= 1
    (folder / "adapter.safetensors").write_bytes(bytes(blob))
    result = cli("hub", "pull", "mnli-tiny@1", "--hub", hub, ok=False)
    assert result.exit_code == 2 and "was changed since its pull (adapter.safetensors does not match" in result.output
    (folder / "adapter.safetensors").unlink()
    assert "adapter.safetensors is missing" in cli("hub", "pull", "mnli-tiny@1", "--hub", hub, ok=False).output
    shutil.rmtree(folder)
    assert Path(cli("hub", "pull", "mnli-tiny@1", "--hub", hub).output.strip()) == folder


def test_a_mistyped_hub_folder_or_an_empty_name_is_refused(trained, tmp_path):
    for args in (("search",), ("pull", "mnli-tiny"), ("show", "mnli-tiny")):
        result = cli("hub", *args, "--hub", tmp_path / "no-hub", ok=False)
        assert result.exit_code == 2 and f"hub folder {tmp_path / 'no-hub'} does not exist" in result.output
    result = cli("hub", "push", trained / "mnli", "--hub", tmp_path / "hub", "--name", "", ok=False)
    assert result.exit_code == 2 and "invalid module name ''" in result.output
    assert not (tmp_path / "hub" / "index.json").exists()


def test_push_without_or_with_a_wrong_token_is_refused(server, trained):
    url, data = server
    result = cli("hub", "push", trained / "mnli", "--hub", url, "--name", "no-token", ok=False)
    assert result.exit_code == 2 and "a token is needed to push (HTTP 401)" in result.output
    result = cli("hub", "push", trained / "mnli", "--hub", url, "--name", "no-token", "--token", "guess", ok=False)
    assert result.exit_code == 2 and "invalid token (HTTP 403)" in result.output
    for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": "Basic Z3Vlc3M6Z3Vlc3M="}):
        request = urllib.request.Request(url + "/api/v1/uploads", data=b"{}", method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code in (401, 403)
    assert not (data / "modules" / "no-token").exists()
    assert all(e["name"] != "no-token" for e in read_index(data))


def test_token_only_reads_and_a_hub_without_pushes(trained, tmp_path):
    LocalHub(tmp_path / "hub").push(trained / "mnli", entry_from_module(trained / "mnli", "private"))
    (tmp_path / "tokens.txt").write_text(TOKEN + "\n")
    client = create_app(tmp_path / "hub", tmp_path / "tokens.txt", read="token").test_client()
    assert client.get("/api/v1/index").status_code == 401
    page = client.get("/")
    assert page.status_code == 401 and page.headers["WWW-Authenticate"].startswith("Basic")  # browsers ask
    assert client.get("/", auth=("anyone", TOKEN)).status_code == 200
    assert client.get("/api/v1/modules/private/1", headers={"Authorization": f"Bearer {TOKEN}"}).json["version"] == 1
    public = create_app(tmp_path / "hub").test_client()
    assert public.get("/api/v1/modules/private/latest").status_code == 200
    refused = public.post("/api/v1/uploads", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 403 and "takes no pushes" in refused.json["error"]


def test_names_and_paths_are_checked_on_both_sides(server, trained, tmp_path, cache):
    url, data = server
    hub = HttpHub(url, TOKEN)
    push(trained / "mnli", hub, "safe")
    for path in ("/api/v1/modules/safe/1/files/..%2F..%2F..%2Findex.json", "/api/v1/modules/safe/1/files/../../x",
                 "/api/v1/modules/..%2Fsafe/1"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path)
        assert refused.value.code in (400, 404), path
    upload = hub._json("POST", "/api/v1/uploads", {})["upload"]
    request = urllib.request.Request(f"{url}/api/v1/uploads/{upload}/files/..%2F..%2Fescape.json", data=b"{}",
                                     method="PUT", headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400 and "unsafe file path" in json.loads(refused.value.read())["error"]
    assert not list(data.rglob("escape.json"))
    with pytest.raises(UserError, match="invalid module name"):
        hub._json("POST", f"/api/v1/uploads/{upload}/commit", {**entry_from_module(trained / "mnli", "x"),
                                                                "name": "../evil"})

    class Hostile:  # a hub that answers with a crafted entry
        def __init__(self, entry, payload=b""):
            self.e, self.payload = entry, payload

        def entry(self, name, version):
            return self.e

        def download(self, entry, rel, target):
            target.write_bytes(self.payload or (trained / "mnli" / rel).read_bytes())
            return sha256_file(target)

    good = {**entry_from_module(trained / "mnli", "evil"), "version": 1, "created": "now"}
    for rel, message in (("../../escape.json", "unsafe file path"), ("/etc/cron.d/x.json", "unsafe file path"),
                         ("pytorch_model.bin", "safetensors only")):
        with pytest.raises(UserError, match=message):
            pull(Hostile({**good, "files": {**good["files"], rel: {"sha256": "0" * 64, "size": 1}}}), "evil@1")
    pickled = tmp_path / "pickled.pt"
    torch.save({"weight": torch.zeros(2)}, pickled)  # a pickle named .safetensors, with its true checksum
    meta = {"sha256": sha256_file(pickled), "size": pickled.stat().st_size}
    with pytest.raises(UserError, match="adapter.safetensors is not a safetensors file"):
        pull(Hostile({**good, "files": {"adapter.safetensors": meta}}, pickled.read_bytes()), "evil@1")
    assert not list(cache.rglob("*.json")) and not list(tmp_path.rglob("escape.json"))

    module = tmp_path / "with-pickle"  # and a module that carries pickled weights is not pushed
    shutil.copytree(trained / "mnli", module)
    shutil.copy(pickled, module / "pytorch_adapter.bin")
    card = json.loads((module / "adapterxfer.json").read_text())
    card["files"]["pytorch_adapter.bin"] = sha256_file(module / "pytorch_adapter.bin")
    write_json(module / "adapterxfer.json", card)
    result = cli("hub", "push", module, "--hub", url, "--name", "pickled", "--token", TOKEN, ok=False)
    assert result.exit_code == 2 and "refusing pytorch_adapter.bin" in result.output


def test_parallel_pushes_never_corrupt_the_index(server, trained):
    url, data = server
    proposed = entry_from_module(trained / "mnli", "parallel")

    def one(i):  # two of three over HTTP (server threads), one straight into the folder (this process)
        hub = HttpHub(url, TOKEN) if i % 3 else LocalHub(data)
        return hub.push(trained / "mnli", proposed)["version"]

    with ThreadPoolExecutor(9) as pool:
        versions = list(pool.map(one, range(9)))
    assert sorted(versions) == list(range(1, 10))
    entries = [e for e in read_index(data) if e["name"] == "parallel"]
    assert sorted(e["version"] for e in entries) == list(range(1, 10))
    for e in entries:
        for rel, meta in e["files"].items():
            assert sha256_file(data / "modules" / "parallel" / str(e["version"]) / rel) == meta["sha256"]


def test_interrupted_download_leaves_no_entry(server, trained, cache):
    url, _ = server
    push(trained / "mnli", HttpHub(url, TOKEN), "cut-me")

    class Cutting(http.server.BaseHTTPRequestHandler):
        """Passes requests on to the hub, but sends only half of each file before closing."""

        def do_GET(self):
            with urllib.request.urlopen(url + self.path) as r:
                body = r.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if "/files/" in self.path else body)

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Cutting)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        result = cli("hub", "pull", "cut-me@1", "--hub", f"http://127.0.0.1:{proxy.server_port}", ok=False)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert result.exit_code == 2 and "was interrupted" in result.output
    assert not (cache / "cut-me").exists() and not list(cache.glob(".pull-*"))


def test_web_page_over_http(server, trained):
    url, _ = server
    push(trained / "mnli", HttpHub(url, TOKEN), "web-seq_bn", description="An NLI adapter for the page")
    push(trained / "mnli-lora", HttpHub(url, TOKEN), "web-lora")
    page = urllib.request.urlopen(url + "/?q=web&method=seq_bn").read().decode()
    assert "web-seq_bn" in page and "web-lora" not in page and "<script" not in page
    page = urllib.request.urlopen(url + "/modules/web-lora").read().decode()  # the latest version
    assert f"adapterxfer hub pull web-lora@1 --hub {url}" in page and "PeftModel.from_pretrained" in page
    missing = urllib.request.Request(url + "/modules/no-such-module/1")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(missing)
    assert refused.value.code == 404


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: .ci/run installs Debian's chromium "
                                             "where apt-get and root are available")
def test_web_page_in_a_headless_browser(server, trained, tmp_path):
    url, _ = server
    push(trained / "mnli", HttpHub(url, TOKEN), "browse-seq_bn", description="seen in a browser")
    push(trained / "mnli-lora", HttpHub(url, TOKEN), "browse-lora")

    def dom(path):
        run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url + path],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and "</html>" in run.stdout, run.stderr[-2000:]
        return run.stdout

    listing = dom("/?q=browse&method=lora")
    rows = re.findall(r'<a href="/modules/([^/"]+)/\d+">', listing.split('id="results"')[1])
    assert rows == ["browse-lora"]
    assert '<option value="lora" selected="">lora</option>' in listing  # the filter form keeps its state
    module = dom("/modules/browse-seq_bn/1")
    results = module.split('id="results"')[1].split("</table>")[0]
    assert "dev (English)" in results and "accuracy" in results
    assert f"adapterxfer hub pull browse-seq_bn@1 --hub {url}" in module and "seen in a browser" in module
    assert "load_adapter(path, use_safetensors=True, set_active=True)" in module


def test_hugging_face_upload_files_and_the_offline_error(trained, tiny_model_dir, tmp_path):
    up = tmp_path / "upload"
    entry = hf_folder(trained / "mnli", entry_from_module(trained / "mnli", "mnli-adapter"), 1, up,
                      "hf://my-org/mnli-adapter")
    readme = (up / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: adapter-transformers\n") and "- adapter-transformers" in readme
    assert f"base_model: {tiny_model_dir}" in readme and 'load_adapter(path' in readme
    assert json.loads((up / "adapterxfer-hub.json").read_text()) == entry and entry["version"] == 1
    assert all(p.suffix in (".safetensors", ".json", ".md") for p in up.rglob("*"))
    assert torch.equal(adapters_logits(tiny_model_dir, up), adapters_logits(tiny_model_dir, trained / "mnli"))

    up = tmp_path / "upload-lora"
    hf_folder(trained / "mnli-lora", entry_from_module(trained / "mnli-lora", "mnli-lora"), 1, up, "hf://o/mnli-lora")
    assert "library_name: peft" in (up / "README.md").read_text()  # peft's card; ours beside it
    assert (up / "MODEL_CARD.md").read_text().startswith("---\nlibrary_name: peft\n")
    assert torch.equal(peft_logits(tiny_model_dir, up), peft_logits(tiny_model_dir, trained / "mnli-lora"))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}  # loopback only, offline
    run = subprocess.run([sys.executable, "-m", "adapterxfer.cli", "hub", "push", str(trained / "mnli"), "--hub",
                          "hf://my-org/mnli-adapter"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and "the Hugging Face Hub could not be used" in run.stderr, run.stderr


def test_repo_index_and_schema():
    repo = Path(__file__).resolve().parents[1] / "adapters_hub"
    package = Path(__file__).resolve().parents[1] / "adapterxfer" / "hub" / "schema.json"
    assert (repo / "schema.json").read_bytes() == package.read_bytes()
    for entry in read_index(repo):  # validated against the schema; cards of modules that were really trained
        assert entry["files"] and entry["trainable_parameters"] > 0


def test_card_results_list_languages_then_each_average_once():
    from adapterxfer.hub.card import result_rows

    entry = {"xtreme_results": {
        "xnli": {"split": "dev", "scores": {"ar": {"accuracy": 60.0}, "avg_accuracy": 62.0, "avg_metric": 62.0,
                                            "bg": {"accuracy": 64.0}}},
        "xquad": {"split": "test", "scores": {"en": {"exact_match": 50.0, "f1": 70.0}, "avg_exact_match": 50.0,
                                              "avg_f1": 70.0, "avg_metric": 60.0}}}}
    rows = [(r["task"], r["language"], r["metric"], r["value"]) for r in result_rows(entry)]
    assert rows == [("xnli", "ar", "accuracy", 60.0), ("xnli", "bg", "accuracy", 64.0),
                    ("xnli", "average", "accuracy", 62.0),
                    ("xquad", "en", "exact_match", 50.0), ("xquad", "en", "f1", 70.0),
                    ("xquad", "average", "exact_match", 50.0), ("xquad", "average", "f1", 70.0),
                    ("xquad", "average", "metric", 60.0)]
