"""Every word the interface shows, in English and Korean, in one table.

Tab code asks `t("key", lang)` and never holds text of its own, so a
translation is one edit here. `{name}` placeholders are filled from keyword
arguments. Settings are labelled by `field_label(name, lang)`; their tooltips
come from RunConfig's own help texts (one source for the CLI and the form).
"""
from __future__ import annotations

from core.messages import CATALOG

LANGS = ("en", "ko")

EN: dict[str, str] = {
    # --- page -----------------------------------------------------------------
    "title": "TuneLab",
    "subtitle": "Fine-tune a language model on your data, watch it learn, then ask the base and the tuned model the same question.",
    "banner_open": "⚠ This app is reachable from other computers ({host}) without a login. Anyone who can reach it can train, read your runs and use this machine. Restart with --auth USER:PASS.",
    "banner_share": "⚠ A public share link is on without a login: anyone with the link can use this app. Restart with --auth USER:PASS.",
    "tab_data": "1 · Data", "tab_train": "2 · Train", "tab_chat": "3 · Chat", "tab_export": "4 · Export",
    "refresh": "↻ Refresh",
    "no_runs": "No runs yet. Train one in the Train tab.",
    "training_busy": "Run '{run}' is training on this machine right now. Chat, evaluation and merging are paused until it ends so training keeps its speed; stop it in the Train tab if you need them now.",
    # --- data tab ---------------------------------------------------------------
    "data_intro": "Choose the examples the model learns from. The format is detected; the preview shows them as a chat.",
    "source": "Where the data comes from",
    "source_demo": "Built-in demo (Brindlewick Bakehouse)", "source_hub": "Hugging Face Hub", "source_upload": "Upload a file",
    "hub_id": "Hub dataset id", "hub_id_ph": "e.g. beomi/KoAlpaca-v1.1a",
    "upload": "Your file (JSON, JSONL, CSV, TSV, Parquet or TXT, up to 200 MB)",
    "format_override": "Format (auto = detect)",
    "check_data": "Check data and preview",
    "data_summary": "**Format:** {format}  ·  **Rows:** {rows}  ·  **Kept:** {kept}  ·  **Examples:** {examples}",
    "token_summary": "**Tokens:** {tokens}  ·  **Trained on:** {trained} ({share})  ·  **Length** min {lmin} / median {p50} / 90% {p90} / max {lmax}  ·  **Cut by max length:** {truncated}",
    "dropped": "Dropped: {what}",
    "data_ok": "✓ Ready to train.",
    "data_problem": "Problem",
    "preview": "Preview (first examples, as chat turns)",
    "token_view": "One example, token by token: green = trained on (the answer), grey = context only",
    "trained": "trained", "context": "context",
    "histogram": "Example lengths (tokens)",
    "role_user": "User", "role_assistant": "Assistant", "role_system": "System",
    "example_n": "Example {n}",
    "checking_data": "Reading the data and counting tokens…",
    # --- train tab --------------------------------------------------------------
    "preset": "Preset (fills the form; keeps your data choice)",
    "preset_none": "(no preset)",
    "hf_token": "Hugging Face token (only for gated models or private datasets; never saved)",
    "simple_settings": "Settings most people change",
    "advanced": "More settings: {section}",
    "section_model": "model", "section_quantization": "quantization (4-bit / 8-bit)", "section_lora": "LoRA",
    "section_data": "data processing", "section_training": "training", "section_output": "output",
    "check_title": "Before you start",
    "check_ok": "✓ Settings look good.",
    "estimate_missing": "(A memory and time estimate appears here once the estimator is installed.)",
    "start": "▶ Start training", "stop": "■ Stop", "resume": "⟳ Resume",
    "started": "Started run '{run}'. Follow it below.",
    "stopping": "Stopping '{run}' after the current step; what was learned is kept.",
    "nothing_running": "No run is training.",
    "resumed": "Resuming '{run}' from its last checkpoint.",
    "resume_which": "Pick an interrupted or stopped run in 'Run shown' to resume it.",
    "cannot_start": "Can't start",
    "run_shown": "Run shown",
    "live_title": "Training run",
    "status_running": "Training", "status_preparing": "Preparing", "status_finished": "Finished",
    "status_stopped": "Stopped", "status_failed": "Failed", "status_interrupted": "Interrupted",
    "status_unknown": "No run selected",
    "step_of": "Step {step} / {total}",
    "m_step": "Step", "m_loss": "Loss", "m_val": "Validation loss", "m_lr": "Learning rate",
    "m_tps": "Tokens / s", "m_mem": "Memory", "m_elapsed": "Elapsed", "m_eta": "Time left",
    "loss_plot": "Loss (lower is better)", "series_train": "training", "series_val": "validation",
    "samples": "Sample answers while it learns",
    "samples_none": "Sample answers to the probe questions appear here at each evaluation.",
    "sample_step": "at step {step}", "sample_first": "first answer (step {step})",
    "past_runs": "Past runs (click a row to show it)",
    "col_run": "run", "col_status": "status", "col_steps": "steps", "col_loss": "last loss",
    "col_model": "model", "col_started": "started",
    "run_settings": "Settings of this run",
    "use_settings": "Put these settings in the form",
    "settings_loaded": "Loaded the settings of '{run}' into the form.",
    "notices": "Note",
    # --- chat tab ---------------------------------------------------------------
    "chat_intro": "Ask once: the base model and your tuned model answer side by side, from one loaded model.",
    "chat_run": "Tuned model (run)",
    "base_only": "Base model only (no run yet)",
    "system_prompt": "System prompt (optional)",
    "sampling": "Sampling",
    "max_new_tokens": "Max new tokens", "temperature": "Temperature (0 = always the likeliest word)",
    "top_p": "Top-p", "top_k": "Top-k", "repetition_penalty": "Repetition penalty",
    "question": "Your question", "question_ph": "e.g. Who founded Brindlewick Bakehouse?",
    "ask": "Ask", "clear": "Clear",
    "base_answer": "Base model", "tuned_answer": "Tuned model",
    "no_tuned": "(no tuned model: pick a run)",
    "full_no_base": "(full fine-tuning replaced the weights; the base is not loaded)",
    "loading_model": "Loading the model…",
    "waiting_lock": "Another question is being answered; yours is next…",
    "stopped_gen": "(stopped)",
    "answered_in": "✓ Answered in {seconds} s.",
    "empty_question": "Type a question first.",
    "evaluate": "Evaluate on held-out questions",
    "eval_limit": "How many questions (0 = all)",
    "eval_result": "**Right answers** — base: {base_ok}/{total} ({base_share})  ·  tuned: {tuned_ok}/{total} ({tuned_share})",
    "eval_needs_run": "Pick a trained run first: evaluation compares it with its base model.",
    "col_question": "question", "col_expected": "expected", "col_base": "base", "col_tuned": "tuned",
    # --- export tab -------------------------------------------------------------
    "export_intro": "Merge the adapter into the base model: the result loads with plain transformers, no TuneLab needed.",
    "export_run": "Run to export",
    "merge": "Merge adapter into the model",
    "merged_at": "Merged model folder",
    "merge_done": "✓ Merged. Load it with:",
    "make_zip": "Make a .zip to download",
    "download": "Download",
    "push_title": "Push to the Hugging Face Hub",
    "repo_id": "Repository id", "repo_id_ph": "your-name/my-tuned-model",
    "push_token": "Write token (or set HF_TOKEN; never saved)",
    "private": "Private repository",
    "push": "Push to the Hub",
    "pushed": "✓ Pushed: {url}",
    "merge_first": "Merge the run first.",
    "pick_run": "Pick a run first.",
    "repo_needed": "Enter a repository id like your-name/model-name.",
    # --- status lines written by core/ (keys and English text: core/messages.py) --------------
    **CATALOG,
}

