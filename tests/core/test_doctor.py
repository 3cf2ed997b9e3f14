"""core.doctor: each error a user meets is caused here (or its real library exception injected), and its
diagnosis says what happened and what to do, in English and in Korean, never with a traceback."""
from __future__ import annotations

import copy
import errno
import json
import re
import sys

import torch

from core.doctor import diagnose, explain
from core.errors import Busy, DataError, ModelError, TrainingDiverged
from core.messages import Msg, localize, msg

HANGUL = re.compile("[가-힣]")


def both(diagnosis) -> tuple[str, str]:
    """(English, Korean) of what + todo; checks that each is a catalogue text and the Korean is Korean."""
    assert isinstance(diagnosis.what, Msg)
    en, ko = localize(diagnosis.message, "en"), localize(diagnosis.message, "ko")
    assert HANGUL.search(ko) and ko != en, ko
    assert "Traceback" not in en and "Traceback" not in ko
    for part in (diagnosis.what, diagnosis.todo):
        if part:  # no English sentence left in the Korean parts
            assert not re.search(r"\b(the|and|this|was|is)\b", localize(part, "ko")), localize(part, "ko")
    return en, ko


def raised(call, *args, **kwargs) -> BaseException:
    try:
        call(*args, **kwargs)
    except Exception as err:  # the library's own exception, with its traceback
        return err
    raise AssertionError("expected an error")


def test_cpu_out_of_memory_is_caused_for_real():
    err = raised(torch.empty, 2**62, dtype=torch.uint8)  # torch: "DefaultCPUAllocator: can't allocate memory"
    found = diagnose(err, {"batch_size": 8, "max_length": 1024, "gradient_checkpointing": False})
    en, ko = both(found)
    assert found.kind == "oom_cpu" and en.startswith("Out of memory.") and ko.startswith("메모리가 부족합니다.")
    assert "batch size 8, max length 1024, gradient checkpointing off" in en
    assert "배치 크기 8, 최대 길이 1024, 그래디언트 체크포인팅 꺼짐" in ko
    assert "DefaultCPUAllocator" in found.detail and "DefaultCPUAllocator" not in en


def test_cuda_out_of_memory_names_the_planner_numbers():
    err = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                                 "23.65 GiB of which 1.06 GiB is free.")
    plan = msg("plan.no_fit_try", device="CUDA", peak="31 GB", avail="24 GB",
               tips=msg("plan.advice", change=msg("plan.change.checkpointing"), peak="19 GB"))
    found = diagnose(err, {"batch_size": 16, "max_length": 2048, "gradient_checkpointing": True,
                           "quantization": "none", "plan": plan})
    en, ko = both(found)
    assert found.kind == "oom_gpu" and "GPU" in en and "4-bit" in en and "max length" in en
    assert "31 GB" in en and "24 GB" in en and "19 GB" in en and "31 GB" in ko and "19 GB" in ko
    assert "batch size 16" in en and "배치 크기 16" in ko and "켜짐" in ko
    assert diagnose(MemoryError()).kind == "oom_cpu"


def test_a_token_past_the_embeddings_says_resize():
    err = raised(torch.nn.Embedding(10, 4), torch.tensor([12]))  # the CPU form: "index out of range in self"
    en, ko = both(diagnose(err))
    assert diagnose(err).kind == "token_out_of_range" and "resize_token_embeddings" in en and "임베딩" in ko
    gpu = torch.AcceleratorError("CUDA error: device-side assert triggered\nCompile with `TORCH_USE_CUDA_DSA`")
    assert diagnose(gpu).kind == "token_out_of_range"


def test_cuda_started_before_visible_devices_was_set():
    err = torch.AcceleratorError("CUDA error: invalid device ordinal\nGPU device may be out of range, do you have "
                                 "enough GPUs?")
    found = diagnose(err)
    en, ko = both(found)
    assert found.kind == "cuda_init_order" and "CUDA_VISIBLE_DEVICES=0 python app.py" in en
    assert "CUDA_VISIBLE_DEVICES" in ko


def test_illegal_memory_access_with_an_8bit_optimizer_suggests_the_other_one():
    err = torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
    found = diagnose(err, {"optimizer": "paged_adamw_8bit", "precision": "bf16"})
    en, ko = both(found)
    assert found.kind == "optimizer_8bit_mixed" and "paged_adamw_8bit" in en and "'adamw_torch'" in en
    assert "'adamw_torch'" in ko and "8비트" in ko
    assert diagnose(err, {"optimizer": "adamw_torch", "precision": "bf16"}).kind == "gpu_fault"
    assert diagnose(err, {"optimizer": "adamw_8bit", "precision": "fp32"}).kind == "gpu_fault"


def _gated_repo_error():
    from huggingface_hub.errors import GatedRepoError
    # the HTTP client huggingface_hub is built on (its errors subclass that client's HTTPError)
    http = sys.modules[next(c.__module__ for c in GatedRepoError.__mro__ if c.__name__ == "HTTPError")]
    url = "https://huggingface.co/meta-llama/Llama-3.2-1B/resolve/main/config.json"
    return GatedRepoError(f"403 Client Error. Cannot access gated repo for url {url}.",
                          response=http.Response(403, request=http.Request("GET", url)))


