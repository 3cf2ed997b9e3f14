"""The Export tab's handlers on a tiny trained run: sizes before export, the half-precision merge, the GGUF
report with its parity table, the zip of one kind, and the push's confirmation for a public repo (HfApi's
network methods mocked); the mismatch warning names the first differing token."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest
from huggingface_hub import HfApi

from core.train.job import TrainingJob
from core.train.manager import JobManager
from ui import export_tab

TOKEN = "hf_" + "y" * 34  # built, not written out: a token-shaped literal trips secret scanners


def _progress(*args, **kwargs) -> None:
    return None


@pytest.fixture
def trained(tiny_config, runs_root):
    job = TrainingJob(tiny_config.replace(max_steps=2, eval_steps=0, save_steps=0, run_name="tab-run")).start()
    assert job.join(300) == "finished", job.snapshot().message
    return JobManager(root=runs_root), job.dir.name


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_tab_builds_in_every_language(runs_root, lang):
    with gr.Blocks():
        tab = export_tab.build(JobManager(root=runs_root), lang)
    assert tab.refresh[0] is not None


@pytest.mark.slow
def test_sizes_merge_gguf_zip_and_push_from_the_tab(trained, monkeypatch):
    manager, name = trained
    sizes = export_tab.do_sizes(manager, "en", name, "auto", ["f16", "q8_0"])
    assert "merged model (bf16)" in sizes and "GGUF f16" in sizes and "GGUF q8_0" in sizes
    path, message = export_tab.do_merge(manager, "en", name, _progress)
    assert path.endswith("merged") and "from_pretrained" in message
    report = export_tab.do_gguf(manager, "en", name, ["f16"], _progress)
    assert "tab-run-f16.gguf" in report and "ollama create tab-run -f Modelfile" in report
    assert "TEMPLATE renders conversations exactly like" in report and "transformers" in report
    archive, _ = export_tab.do_zip(manager, "en", name, "gguf")
    assert archive.endswith("gguf.zip")

    calls = []
    monkeypatch.setattr(HfApi, "repo_info", lambda self, repo_id, **kw: SimpleNamespace(private=False))
    monkeypatch.setattr(HfApi, "update_repo_settings", lambda self, repo_id, **kw: calls.append(("private", kw)))
    monkeypatch.setattr(HfApi, "preupload_lfs_files", lambda self, repo_id, additions, **kw: None)
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **kw: calls.append(("commit",)))
    confirm, text = export_tab.do_push(manager, "en", name, "adapter", "me/public-repo", TOKEN, True)
    assert confirm["visible"] is True and "me/public-repo" in text and "PUBLIC" in text and not calls
    confirm, text = export_tab.do_push(manager, "en", name, "adapter", "me/public-repo", TOKEN, True,
                                       existing_public="make_private", progress=_progress)
    assert confirm["visible"] is False and "huggingface.co/me/public-repo" in text
    assert calls == [("private", {"private": True}), ("commit",)]
    _, text = export_tab.do_push(manager, "en", name, "adapter", "me/x", None, True)
    assert "token" in text


def test_a_mismatch_is_a_red_warning_with_the_first_differing_token(tmp_path):
    file = {"file": "m-f16.gguf", "bytes": 2_000_000, "metadata": {"chat_template": True, "eos_token_id": 2,
                                                                  "tensor_types": ["F16", "F32"]}}
    row = {"prompt": "Who?", "identical": False, "agreement": 0.5,
           "first_difference": {"position": 3, "expected": " Marta", "got": " John", "answer": "It was Marta"}}
    report = {"files": [file], "modelfile": {"stops": ["<|im_end|>"], "template_matches_tokenizer": True,
                                             "template_problem": None},
              "parity": [{"file": "m-f16.gguf", "identical": False, "agreement": 0.5, "ok": False,
                          "rows": [row], "checked_with": ["transformers"]}]}
    text = export_tab.report_markdown(report, tmp_path, "m", "en")
    assert 'class="tl-error"' in text and "' Marta'" in text and "' John'" in text and "token 3" in text
    assert "| m-f16.gguf | 2 MB | NO | 50.0% | F16, F32 |" in text
