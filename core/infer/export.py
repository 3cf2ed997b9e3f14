"""Exports that work elsewhere: the merged model in half precision, GGUF + Ollama with a parity check, the
adapter, each with a Hub model card, as a zip or pushed to the Hub.

The merge reloads the base in full precision (merging into 4-bit weights
would round the adapter away), applies the adapter with peft and saves
safetensors in the base's own half precision (bf16/fp16; fp32 on request).
The GGUF files, their Ollama Modelfile and the parity report go to
runs/<run>/gguf/. What leaves the machine (a zip or a Hub push) is one list
of files per kind (`upload_files`): the model card is written for the repo,
the adapter's base is named by its Hub id, and nothing holds a local path or
a token. A push is private by default and never leaves an existing public
repo public without the caller saying so.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoTokenizer

from core import hardware, runs
from core.config import RunConfig
from core.errors import ExportError
from core.infer import gguf, modelcard, ollama, parity
from core.infer.chat import run_is_seq2seq
from core.infer.generate import stop_token_ids
from core.messages import Msg, msg
from core.models import load_base, resolve

Progress = Callable[[Msg], None]
DTYPES = ("auto", "bf16", "fp16", "fp32")
TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
KINDS = modelcard.KINDS
DEFAULT_QUANTS = ("f16", "q8_0")


def merged_dtype(config: RunConfig, requested: str = "auto") -> str:
    """bf16/fp16/fp32: the request, or ("auto") the base's own half precision; bf16 for a float32 base
    (the embedded model is stored dequantized in float32; its Hub original is bfloat16)."""
    if requested not in DTYPES:
        raise ExportError(msg("export.unknown_dtype", dtype=requested, choices=", ".join(DTYPES)))
    if requested != "auto":
        return requested
    folder = _local_base(config)
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8")) if folder else {}
    return "fp16" if (saved.get("dtype") or saved.get("torch_dtype")) == "float16" else "bf16"


def sizes(run_dir: Path, dtype: str = "auto", quants: tuple[str, ...] = DEFAULT_QUANTS) -> dict:
    """What an export will weigh, before it starts: {'dtype', 'merged', 'gguf': {quant: bytes}}; None where
    the base's weights are not on this machine yet (a Hub model not downloaded)."""
    _check_quants(quants, allow_none=True)
    config = RunConfig.load_yaml(run_dir / "config.yaml")
    chosen = merged_dtype(config, dtype)
    shapes = _shapes(run_dir / "merged") or _shapes(_local_base(config))
    if not shapes:
        return {"dtype": chosen, "merged": None, "gguf": {q: None for q in quants}}
    count = sum(math.prod(s) for s in shapes.values())
    convertible = gguf_refusal(run_dir, config) is None  # no GGUF size for a model that cannot become one
    return {"dtype": chosen, "merged": count * BYTES[chosen],
            "gguf": {q: gguf.estimate_bytes(shapes, q) for q in quants} if convertible else {}}


def merge(run_dir: Path, target: Path | None = None, progress: Progress | None = None, dtype: str = "auto",
          token: str | None = None) -> Path:
    """Write run_dir/merged (or `target`): base + adapter as one plain model, saved in `dtype`; `token` reads a
    gated or private base from the Hub (used for this call only)."""
    config = RunConfig.load_yaml(run_dir / "config.yaml")
    target = target or run_dir / "merged"
    if not config.uses_lora:
        if (run_dir / "merged" / "config.json").exists():
            return run_dir / "merged"  # full fine-tuning saved the complete model, in the precision it trained in
        raise ExportError(msg("export.no_model"))
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise ExportError(msg("export.no_adapter"))
    chosen = merged_dtype(config, dtype)
    full = config.replace(quantization="none", method="lora",
                          precision="fp32" if hardware.device_type() == "cpu" else config.precision)
    base = load_base(full, token=token, progress=progress, quantize=False)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    if len(tokenizer) > base.get_input_embeddings().num_embeddings:
        base.resize_token_embeddings(len(tokenizer))
    if progress:
        progress(msg("export.merging"))
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload().to(TORCH_DTYPES[chosen])
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(msg("export.saving_as", path=target, dtype=chosen))
    # the template's end-of-turn (ChatML's <|im_end|> on a non-ChatML model) stops plain `generate` too
    merged.generation_config.eos_token_id = stop_token_ids(merged, tokenizer)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _write_card(config, run_dir, "merged", tmp)
    runs.replace_folder(tmp, target)  # a kill between its renames leaves merged.prev, put back by runs.summarize
    return target