def test_a_gated_model_without_access():
    gated = _gated_repo_error()
    try:  # what transformers and core.models do with it
        try:
            raise OSError("You are trying to access a gated repo.\nMake sure to have access to it.") from gated
        except OSError:
            raise ModelError(msg("model.needs_token", model="meta-llama/Llama-3.2-1B")) from None
    except ModelError as err:
        found = diagnose(err)
    en, ko = both(found)
    assert found.kind == "gated_model" and found.user_error
    assert "https://huggingface.co/meta-llama/Llama-3.2-1B" in en and "licence" in en and "HF_TOKEN" in en
    assert "라이선스" in ko and "토큰" in ko
    assert "Cannot access gated repo" in found.detail  # the library's words, hidden by `from None`, in the details
    assert diagnose(gated).kind == "gated_model" and "meta-llama/Llama-3.2-1B" in diagnose(gated).what


def test_a_private_dataset_without_a_token(monkeypatch):
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    from core.config import RunConfig
    from core.data.sources import load_rows

    def private(*args, **kwargs):
        raise DatasetNotFoundError("Dataset 'me/secret' doesn't exist on the Hub or cannot be accessed.")
    monkeypatch.setattr(datasets, "load_dataset", private)
    err = raised(load_rows, RunConfig(dataset="me/secret"))
    found = diagnose(err)
    en, ko = both(found)
    assert found.kind == "private_dataset" and "https://huggingface.co/datasets/me/secret" in en and "token" in en
    assert "'me/secret'" in ko and "토큰" in ko


def test_bitsandbytes_without_a_backend():
    from bitsandbytes.cextension import ErrorHandlerMockBNBNativeLibrary
    lib = ErrorHandlerMockBNBNativeLibrary("libcudart.so.13: cannot open shared object file: No such file")
    err = raised(lib.cquantize_blockwise_fp16)  # what bitsandbytes raises when no native library loaded
    found = diagnose(err)
    en, ko = both(found)
    assert found.kind == "bnb_backend" and "quantization 'none'" in en and "'none'" in ko
    assert "LD_LIBRARY_PATH" in found.detail


def test_a_tokenizer_without_pad_token_and_without_chat_template(tokenizer):
    bare = copy.deepcopy(tokenizer)
    bare.pad_token = None
    found = diagnose(raised(bare, ["a", "a longer one"], padding=True))
    en, ko = both(found)
    assert found.kind == "no_pad_token" and "eos_token" in en and "패딩" in ko
    bare.chat_template = None
    found = diagnose(raised(bare.apply_chat_template, [{"role": "user", "content": "hi"}]))
    en, ko = both(found)
    assert found.kind == "no_chat_template" and "'chatml'" in en and "채팅 템플릿" in ko


def test_an_unsupported_architecture(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, T5Config
    found = diagnose(raised(AutoModelForCausalLM.from_config, T5Config()))  # "Model type should be one of ..."
    en, ko = both(found)
    assert found.kind == "unsupported_architecture" and "'t5'" in en and "'t5'" in ko
    assert "GPT2Config" not in en and "GPT2Config" in found.detail
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xyz"}))
    found = diagnose(raised(AutoConfig.from_pretrained, str(tmp_path)))
    assert found.kind == "unsupported_architecture" and "'xyz'" in found.what


def test_a_dataset_with_no_trainable_tokens(tokenizer, tmp_path):
    from core.config import RunConfig
    from core.data.pipeline import prepare
    rows = [{"prompt": "a long question " * 40, "response": "yes"} for _ in range(4)]
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    err = raised(prepare, RunConfig(dataset=str(path), max_length=64, validation_share=0), tokenizer)
    assert isinstance(err, DataError)
    found = diagnose(err)
    en, ko = both(found)
    assert found.kind == "no_trainable_tokens" and found.user_error and "'train_on'" in en and "'train_on'" in ko


def test_a_full_disk(tmp_path):
    err = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "adapter.safetensors"))
    found = diagnose(err)
    en, ko = both(found)
    assert found.kind == "disk_full" and "runs folder" in en and "디스크" in ko
    in_a_run = diagnose(err, {"good_step": 40})
    assert in_a_run.what.key == "job.disk_full" and "step 40" in in_a_run.what and "40" in localize(in_a_run.what, "ko")
    assert diagnose(RuntimeError("safetensors: No space left on device (os error 28)")).kind == "disk_full"


def test_a_nan_loss():
    found = diagnose(TrainingDiverged(6, "NaN"), {"good_step": 5})
    en, ko = both(found)
    assert found.kind == "loss_nan" and en.startswith("The loss became NaN at step 6;") and "step 5" in en
    assert "학습률" in ko


def test_no_internet_for_a_hub_id():
    from huggingface_hub import hf_hub_download
    from transformers import AutoConfig
    for err in (raised(hf_hub_download, "nobody/nothing-here", "config.json", local_files_only=True),
                raised(AutoConfig.from_pretrained, "nobody/nothing-here", local_files_only=True),
                ConnectionError("[Errno -2] Name or service not known")):
        found = diagnose(err, {"model": "nobody/nothing-here"})
        en, ko = both(found)
        assert found.kind == "offline" and "huggingface.co" in en and "인터넷" in ko and "nobody/nothing-here" in ko