KO: dict[str, str] = {
    "title": "TuneLab",
    "subtitle": "내 데이터로 언어 모델을 미세조정하고, 학습 과정을 지켜본 뒤, 기본 모델과 튜닝된 모델에 같은 질문을 해 보세요.",
    "banner_open": "⚠ 이 앱은 로그인 없이 다른 컴퓨터({host})에서 접속할 수 있습니다. 접속할 수 있는 누구나 학습을 시작하고 실행 기록을 보고 이 컴퓨터를 쓸 수 있습니다. --auth USER:PASS 로 다시 시작하세요.",
    "banner_share": "⚠ 로그인 없이 공개 공유 링크가 켜져 있습니다. 링크를 가진 누구나 이 앱을 쓸 수 있습니다. --auth USER:PASS 로 다시 시작하세요.",
    "tab_data": "1 · 데이터", "tab_train": "2 · 학습", "tab_chat": "3 · 대화", "tab_export": "4 · 내보내기",
    "refresh": "↻ 새로고침",
    "no_runs": "아직 실행이 없습니다. 학습 탭에서 학습하세요.",
    "training_busy": "지금 이 컴퓨터에서 '{run}' 실행이 학습 중입니다. 학습 속도를 지키기 위해 대화, 평가, 병합은 학습이 끝날 때까지 쉽니다. 지금 필요하면 학습 탭에서 중지하세요.",
    "data_intro": "모델이 배울 예시를 고르세요. 형식은 자동으로 감지되고, 미리보기는 대화 형태로 보여 줍니다.",
    "source": "데이터 출처",
    "source_demo": "내장 데모 (Brindlewick Bakehouse)", "source_hub": "Hugging Face Hub", "source_upload": "파일 업로드",
    "hub_id": "Hub 데이터셋 id", "hub_id_ph": "예: beomi/KoAlpaca-v1.1a",
    "upload": "내 파일 (JSON, JSONL, CSV, TSV, Parquet, TXT, 최대 200 MB)",
    "format_override": "형식 (auto = 자동 감지)",
    "check_data": "데이터 확인 및 미리보기",
    "data_summary": "**형식:** {format}  ·  **행:** {rows}  ·  **사용:** {kept}  ·  **예시:** {examples}",
    "token_summary": "**토큰:** {tokens}  ·  **학습 대상:** {trained} ({share})  ·  **길이** 최소 {lmin} / 중앙값 {p50} / 90% {p90} / 최대 {lmax}  ·  **최대 길이로 잘림:** {truncated}",
    "dropped": "제외됨: {what}",
    "data_ok": "✓ 학습할 준비가 되었습니다.",
    "data_problem": "문제",
    "preview": "미리보기 (처음 몇 개의 예시, 대화 형태)",
    "token_view": "예시 하나를 토큰 단위로: 초록 = 학습 대상(답변), 회색 = 문맥만",
    "trained": "학습", "context": "문맥",
    "histogram": "예시 길이 (토큰)",
    "role_user": "사용자", "role_assistant": "어시스턴트", "role_system": "시스템",
    "example_n": "예시 {n}",
    "checking_data": "데이터를 읽고 토큰을 세는 중…",
    "preset": "프리셋 (양식을 채웁니다. 데이터 선택은 유지)",
    "preset_none": "(프리셋 없음)",
    "hf_token": "Hugging Face 토큰 (접근 제한 모델이나 비공개 데이터셋에만 필요, 저장되지 않음)",
    "simple_settings": "자주 바꾸는 설정",
    "advanced": "추가 설정: {section}",
    "section_model": "모델", "section_quantization": "양자화 (4비트 / 8비트)", "section_lora": "LoRA",
    "section_data": "데이터 처리", "section_training": "학습", "section_output": "출력",
    "check_title": "시작하기 전에",
    "check_ok": "✓ 설정에 문제가 없습니다.",
    "estimate_missing": "(메모리·시간 예측기가 설치되면 여기에 예측이 표시됩니다.)",
    "start": "▶ 학습 시작", "stop": "■ 중지", "resume": "⟳ 이어서 학습",
    "started": "'{run}' 실행을 시작했습니다. 아래에서 진행을 확인하세요.",
    "stopping": "'{run}'을(를) 현재 단계 후에 중지합니다. 학습된 내용은 저장됩니다.",
    "nothing_running": "학습 중인 실행이 없습니다.",
    "resumed": "'{run}'을(를) 마지막 체크포인트에서 이어서 학습합니다.",
    "resume_which": "'표시할 실행'에서 중단되었거나 중지된 실행을 골라야 이어서 학습할 수 있습니다.",
    "cannot_start": "시작할 수 없음",
    "run_shown": "표시할 실행",
    "live_title": "학습 실행",
    "status_running": "학습 중", "status_preparing": "준비 중", "status_finished": "완료",
    "status_stopped": "중지됨", "status_failed": "실패", "status_interrupted": "중단됨",
    "status_unknown": "선택된 실행 없음",
    "step_of": "단계 {step} / {total}",
    "m_step": "단계", "m_loss": "손실", "m_val": "검증 손실", "m_lr": "학습률",
    "m_tps": "초당 토큰", "m_mem": "메모리", "m_elapsed": "경과 시간", "m_eta": "남은 시간",
    "loss_plot": "손실 (낮을수록 좋음)", "series_train": "학습", "series_val": "검증",
    "samples": "학습 중 샘플 답변",
    "samples_none": "평가할 때마다 고정 질문에 대한 샘플 답변이 여기에 나타납니다.",
    "sample_step": "{step}단계", "sample_first": "첫 답변 ({step}단계)",
    "past_runs": "지난 실행 (행을 누르면 표시)",
    "col_run": "실행", "col_status": "상태", "col_steps": "단계", "col_loss": "마지막 손실",
    "col_model": "모델", "col_started": "시작",
    "run_settings": "이 실행의 설정",
    "use_settings": "이 설정을 양식에 넣기",
    "settings_loaded": "'{run}'의 설정을 양식에 넣었습니다.",
    "notices": "알림",
    "chat_intro": "한 번 물으면 기본 모델과 튜닝된 모델이 나란히 답합니다(모델은 한 번만 불러옵니다).",
    "chat_run": "튜닝된 모델 (실행)",
    "base_only": "기본 모델만 (아직 실행 없음)",
    "system_prompt": "시스템 프롬프트 (선택)",
    "sampling": "샘플링",
    "max_new_tokens": "최대 생성 토큰", "temperature": "온도 (0 = 항상 가장 그럴듯한 단어)",
    "top_p": "Top-p", "top_k": "Top-k", "repetition_penalty": "반복 패널티",
    "question": "질문", "question_ph": "예: Brindlewick Bakehouse를 세운 사람은 누구인가요?",
    "ask": "질문하기", "clear": "지우기",
    "base_answer": "기본 모델", "tuned_answer": "튜닝된 모델",
    "no_tuned": "(튜닝된 모델 없음: 실행을 고르세요)",
    "full_no_base": "(전체 미세조정으로 가중치가 바뀌어 기본 모델은 불러오지 않습니다)",
    "loading_model": "모델을 불러오는 중…",
    "waiting_lock": "다른 질문에 답하는 중입니다. 다음 차례입니다…",
    "stopped_gen": "(중지됨)",
    "answered_in": "✓ {seconds}초 만에 답했습니다.",
    "empty_question": "먼저 질문을 입력하세요.",
    "evaluate": "보류된 질문으로 평가하기",
    "eval_limit": "질문 수 (0 = 전부)",
    "eval_result": "**정답** — 기본: {base_ok}/{total} ({base_share})  ·  튜닝: {tuned_ok}/{total} ({tuned_share})",
    "eval_needs_run": "먼저 학습된 실행을 고르세요. 평가는 그 실행을 기본 모델과 비교합니다.",
    "col_question": "질문", "col_expected": "기대 답", "col_base": "기본", "col_tuned": "튜닝",
    "export_intro": "어댑터를 기본 모델에 병합합니다. 결과는 TuneLab 없이 transformers만으로 불러올 수 있습니다.",
    "export_run": "내보낼 실행",
    "merge": "어댑터를 모델에 병합",
    "merged_at": "병합된 모델 폴더",
    "merge_done": "✓ 병합했습니다. 불러오는 방법:",
    "make_zip": "다운로드용 .zip 만들기",
    "download": "다운로드",
    "push_title": "Hugging Face Hub에 올리기",
    "repo_id": "저장소 id", "repo_id_ph": "your-name/my-tuned-model",
    "push_token": "쓰기 토큰 (또는 HF_TOKEN 설정, 저장되지 않음)",
    "private": "비공개 저장소",
    "push": "Hub에 올리기",
    "pushed": "✓ 올렸습니다: {url}",
    "merge_first": "먼저 병합하세요.",
    "pick_run": "먼저 실행을 고르세요.",
    "repo_needed": "your-name/model-name 같은 저장소 id를 입력하세요.",
    "job.preparing": "준비 중…",
    "job.saving_adapter": "어댑터를 저장하는 중…",
    "job.saving_model": "모델을 저장하는 중…",
    "job.stopped": "{total}단계 중 {step}단계에서 중지했습니다. 학습된 내용은 저장되었습니다.",
    "job.finished": "{steps}단계 학습을 마쳤습니다.",
    "job.oom_retry_batch": "메모리가 부족해 설정을 바꿔 다시 시도합니다: 마이크로배치 {batch_from} → {batch_to}, "
                           "그래디언트 누적 {accum_from} → {accum_to} (실질 배치 크기는 같습니다).",
    "job.oom_retry_checkpointing": "메모리가 부족해 그래디언트 체크포인팅을 켜고 다시 시도합니다 (실질 배치 크기는 같습니다).",
    "job.failed": "학습에 실패했습니다: {error}: {detail}",
    "data.loading": "데이터셋 {dataset}을(를) 불러오는 중…",
    "data.tokenizing": "예시 {n}개를 토큰화하는 중…",
    "model.converting": "내장 모델을 safetensors로 변환하는 중 (처음 한 번만, 약 30초)…",
    "model.loading": "모델 {model}을(를) 불러오는 중…",
    "export.merging": "어댑터를 기본 모델에 병합하는 중…",
    "export.saving": "병합된 모델을 {path}에 저장하는 중…",
    "runs.interrupted": "학습 도중 앱이 종료되었습니다. '이어서 학습'을 누르면 마지막 체크포인트부터 계속합니다.",
    "error.out_of_memory": "메모리가 부족합니다. 배치 크기나 최대 길이를 줄이거나, 그래디언트 체크포인팅을 켜거나, "
                           "QLoRA(4비트)를 사용하세요.",
}