def export_gguf(run_dir: Path, quants: tuple[str, ...] = DEFAULT_QUANTS, progress: Progress | None = None,
                check: bool = True, token: str | None = None) -> dict:
    """GGUF files (one per quant), a Modelfile and parity.json in run_dir/gguf; returns the report."""
    _check_quants(quants)
    config = RunConfig.load_yaml(run_dir / "config.yaml")
    refused = gguf_refusal(run_dir, config)
    if refused is not None:  # before the merge: minutes of work for a file that could not be written
        raise ExportError(refused)
    merged = run_dir / "merged"
    if not (merged / "config.json").exists() or runs.merged_is_stale(run_dir):
        merge(run_dir, progress=progress, token=token)
    out = run_dir / "gguf"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = []
    for quant in quants:
        path = out / f"{run_dir.name}-{quant}.gguf"
        if progress:
            progress(msg("gguf.writing", file=path.name))
        gguf.convert(merged, path, quant, name=run_dir.name, license=modelcard.base_license(config.model),
                     base=modelcard.base_hub_id(config.model))
        files.append({"file": path.name, "quant": quant, "bytes": path.stat().st_size,
                      "metadata": _promised(gguf.read_metadata(path))})
    report = {"files": files, **_ollama(config, merged, out, files)}
    if check:
        report["parity"] = _parity(config, merged, out, quants, progress)
    (out / "parity.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return report


def gguf_refusal(run_dir: Path, config: RunConfig | None = None) -> Msg | None:
    """Why this run cannot become GGUF + Ollama, from files on this machine only (no weights loaded), or None.

    An encoder-decoder (T5, mt0, BART) is refused with what to use instead; another decoder architecture the
    GGUF writer does not cover is refused as core.infer.gguf would, but before the merge."""
    config = config or RunConfig.load_yaml(run_dir / "config.yaml")
    hparams = _saved_config(run_dir, config)
    arch = (hparams.get("architectures") or [hparams.get("model_type") or "?"])[0]
    if hparams.get("is_encoder_decoder") or run_is_seq2seq(run_dir):
        return msg("families_infer.gguf_seq2seq", arch=arch)
    if hparams and arch not in gguf.ARCHITECTURES:
        return msg("gguf.unsupported_arch", arch=arch, supported=", ".join(gguf.ARCHITECTURES))
    return None


def _saved_config(run_dir: Path, config: RunConfig) -> dict:
    """The model's config.json: the merged model's, else the base's when it is on this machine; {} if neither."""
    for folder in (run_dir / "merged", _local_base(config)):
        if folder is not None and (folder / "config.json").exists():
            return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return {}


def _check_quants(quants: tuple[str, ...], allow_none: bool = False) -> None:
    for quant in quants:
        if quant not in gguf.QUANTS:
            raise ExportError(msg("gguf.unknown_quant", quant=quant, choices=", ".join(gguf.QUANTS)))
    if not quants and not allow_none:
        raise ExportError(msg("gguf.no_quant", choices=", ".join(gguf.QUANTS)))


def _promised(metadata: dict) -> dict:
    """The GGUF metadata worth showing: chat template present, BOS/EOS/EOT ids, tensor types."""
    return {"chat_template": bool(metadata.get("tokenizer.chat_template")),
            **{k.split(".")[-1]: metadata[k] for k in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                                       "tokenizer.ggml.eot_token_id") if k in metadata},
            "tensor_types": metadata["tensor_types"]}


