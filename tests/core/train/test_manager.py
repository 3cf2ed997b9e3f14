"""JobManager: the chat model is freed before a run trains, on Start and on Resume alike."""
from core.infer import chat
from core.train.manager import JobManager


def test_start_and_resume_release_the_chat_model(tiny_config, tiny_model_dir, runs_root):
    manager = JobManager(runs_root)
    chat.get_base_model(str(tiny_model_dir))  # someone chatted with the base model before training
    assert chat.loaded()[0] == "base"
    job = manager.start(tiny_config.replace(max_steps=1, eval_steps=100, save_steps=100))
    assert chat.loaded() is None
    assert job.join(120) == "finished"

    chat.get_base_model(str(tiny_model_dir))  # and again before a Resume
    assert chat.loaded() is not None
    again = manager.resume(job.name)
    assert chat.loaded() is None
    assert again.join(120) == "finished" and again.name == job.name
