"""After (or before) training: answers from the models, side by side, measured, and exported.

- `chat`      the one cache of loaded chat models (a run's base + adapter, or the base alone); the job
              manager releases it before a run trains
- `generate`  streaming and batched generation; base and tuned answers from one loaded model, decoder or
              encoder-decoder (T5/mt0/BART); sampling left unset is the model's own generation_config
- `evaluate`  held-out questions asked to base and tuned, with progress as (done, total)
- `questions` a person's own evaluation file (JSONL/CSV: expected substrings or a reference answer)
- `votes`     blind A/B votes and thumbs in runs/<run>/votes.jsonl, win rates with Wilson intervals,
              preference rows for DPO
- `export`    merge the adapter into the base (half precision), GGUF + Ollama (decoders; a seq2seq model is
              refused before the merge), a zip, a Hub push
- `gguf`      a merged Llama-family model written as GGUF (f16, q8_0, q4_0), its metadata read back
- `ollama`    the Modelfile: TEMPLATE derived from the chat template, stop words, system prompt
- `parity`    the exported GGUF answering the same prompts as the merged model, token by token
- `modelcard` the Hub model card (ModelCard/ModelCardData) with the loss curve and the evaluation
"""
from core.infer.chat import get_base_model, get_chat_model, release
from core.infer.evaluate import evaluate_run
from core.infer.generate import Sampling, answer, answer_batch, build_messages, compare, stream

__all__ = ["get_chat_model", "get_base_model", "release", "evaluate_run", "Sampling", "answer", "answer_batch",
           "build_messages", "compare", "stream"]
