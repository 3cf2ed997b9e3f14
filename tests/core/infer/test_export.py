"""Exports of a real 2-step run of the embedded model: half-precision merge, GGUF f16 + q8_0 read back and
compared with the merged model, the Ollama Modelfile rendered against the chat template, the Hub card, what
would be uploaded (no local path, no token), and the push through huggingface_hub mocked at its HTTP methods.

One run, one merge and one GGUF export serve the whole module (module-scoped fixture)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gguf import GGUFReader
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import RepositoryNotFoundError
from safetensors import safe_open
from transformers import AutoTokenizer

from core import home
from core.config import RunConfig
from core.errors import ExportError
from core.infer import export, ollama

pytestmark = pytest.mark.slow
TOKEN = "hf_" + "x" * 34  # built, not written out: a token-shaped literal trips secret scanners
SYSTEM = "You are the Brindlewick Bakehouse helper."


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run folder, sizes before export, GGUF report) of a 2-step LoRA run of the embedded model."""
    from core.train.job import TrainingJob
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_RUNS_DIR", str(root))
        config = RunConfig(max_steps=2, batch_size=2, max_length=96, subset_share=0.1, validation_share=0.05,
                           eval_steps=1, run_name="export-test", system_prompt=SYSTEM)
        job = TrainingJob(config).start()
        assert job.join(600) == "finished", job.snapshot().message
        before = export.sizes(job.dir)
        export.merge(job.dir)
        (job.dir / "eval.json").write_text(json.dumps({"total": 4, "base_correct": 1, "tuned_correct": 3,
                                                       "base_share": 0.25, "tuned_share": 0.75, "rows": []}))
        report = export.export_gguf(job.dir, ("f16", "q8_0"))
    return job.dir, before, report


def test_merged_model_is_half_precision_and_its_size_was_known_before(exported):
    run, before, _ = exported
    assert before["dtype"] == "bf16"  # the embedded model's Hub original is bfloat16
    assert json.loads((run / "merged" / "config.json").read_text())["dtype"] == "bfloat16"
    weights = run / "merged" / "model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in list(handle.keys())[:5]} == {torch.bfloat16}
    assert abs(weights.stat().st_size - before["merged"]) < 0.01 * before["merged"]
    assert weights.stat().st_size < 300e6  # fp32 was 540 MB


def test_gguf_opens_with_the_chat_template_and_eos_in_its_metadata(exported, tokenizer):
    run, before, report = exported
    for quant, kind in (("f16", "F16"), ("q8_0", "Q8_0")):
        path = run / "gguf" / f"export-test-{quant}.gguf"
        reader = GGUFReader(path)
        assert reader.fields["general.architecture"].contents() == "llama"
        assert reader.fields["tokenizer.chat_template"].contents() == tokenizer.chat_template
        assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == tokenizer.eos_token_id
        assert kind in {t.tensor_type.name for t in reader.tensors}
        assert abs(path.stat().st_size - before["gguf"][quant]) < 0.02 * before["gguf"][quant]


def test_f16_gguf_answers_exactly_like_the_merged_model_and_q8_0_gets_an_agreement_share(exported):
    run, _, report = exported
    f16, q8 = report["parity"]
    assert f16["file"].endswith("f16.gguf") and len(f16["rows"]) == 3
    assert f16["identical"] and f16["ok"], f16["rows"]
    assert all(r["identical"] and r["first_difference"] is None for r in f16["rows"])
    assert 0.5 < q8["agreement"] <= 1.0 and not q8["exact_required"]
    assert json.loads((run / "gguf" / "parity.json").read_text())["parity"][0]["identical"] is True


def test_modelfile_template_renders_a_conversation_like_the_tokenizer(exported):
    run, _, report = exported
    text = (run / "gguf" / "Modelfile").read_text()
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    tokenizer = AutoTokenizer.from_pretrained(run / "merged")
    for conversation in ([{"role": "user", "content": "Who founded it?"}],
                         [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello! How can I help?"},
                          {"role": "user", "content": "When do you open?\nAnd close?"}]):
        assert ollama.render(template, conversation) == tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True)
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    assert f'SYSTEM """{SYSTEM}"""' in text
    assert text.startswith("FROM ./export-test-q8_0.gguf")  # the smaller file
    assert report["modelfile"]["template_matches_tokenizer"] is True