# Labels of RunConfig fields (the tooltips come from RunConfig's help texts).
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "model": ("Model", "모델"), "method": ("Method", "방법"), "trust_remote_code": ("Trust remote code", "원격 코드 신뢰"),
    "quantization": ("Quantization", "양자화"), "quant_type": ("4-bit type", "4비트 형식"),
    "double_quant": ("Double quantization", "이중 양자화"), "compute_dtype": ("Compute precision", "연산 정밀도"),
    "lora_r": ("LoRA rank (r)", "LoRA 랭크 (r)"), "lora_alpha": ("LoRA alpha", "LoRA 알파"),
    "lora_dropout": ("LoRA dropout", "LoRA 드롭아웃"), "loraplus_ratio": ("LoRA+ ratio (B learns faster)", "LoRA+ 배율 (B 행렬 학습 속도)"), "target_modules": ("Target layers", "대상 레이어"),
    "lora_bias": ("LoRA bias", "LoRA 편향"),
    "dataset": ("Dataset", "데이터셋"), "dataset_config": ("Dataset configuration", "데이터셋 구성"),
    "dataset_split": ("Split", "분할"), "data_format": ("Format", "형식"),
    "prompt_column": ("Question column", "질문 열"), "response_column": ("Answer column", "답변 열"),
    "user_marker": ("User marker", "사용자 표시"), "bot_marker": ("Assistant marker", "어시스턴트 표시"),
    "chat_template": ("Chat template", "채팅 템플릿"), "system_prompt": ("System prompt", "시스템 프롬프트"),
    "max_length": ("Max length (tokens)", "최대 길이 (토큰)"), "validation_share": ("Validation share", "검증 비율"),
    "subset_share": ("Use this share of rows", "사용할 행 비율"), "train_on": ("Train on", "학습 대상"),
    "packing": ("Packing", "패킹"), "clean_text": ("Clean text", "텍스트 정리"),
    "drop_duplicates": ("Drop duplicates", "중복 제거"), "min_chars": ("Min answer characters", "최소 답변 글자 수"),
    "max_chars": ("Max characters", "최대 글자 수"), "korean_stopwords": ("Remove Korean stopwords", "한국어 불용어 제거"),
    "shuffle": ("Shuffle", "섞기"),
    "epochs": ("Epochs", "에포크"), "max_steps": ("Max steps (0 = use epochs)", "최대 단계 (0 = 에포크 사용)"),
    "batch_size": ("Batch size", "배치 크기"), "grad_accum": ("Gradient accumulation", "그래디언트 누적"),
    "learning_rate": ("Learning rate", "학습률"), "scheduler": ("LR schedule", "학습률 스케줄"),
    "warmup_ratio": ("Warmup share", "워밍업 비율"), "weight_decay": ("Weight decay", "가중치 감쇠"),
    "max_grad_norm": ("Max gradient norm", "최대 그래디언트 노름"), "optimizer": ("Optimizer", "옵티마이저"),
    "gradient_checkpointing": ("Gradient checkpointing", "그래디언트 체크포인팅"),
    "precision": ("Precision", "정밀도"), "seed": ("Seed", "시드"), "logging_steps": ("Log every N steps", "N단계마다 기록"),
    "eval_steps": ("Evaluate every N steps", "N단계마다 평가"), "save_steps": ("Checkpoint every N steps", "N단계마다 체크포인트"),
    "oom_retry": ("Retry smaller when memory runs out", "메모리 부족 시 줄여서 재시도"),
    "probe_prompts": ("Probe questions (one per line)", "확인용 질문 (한 줄에 하나)"),
    "run_name": ("Run name", "실행 이름"), "report_to": ("Also log to", "추가 기록 대상"),
}