def test_anything_else_is_unexpected_with_the_details_and_the_log(tmp_path):
    err = raised(lambda: 1 / 0)
    found = diagnose(err, {"log": str(tmp_path / "events.jsonl")})
    en, ko = both(found)
    assert found.kind == "unexpected" and en.startswith("Something unexpected went wrong (ZeroDivisionError).")
    assert str(tmp_path / "events.jsonl") in en and str(tmp_path / "events.jsonl") in ko and "자세히 보기" in ko
    assert "ZeroDivisionError: division by zero" in found.detail and "division" not in en
    assert "test_doctor.py" in found.detail and "Traceback" not in found.detail  # where, but no traceback
    assert found.trace.startswith("Traceback") and "division by zero" in found.trace  # that is for the log
    assert found.exit_code == 1


def test_explain_keeps_tunelabs_own_messages_whole():
    message, code = explain(DataError(msg("data.no_rows", name="x.csv")))
    assert code == 2 and message.key == "data.no_rows"
    # its own sentence is the message: the details don't repeat it (in English, on a Korean page)
    assert diagnose(Busy(msg("train.busy_by", run="demo", who="alice"))).detail == ""
    message, code = explain(FileNotFoundError(2, "No such file", "/nope.yaml"))
    assert code == 2 and message.key == "error.not_found" and "/nope.yaml" in message


def test_the_cli_prints_what_and_todo_and_details_only_with_verbose(tmp_path, capsys):
    import app
    assert app.report_error(raised(torch.empty, 2**62, dtype=torch.uint8)) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: Out of memory.") and "What to do: " in err and "--verbose" in err
    assert "DefaultCPUAllocator" not in err
    assert app.report_error(raised(torch.empty, 2**62, dtype=torch.uint8), verbose=True) == 1
    assert "DefaultCPUAllocator" in capsys.readouterr().err


def test_a_sudden_loss_collapse_is_flagged_in_both_languages(tmp_path):
    """A collapse is a warning while the run goes on (not an exception, so not diagnose()): the run's status
    shows it in red, in the page's language, with what to check."""
    from core.events import EventLog
    from core.runs import summarize
    from core.train.checkpoints import LossWatch

    log, watch = EventLog(tmp_path / "events.jsonl"), LossWatch(total_steps=100)
    for step, loss in ((10, 2.1), (11, 2.0), (12, 1.9), (13, 0.05), (14, 0.04), (15, 0.05)):
        watch.check(step, loss, log)
    warning = summarize(tmp_path).warnings[-1]
    en, ko = localize(warning, "en"), localize(warning, "ko")
    assert "from 2.000 to 0.0500" in en and "bitsandbytes" in en and "learning rate" in en
    assert HANGUL.search(ko) and "2.000" in ko and "학습률" in ko and "learning rate" not in ko


def test_a_run_out_of_memory_names_its_settings_and_the_planner_estimate(tiny_config, monkeypatch):
    from core.train import job as job_module

    def oom(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB.")
    monkeypatch.setattr(job_module.Trainer, "train", oom)
    job = job_module.TrainingJob(tiny_config.replace(oom_retry=False, batch_size=4)).start()
    assert job.join(300) == "failed"
    summary = job.snapshot()
    en, ko = localize(summary.message, "en"), localize(summary.message, "ko")
    assert en.startswith("Out of memory. This run needs more memory than the GPU has.")
    assert "batch size 4, max length 128" in en and "The planner's estimate for these settings:" in en
    assert ko.startswith("메모리가 부족합니다.") and "배치 크기 4, 최대 길이 128" in ko and "계획기의 추정" in ko
    assert "CUDA out of memory. Tried to allocate 4.00 GiB." in summary.detail and "Traceback" not in summary.detail


def test_the_cli_exits_2_when_a_run_fails_on_something_the_user_can_change(tmp_path, embedded_dir, capsys):
    """`app.py train` with a model transformers can't load: the run fails, the CLI says what to do, exit 2."""
    import shutil

    import app
    from core.config import RunConfig
    model = tmp_path / "xyz"
    model.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(embedded_dir / name, model / name)
    (model / "config.json").write_text(json.dumps({"model_type": "xyz"}))
    (tmp_path / "run.yaml").write_text(f"model: {model}\nmax_steps: 2\n")
    assert app.main(["train", "--config", str(tmp_path / "run.yaml")]) == app.EXIT_BAD_INPUT
    err = capsys.readouterr().err  # refused before the run starts (reading the model for the checks)
    assert "Error: This kind of model ('xyz') can't be loaded here" in err and "What to do: Pick" in err
    assert "Traceback" not in err
    from core.train.job import TrainingJob
    job = TrainingJob(RunConfig(model=str(model), max_steps=2)).start()  # the same failure inside a run
    assert app.follow(job) == app.EXIT_BAD_INPUT and job.snapshot().bad_input
    assert "can't be loaded here" in capsys.readouterr().out
