"""The Train form's Check and Start refuse target_modules the chosen model doesn't have, in the page's language."""
from transformers import GPT2Config

from core.config import RunConfig
from ui import train_actions
from ui.form import values_from_config


def test_check_and_start_name_the_models_real_layers(tmp_path):
    GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64).save_pretrained(tmp_path)
    values = values_from_config(RunConfig(model=str(tmp_path), target_modules="q_proj,v_proj"))
    english = train_actions.settings_check(values, "en")
    assert "c_attn, c_fc, c_proj" in english and "q_proj, v_proj" in english
    assert "c_attn" in train_actions.settings_check(values, "ko") and "층" in train_actions.settings_check(values, "ko")
    html, _ = train_actions.start(None, values, "", "", "en")  # refused before the manager is even asked
    assert "c_attn, c_fc, c_proj" in html
    values["target_modules"] = "c_attn"
    assert "⚠" not in train_actions.settings_check(values, "en")
