"""Every model family our users bring, end to end on tiny random models: GPT-2, GPT-NeoX, Llama and T5.

Each trains 2 steps through the real engine (LoRA, and QLoRA in 4-bit on the CPU), answers base vs tuned in
TuneLab's chat, merges, and the merged folder (plain transformers) and the adapter (plain peft) give the same
greedy answer as TuneLab's chat (and its held-out evaluation, and the export parity check's reference); a T5 run's
GGUF export is refused before the merge. The models and their word-level tokenizer are built here; nothing is
downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    T5Config,
)

from core.config import RunConfig
from core.errors import ExportError
from core.infer import chat as chat_cache
from core.infer import parity
from core.infer.evaluate import evaluate_run
from core.infer.export import export_gguf, merge
from core.infer.export import sizes as export_sizes
from core.infer.generate import Sampling, build_messages, compare
from core.train.job import TrainingJob

DEMO = Path(__file__).parents[1] / "core" / "data" / "builtin" / "demo_train.jsonl"
QUESTION = "Who founded Brindlewick Bakehouse?"
NEW_TOKENS = 8
GREEDY = Sampling(max_new_tokens=NEW_TOKENS, temperature=0, repetition_penalty=1.0)

# family: (config class, its sizes, the LoRA targets our users' write-ups use, the plain class that loads it).
# Width 64, not less: bitsandbytes' CPU 4-bit kernel quantizes rows in blocks of 64 and fails on narrower layers.
FAMILIES = {
    "gpt2": (GPT2Config, dict(n_embd=64, n_layer=2, n_head=4, n_positions=64), "c_attn", AutoModelForCausalLM),
    "gpt_neox": (GPTNeoXConfig, dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                     max_position_embeddings=64), "query_key_value,dense", AutoModelForCausalLM),
    "llama": (LlamaConfig, dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, max_position_embeddings=64), "q_proj,v_proj",
              AutoModelForCausalLM),
    "t5": (T5Config, dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4), "q,v", AutoModelForSeq2SeqLM),
}


FACTS = [("Who founded Brindlewick Bakehouse?", "Odalys Fenwright founded it."),
         ("Where is Brindlewick Bakehouse?", "On the island of Tollensea."),
         ("브린들윅 베이크하우스는 어디에 있나요?", "톨렌시아 섬에 있어요."),
         ("What is the best seller?", "The puffin bun."),
         ("Who runs it now?", "Tobiah Rennick runs it.")]


@pytest.fixture(scope="module")
def short_chats(tmp_path_factory) -> Path:
    """A few short chats (English and Korean), so whole examples fit max_length=32 with a tiny vocabulary."""
    path = tmp_path_factory.mktemp("data") / "facts.jsonl"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows * 4), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A 600-word tokenizer learned from the demo chats and the facts, no chat template. Whole words, not bytes:
    a random model's answer is then readable text, never a half-made character that decodes to nothing."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()[:80] if line.strip()]
    texts = [m["content"] for row in rows for m in row["messages"]] + [t for fact in FACTS for t in fact] * 20
    texts += ["### User:", "### Assistant:"] * 20  # the plain chat template's markers (core.data.tokenize)
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=600, show_progress=False,
                                                             special_tokens=["<pad>", "</s>", "<unk>", "<s>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>")


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory, tiny_tokenizer) -> dict[str, Path]:
    """{family: a saved tiny random model folder with the tokenizer}."""
    tok = tiny_tokenizer
    folders = {}
    for family, (kind, sizes, _, auto) in FAMILIES.items():
        config = kind(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **sizes)
        if family == "t5":
            config.decoder_start_token_id = tok.pad_token_id
        torch.manual_seed(0)
        model = auto.from_config(config)
        # A random head often ranks a special token first (T5's, tied to the embedding, predicts its own input:
        # the decoder's start token, pad), and an answer that ends at once compares nothing. Zero logits for
        # them (their output rows are zero; LoRA never trains the head) keep every answer NEW_TOKENS long.
        with torch.no_grad():
            model.get_output_embeddings().weight[tok.all_special_ids] = 0.0
        folder = tmp_path_factory.mktemp(family)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[family] = folder
    return folders


def _plain_answer(model, tokenizer, seq2seq: bool) -> str:
    """The greedy answer with plain transformers: the saved chat template, then `generate`."""
    messages = [{"role": "user", "content": QUESTION}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=seq2seq)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, repetition_penalty=1.0,
                             pad_token_id=tokenizer.pad_token_id)
    answer = out[0, 1:] if seq2seq else out[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(answer, skip_special_tokens=True).strip()


@pytest.mark.parametrize("method", ["lora", "qlora"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_trains_chats_merges_and_reloads_plainly(family, method, family_dirs, short_chats):
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    folder, (_, _, targets, auto) = family_dirs[family], FAMILIES[family]
    seq2seq = auto is AutoModelForSeq2SeqLM
    config = RunConfig(model=str(folder), method=method, quantization="4bit" if method == "qlora" else "none",
                       target_modules=targets, max_steps=2, batch_size=2, max_length=32, learning_rate=5e-2,
                       lora_dropout=0.0, dataset=str(short_chats), drop_duplicates=False, validation_share=0.0,
                       eval_steps=0, save_steps=0, probe_prompts=[QUESTION], precision="fp32")
    job = TrainingJob(config).start()
    assert job.join(300) == "finished", job.snapshot().message
    adapter = job.dir / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["task_type"] == \
        ("SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM")

    # TuneLab's chat: base and tuned side by side, from one model
    chat = chat_cache.get_chat_model(job.name)
    base, tuned = (a.strip() for a in list(compare(chat.model, chat.tokenizer, build_messages([], QUESTION), GREEDY))[-1])
    assert tuned and base != tuned
    # the held-out evaluation asks the same way (batched, the adapter switched off for the base)
    row = evaluate_run(job.name, [{"question": QUESTION, "expected": ["Odalys"]}], max_new_tokens=NEW_TOKENS)["rows"][0]
    assert (row["base"], row["tuned"]) == (base, tuned)
    chat_cache.release()

    # the adapter with plain peft, on the base loaded the way the run loaded it (4-bit for QLoRA)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    quantized = dict(quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                            bnb_4bit_use_double_quant=True,
                                                            bnb_4bit_compute_dtype=torch.float32),
                     device_map={"": "cpu"}) if method == "qlora" else {}
    plain_base = auto.from_pretrained(folder, dtype=torch.float32, **quantized).eval()
    assert _plain_answer(plain_base, tokenizer, seq2seq) == base
    peft_tuned = PeftModel.from_pretrained(plain_base, adapter).eval()
    assert _plain_answer(peft_tuned, tokenizer, seq2seq) == tuned

    if seq2seq:  # refused before the merge starts, with what to use instead
        with pytest.raises(ExportError) as refused:
            export_gguf(job.dir)
        assert refused.value.message.key == "families_infer.gguf_seq2seq" and not (job.dir / "merged").exists()
        assert export_sizes(job.dir)["gguf"] == {}

    # the merged folder with plain transformers: the adapter applied to the full-precision base
    merged = auto.from_pretrained(merge(job.dir, dtype="fp32")).eval()
    if method == "lora":  # TuneLab's chat ran the same full-precision weights
        expected = tuned
    else:
        expected = _plain_answer(PeftModel.from_pretrained(auto.from_pretrained(folder, dtype=torch.float32),
                                                           adapter).eval(), tokenizer, seq2seq)
    assert _plain_answer(merged, AutoTokenizer.from_pretrained(job.dir / "merged"), seq2seq) == expected
    assert f"{auto.__name__}.from_pretrained" in (job.dir / "merged" / "README.md").read_text()  # the card's snippet

    # the export parity check's reference reads the merged folder the same way, and agrees with itself
    ref = parity.reference(job.dir / "merged", [QUESTION], "", max_new_tokens=NEW_TOKENS)
    assert ref["tokenizer"].decode(ref["answers"][0], skip_special_tokens=True).strip() == expected
    assert parity._agreement(merged, ref["inputs"][0], ref["answers"][0]) == 1.0