def _ollama(config: RunConfig, merged: Path, out: Path, files: list[dict]) -> dict:
    """Write the Modelfile (FROM the smallest file) and say whether its TEMPLATE renders like the tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(merged)
    try:
        template, problem = ollama.derive(tokenizer), None
    except ExportError as err:  # Ollama then falls back to the GGUF's own chat template: said in the report
        template, problem = None, err.message  # a Msg: the page shows it in its language
    stops = ollama.stop_words(tokenizer, template, gguf.stop_token_ids(merged, tokenizer)) if template else \
        [tokenizer.convert_ids_to_tokens(i) for i in gguf.stop_token_ids(merged, tokenizer)]
    smallest = min(files, key=lambda f: f["bytes"])["file"]
    (out / "Modelfile").write_text(ollama.modelfile(smallest, template, stops, config.system_prompt), encoding="utf-8")
    matches = None
    if template is not None:
        samples = [[{"role": "user", "content": "Hi"}],
                   [{"role": "system", "content": config.system_prompt or "Be brief."},
                    {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "What can you do?"}]]
        matches = all(ollama.render(template.go(), s) == tokenizer.apply_chat_template(
            s, tokenize=False, add_generation_prompt=True) for s in samples)
    return {"modelfile": {"from": smallest, "stops": stops, "template_matches_tokenizer": matches,
                          "template_problem": problem, "system": bool(config.system_prompt.strip())}}


def _parity(config: RunConfig, merged: Path, out: Path, quants: tuple[str, ...], progress: Progress | None) -> list:
    prompts = list(config.probe_prompts[:3]) if len(config.probe_prompts) >= 3 else list(parity.PROMPTS)
    if progress:
        progress(msg("gguf.parity"))
    ref = parity.reference(merged, prompts, config.system_prompt)
    return [parity.check(out / f"{out.parent.name}-{q}.gguf", ref, exact=q in ("f16", "f32")) for q in quants]


def upload_files(run_dir: Path, kind: str, repo_id: str = "") -> dict[str, Path | bytes]:
    """{path in the repo: local file or bytes}: exactly what a zip or a push of this kind sends."""
    config = RunConfig.load_yaml(run_dir / "config.yaml")
    folder = {"adapter": run_dir / "adapter", "merged": run_dir / "merged", "gguf": run_dir / "gguf"}.get(kind)
    if folder is None:
        raise ExportError(msg("export.unknown_kind", kind=kind, choices=", ".join(KINDS)))
    if not folder.is_dir() or not any(folder.iterdir()):
        raise ExportError(msg({"adapter": "export.no_adapter", "merged": "export.merge_first",
                               "gguf": "export.gguf_first"}[kind]))
    files: dict[str, Path | bytes] = {p.name: p for p in sorted(folder.iterdir()) if p.is_file()
                                      and not p.name.endswith((".tmp", ".lock")) and p.name != "README.md"}
    if kind == "adapter":
        files["adapter_config.json"] = hub_adapter_config(folder / "adapter_config.json", config)
    loss = modelcard.loss_curve(run_dir, run_dir / modelcard.LOSS_IMAGE)
    if loss:
        files[modelcard.LOSS_IMAGE] = loss
    extra = _parity_markdown(run_dir / "gguf" / "parity.json") if kind == "gguf" else ""
    files["README.md"] = str(modelcard.build(config, run_dir, kind, repo_id, extra)).encode("utf-8")
    return files


def hub_adapter_config(path: Path, config: RunConfig) -> bytes:
    """adapter_config.json with the base named by its Hub id (so PeftModel.from_pretrained works elsewhere);
    a base known only to this machine is left unnamed rather than given as a local path."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = modelcard.base_hub_id(config.model)
    return json.dumps(data, indent=2, sort_keys=True).encode("utf-8")


def _fresh(run_dir: Path, kind: str, progress: Progress | None, token: str | None) -> None:
    """Rebuild a merged model older than the adapter (a resumed run); refuse GGUF files older than it."""
    if kind in ("merged", "gguf") and runs.merged_is_stale(run_dir):
        if kind == "gguf":
            raise ExportError(msg("export.gguf_stale"))
        merge(run_dir, progress=progress, token=token)
    parity_file = run_dir / "gguf" / "parity.json"
    merged_config = run_dir / "merged" / "config.json"
    if kind == "gguf" and parity_file.exists() and merged_config.exists() \
            and merged_config.stat().st_mtime_ns > parity_file.stat().st_mtime_ns:
        raise ExportError(msg("export.gguf_stale"))


