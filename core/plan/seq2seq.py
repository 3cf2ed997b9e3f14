"""What an encoder-decoder model (T5, mT5, mt0, flan-t5, BART) keeps for backward, for the memory planner.

A decoder run has one stream of tokens; an encoder-decoder has two: the encoder runs over the
source (the conversation up to the answer), the decoder over the target (the answer), and each
decoder layer's cross-attention projects the encoder output to keys and values over the whole
source. core/plan/memory.py asks here for the activations, logits and backward workspace of one
micro-batch; everything else (weights, adapters, optimizer) is the same for both kinds.

Counted per token and layer, from the library's T5/BART layers as they run in training:
  attention    layer input + normed input, q, k, v, the output and its transposed copy (o's input)
  MLP          residual + normed input, `mlp_saved` tensors of intermediate size, and with dropout
               the dropped copy of the hidden layer (the second linear's input)
  dropout      a 1-byte mask per dropped tensor (after attention, in and after the MLP)
  attention    with attention dropout (T5's dropout_rate applies to the weights) SDPA takes its math
  weights      path: softmax(QK), its mask and the dropped copy, per head, over the keys' length
  cross-attn   (decoder) its own q, output, transposed copy, residual + normed input; k and v over
               the source, per decoder layer
  LoRA         the (tokens x r) product per wrapped layer, and its 1-byte dropout mask over the
               layer's input, over the tokens that layer sees (encoder and cross k/v: the source)
"""
from __future__ import annotations

from core.config import RunConfig
from core.plan.model_shape import Shape

CROSS_KV = ("EncDecAttention.k", "EncDecAttention.v", "encoder_attn.k_proj", "encoder_attn.v_proj")


def lengths(config: RunConfig, stats: dict | None) -> tuple[int, int]:
    """(longest source, longest target) of a micro-batch: the data's when known (core/data/pipeline.py),
    else max_length each (core/plan/memory.py says so among its assumptions)."""
    cap = lambda key: min(config.max_length, int(stats[key])) if stats and stats.get(key) else None
    longest = cap("length_max") or config.max_length
    return cap("source_length_max") or longest, cap("target_length_max") or longest


def sees_source(name: str) -> bool:
    """Whether the layer of this full name runs over the source tokens (the encoder, cross-attention's k/v)."""
    return name.startswith(("encoder.", "model.encoder.")) or ".encoder." in name or name.endswith(CROSS_KV)


def _attention_weights(s: Shape, a: int, keys: int) -> float:
    """Per query token: SDPA's math path (taken with dropout) keeps the weights, their mask and the dropped copy."""
    return s.heads * keys * (2 * a + 1) if s.attention_dropout > 0 else 0.0


def _encoder_layer(s: Shape, a: int, source: int) -> float:
    """Bytes kept per source token in one encoder layer."""
    h, i = s.hidden, s.intermediate
    floats = 2 * h + s.q + 2 * s.kv + 2 * s.q + 2 * h + s.mlp_saved * i
    masks = 0.0
    if s.hidden_dropout > 0:
        floats += i          # the dropped hidden layer: the second linear's input
        masks += 2 * h + i   # after attention, in the MLP, after the MLP
    return floats * a + masks + s.heads * 4 + _attention_weights(s, a, source)


def _decoder_layer(s: Shape, a: int, source: int, target: int) -> float:
    """Bytes kept per target token in one decoder layer (its cross-attention's k/v are per source token)."""
    h, i = s.hidden, s.intermediate
    floats = (2 * h + s.q + 2 * s.kv + 2 * s.q      # self-attention
              + 2 * h + s.q + 2 * s.q               # cross-attention: input + normed, q, output + its copy
              + 2 * h + s.mlp_saved * i)            # MLP
    masks = 0.0
    if s.hidden_dropout > 0:
        floats += i
        masks += 3 * h + i
    weights = _attention_weights(s, a, target) + _attention_weights(s, a, source)
    return floats * a + masks + 2 * s.heads * 4 + weights


def _lora_bytes(config: RunConfig, targets: dict, a: int, source: int, target: int) -> float:
    """Per micro-batch row: each wrapped layer's (tokens x r) fp32 product and its 1-byte dropout mask."""
    total = 0.0
    for name, (features_in, _) in targets.items():
        tokens = source if sees_source(name) else target
        total += tokens * (config.lora_r * 4 + (features_in if config.lora_dropout > 0 else 0))
    return total


def parts(config: RunConfig, s: Shape, a: int, targets: dict, stats: dict | None, slack: float) -> dict:
    """{'activations', 'logits', 'workspace', 'one_layer'} in bytes for the largest micro-batch.

    `targets`: {full name: (in, out)} of the layers LoRA wraps (empty for full fine-tuning);
    `one_layer`: what recomputing the largest layer keeps (gradient checkpointing's extra).
    """
    source, target = lengths(config, stats)
    batch = config.batch_size
    enc, dec = _encoder_layer(s, a, source), _decoder_layer(s, a, source, target)
    cross_kv = 2 * s.kv * a * source  # per decoder layer, per row: k and v of the source
    encoder_output = s.hidden * a * source
    lora = _lora_bytes(config, targets, a, source, target)
    if config.gradient_checkpointing:
        inputs = (s.layers * source + s.decoder_layers * target) * s.hidden * a
        one_layer = max(enc * source, dec * target + cross_kv)
        activations = batch * (inputs + encoder_output + one_layer + lora)
    else:
        one_layer = 0.0
        activations = batch * (s.layers * source * enc + s.decoder_layers * (target * dec + cross_kv)
                               + encoder_output + lora)
    logits = batch * target * (s.vocab * 4 * 3 + s.hidden * a)  # fp32 logits, log-softmax, gradient; scaled input
    workspace = batch * max(source, target) * (3 * s.intermediate + 4 * s.hidden) * a
    return {"activations": activations * slack, "logits": logits, "workspace": workspace,
            "one_layer": batch * one_layer}