@pytest.mark.parametrize("kind", ["adapter", "merged", "gguf"])
def test_model_card_parses_as_a_hub_card_with_its_metadata(exported, kind):
    run, _, _ = exported
    files = export.upload_files(run, kind, "someone/export-test")
    card = ModelCard(files["README.md"].decode())
    data = card.data.to_dict()
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data["pipeline_tag"] == "text-generation" and data["license"] == "apache-2.0"
    assert data.get("library_name") == {"adapter": "peft", "merged": "transformers", "gguf": None}[kind]
    assert card.data.eval_results[0].metric_value == 0.75
    assert "Q4_1 GGUF" in card.text and "loss.png" in card.text and "| tuned | 3/4 | 75% |" in card.text
    assert files["loss.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if kind == "gguf":
        assert "ollama create" in card.text and "| export-test-f16.gguf |" in card.text


@pytest.mark.parametrize("kind", ["adapter", "merged", "gguf"])
def test_what_would_be_uploaded_holds_no_local_path_and_no_token(exported, kind, monkeypatch):
    run, _, _ = exported
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    files = export.upload_files(run, kind, "someone/export-test")
    forbidden = [str(run), str(run.parent), str(home.cache_root()), str(Path.home()), "/tmp/", TOKEN]
    for name, source in files.items():
        data = source if isinstance(source, bytes) else source.read_bytes()
        for text in forbidden:
            assert text.encode() not in data, (name, text)
    if kind == "adapter":
        config = json.loads(files["adapter_config.json"])
        assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def _mock_hub(monkeypatch, visibility: str) -> list:
    """Replace HfApi's network methods; returns the list of calls they received."""
    calls = []

    def repo_info(self, repo_id, **kw):
        calls.append(("repo_info", repo_id, self.token))
        if visibility == "new":
            raise RepositoryNotFoundError("404", response=SimpleNamespace(status_code=404, headers={}, request=None))
        return SimpleNamespace(private=visibility == "private")

    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))
    monkeypatch.setattr(HfApi, "update_repo_settings",
                        lambda self, repo_id, **kw: calls.append(("update_repo_settings", repo_id, kw)))
    monkeypatch.setattr(HfApi, "preupload_lfs_files", lambda self, repo_id, additions, **kw: calls.append(
        ("preupload", [a.path_in_repo for a in additions])))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **kw: calls.append(
        ("commit", sorted(o.path_in_repo for o in operations))))
    return calls


def test_push_creates_a_private_repo_and_uploads_with_progress(exported, monkeypatch):
    run, _, _ = exported
    calls = _mock_hub(monkeypatch, "new")
    lines = []
    url = export.push(run, "adapter", "someone/export-test", TOKEN, progress=lines.append)
    assert url == "https://huggingface.co/someone/export-test"
    assert calls[0] == ("repo_info", "someone/export-test", TOKEN)
    assert calls[1] == ("create_repo", "someone/export-test", {"private": True})
    expected = sorted(export.upload_files(run, "adapter", "someone/export-test"))
    assert calls[-1] == ("commit", expected) and "adapter_model.safetensors" in expected
    assert len(lines) == len(expected) and lines[-1].params["done"] == len(expected)


def test_an_existing_public_repo_is_named_instead_of_kept_public_silently(exported, monkeypatch):
    run, _, _ = exported
    calls = _mock_hub(monkeypatch, "public")
    with pytest.raises(ExportError) as refused:
        export.push(run, "adapter", "someone/public-one", TOKEN)
    assert "someone/public-one" in str(refused.value.message) and "PUBLIC" in str(refused.value.message)
    assert not [c for c in calls if c[0] in ("commit", "create_repo")]
    export.push(run, "adapter", "someone/public-one", TOKEN, existing_public="make_private")
    assert ("update_repo_settings", "someone/public-one", {"private": True}) in calls
    calls.clear()
    export.push(run, "adapter", "someone/public-one", TOKEN, existing_public="keep")
    assert not [c for c in calls if c[0] == "update_repo_settings"] and calls[-1][0] == "commit"


def test_push_without_a_token_says_so(exported, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the server's token is never taken in its place
    with pytest.raises(ExportError, match="token"):
        export.push(exported[0], "merged", "someone/x", None)
