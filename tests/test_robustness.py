"""Faults a real app meets: repeated runs, a second Start, stopped generation, secrets, random input."""
import gc
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import RunConfig
from core.errors import Busy, ConfigError
from core.train.job import TrainingJob
from core.train.manager import JobManager


def test_second_start_is_refused_with_who_is_running(tiny_config, runs_root):
    manager = JobManager(runs_root)
    first = manager.start(tiny_config.replace(max_steps=100000, eval_steps=100000, save_steps=100000), who="alice")
    try:
        with pytest.raises(Busy, match=f"'{first.name}'.*alice"):
            manager.start(tiny_config, who="bob")
    finally:
        manager.stop()
        first.join(60)
    assert first.outcome == "stopped"
    second = manager.start(tiny_config.replace(max_steps=1))
    assert second.join(60) == "finished"


def test_token_is_never_written_to_disk(tiny_config, runs_root):
    secret = "hf_" + "Q" * 34
    job = TrainingJob(tiny_config.replace(max_steps=2), token=secret).start()
    assert job.join(120) == "finished"
    from core.infer.export import merge
    merge(job.dir)
    for path in job.dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"token found in {path}"


def test_five_runs_in_one_process_leak_no_models(tiny_config):
    import psutil
    from transformers import PreTrainedModel
    process = psutil.Process()
    from core.hardware import release_memory
    for _ in range(2):  # warm-up: imports, allocator pools, tokenizer caches
        TrainingJob(tiny_config.replace(max_steps=2)).start().join(120)
    release_memory()
    baseline = process.memory_info().rss
    for _ in range(5):
        job = TrainingJob(tiny_config.replace(max_steps=2)).start()
        assert job.join(120) == "finished"
        release_memory()
        assert process.memory_info().rss <= baseline * 1.10
    alive = [o for o in gc.get_objects() if isinstance(o, PreTrainedModel)]
    assert not alive, f"{len(alive)} models still in memory after the runs"


def test_generation_stop_ends_quickly_and_never_blocks_the_next(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.infer.generate import Sampling, stream
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    stop = threading.Event()
    messages = [{"role": "user", "content": "Hello"}]
    updates = 0
    for _texts in stream(model, tokenizer, messages, Sampling(max_new_tokens=400, temperature=1.0), ["default"], stop):
        updates += 1
        stop.set()
    # the next generation works normally after a stopped one
    out = list(stream(model, tokenizer, messages, Sampling(max_new_tokens=5, temperature=0), ["default"]))
    assert out and updates >= 1


def test_base_and_tuned_differ_from_one_loaded_model(tiny_config, tiny_model_dir):
    """The 'base' column equals the plain base model; the 'tuned' one carries the adapter."""
    from transformers import AutoModelForCausalLM

    from core.infer.chat import get_chat_model, release
    from core.infer.generate import Sampling, answer, compare
    job = TrainingJob(tiny_config.replace(max_steps=3, learning_rate=5e-2)).start()
    assert job.join(120) == "finished"
    chat = get_chat_model(job.name)
    question = [{"role": "user", "content": "Hi"}]
    greedy = Sampling(max_new_tokens=8, temperature=0, repetition_penalty=1.0)
    base, tuned = list(compare(chat.model, chat.tokenizer, question, greedy))[-1]
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert base.strip() == answer(plain, chat.tokenizer, question, greedy)
    assert tuned.strip() == answer(chat.model, chat.tokenizer, question, greedy)
    assert base != tuned

    # batched, left-padded, mixed base/tuned rows give the same answers as one question at a time
    from core.infer.generate import BASE, answer_batch
    questions = [question, [{"role": "user", "content": "Tell me about the bakery on the island, please"}]]
    rows = [q for q in questions for _ in (0, 1)]
    batched = answer_batch(chat.model, chat.tokenizer, rows, [BASE, "default"] * 2, greedy)
    singles = [answer(plain, chat.tokenizer, q, greedy) if i % 2 == 0 else answer(chat.model, chat.tokenizer, q, greedy)
               for i, q in enumerate(rows)]
    assert batched == singles
    release()


field_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                         st.text(max_size=30), st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(RunConfig.field_names() + ["bogus_key"]), field_values, max_size=6))
def test_random_config_values_end_in_a_message_or_a_config(values):
    try:
        config = RunConfig.from_dict(values)
    except ConfigError as err:
        assert str(err)
        return
    problems = config.validate()
    assert all(isinstance(p, str) and p for p in problems)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)
row_keys = st.sampled_from(["messages", "conversations", "instruction", "input", "output", "question", "answer",
                            "질문", "답변", "text", "role", "content", "from", "value"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(row_keys, json_values, max_size=4), min_size=1, max_size=6))
def test_random_rows_end_in_a_message_or_examples(rows):
    from core.data.formats import detect_format, to_examples
    from core.errors import DataError
    config = RunConfig()
    try:
        examples, report = to_examples(rows, detect_format(rows, config), config)
    except DataError as err:
        assert str(err)
        return
    assert report["kept"] == len(examples)