def zip_files(run_dir: Path, kind: str, progress: Progress | None = None, token: str | None = None) -> Path:
    """runs/<run>/<kind>.zip of exactly what a push of this kind would upload."""
    _fresh(run_dir, kind, progress, token)
    target = run_dir / f"{kind}.zip"
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in upload_files(run_dir, kind).items():
            if isinstance(source, bytes):
                archive.writestr(name, source)
            else:
                archive.write(source, name)
    os.replace(tmp, target)
    return target


def repo_visibility(repo_id: str, token: str) -> str:
    """'new', 'private' or 'public': what the Hub says about `repo_id` for this token."""
    try:
        return "private" if HfApi(token=token).repo_info(repo_id).private else "public"
    except RepositoryNotFoundError:
        return "new"
    except Exception as err:
        raise ExportError(msg("export.push_failed", repo=repo_id, error=_first_line(err))) from None


def push(run_dir: Path, kind: str, repo_id: str, token: str | None, private: bool = True,
         existing_public: str = "", progress: Progress | None = None) -> str:
    """Upload one kind of export with the caller's own token; returns the repo URL.

    A new repo is created private unless `private` is False. An existing public repo asked to be private
    is refused with its name, unless `existing_public` is "keep" (push, it stays public) or "make_private"."""
    if not token:
        raise ExportError(msg("export.needs_token"))
    _fresh(run_dir, kind, progress, token)
    files = upload_files(run_dir, kind, repo_id)
    api = HfApi(token=token)
    state = repo_visibility(repo_id, token)
    if state == "public" and private and existing_public not in ("keep", "make_private"):
        raise ExportError(msg("export.repo_is_public", repo=repo_id))
    try:
        if state == "new":
            api.create_repo(repo_id, private=private)
        elif state == "public" and private and existing_public == "make_private":
            api.update_repo_settings(repo_id, private=True)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(source) if isinstance(source, Path)
                                         else source) for name, source in files.items()]
        for done, operation in enumerate(operations, 1):
            if progress:
                progress(msg("export.uploading", file=operation.path_in_repo, done=done, total=len(operations)))
            api.preupload_lfs_files(repo_id, additions=[operation])
        api.create_commit(repo_id, operations=operations, commit_message=f"TuneLab export ({kind})")
    except Exception as err:
        raise ExportError(msg("export.push_failed", repo=repo_id, error=_first_line(err))) from None
    return f"https://huggingface.co/{repo_id}"


def _write_card(config: RunConfig, run_dir: Path, kind: str, folder: Path) -> None:
    """README.md (+ loss.png) in an export folder, so the folder alone is a complete Hub repo."""
    loss = modelcard.loss_curve(run_dir, run_dir / modelcard.LOSS_IMAGE)
    if loss:
        shutil.copyfile(loss, folder / modelcard.LOSS_IMAGE)
    (folder / "README.md").write_text(str(modelcard.build(config, run_dir, kind)), encoding="utf-8")


def _parity_markdown(path: Path) -> str:
    if not path.exists():
        return ""
    report = json.loads(path.read_text(encoding="utf-8"))
    lines = ["## Files and parity with the merged model", "",
             "Greedy answers to the same prompts from the merged model and from each GGUF read back with "
             "transformers, compared token by token (agreement: share of answer tokens the GGUF predicts the same).",
             "", "| file | size | identical answers | agreement |", "| --- | --- | --- | --- |"]
    checks = {c["file"]: c for c in report.get("parity", [])}
    for f in report["files"]:
        c = checks.get(f["file"])
        lines.append(f"| {f['file']} | {f['bytes'] / 1e6:.0f} MB | "
                     + (f"{'yes' if c['identical'] else 'no'} | {c['agreement']:.1%} |" if c else "not checked | - |"))
    return "\n".join(lines)


def _local_base(config: RunConfig) -> Path | None:
    """The base's folder on this machine (the embedded checkpoint, a local folder, a cached Hub snapshot)."""
    try:
        where = Path(resolve(config.model))
    except Exception:  # not converted yet, not cached: sizes are then unknown, the merge will say why
        return None
    return where if (where / "config.json").exists() else None


def _shapes(folder: Path | None) -> dict[str, list[int]]:
    """{tensor name: shape} from the safetensors headers (no weights read)."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(folder.glob("*.safetensors")) if folder and folder.is_dir() else []:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = list(handle.get_slice(key).get_shape())
    return shapes


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__