TABLES = {"en": EN, "ko": KO}


def t(key: str, lang: str = "en", **values) -> str:
    """The text for `key` in `lang` (English when missing), with {placeholders} filled."""
    text = TABLES.get(lang, EN).get(key) or EN.get(key, key)
    return text.format(**values) if values else text


def localize(text: str, lang: str = "en", key: str | None = None, params: dict | None = None) -> str:
    """A status line from core/ in `lang`: `t(key, lang, **params)` when `lang`'s table has the key, else `text`.

    `key`/`params` default to those of a core.messages.Msg (what RunSummary and core's
    progress callbacks hand over); plain text, e.g. from an event log written before
    messages had keys, comes back as it is, in English.
    """
    key = key if key is not None else getattr(text, "key", None)
    params = params if params is not None else getattr(text, "params", None) or {}
    table = TABLES.get(lang)
    # English keeps the text as it was written (the catalog may have changed since)
    if key and table is not None and key in table and (lang != "en" or not text):
        try:
            return table[key].format(**params)
        except (KeyError, IndexError, ValueError):  # params of an older or newer log that don't fit
            pass
    return str(text or "")


def field_label(name: str, lang: str = "en") -> str:
    """The form label of a RunConfig field."""
    en, ko = FIELD_LABELS.get(name, (name.replace("_", " ").capitalize(),) * 2)
    return ko if lang == "ko" else en
