"""Where rows come from: built-in sets, local/uploaded files, the Hub.

Files are read with `datasets.load_dataset` (json/csv/parquet/text builders);
Hub ids go through the same function with config, split and token. Each
failure a user can cause becomes a DataError saying what to do.
"""
from __future__ import annotations

from pathlib import Path

from core.config import RunConfig
from core.formats import DataError

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTINS = {"builtin:demo": BUILTIN_DIR / "demo_train.jsonl"}
FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".txt": "text"}


def load_rows(config: RunConfig, token: str | None = None) -> list[dict]:
    source = config.dataset.strip()
    if source in BUILTINS:
        return _load_file(BUILTINS[source], "train")
    if source.startswith("builtin:"):
        raise DataError(f"Unknown built-in dataset '{source}'. Available: {', '.join(BUILTINS)}.")
    path = Path(source).expanduser()
    if path.suffix.lower() in FILE_BUILDERS or path.exists():
        if not path.exists():
            raise DataError(f"The file {path} does not exist. Check the path or upload it again.")
        return _load_file(path, config.dataset_split or "train")
    return _load_hub(source, config, token)


def _load_file(path: Path, split: str) -> list[dict]:
    import datasets

    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path.name}: unsupported file type. Use JSON, JSONL, CSV, TSV, Parquet or TXT.")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty. Pick a file with at least a few rows.")
    _check_text_encoding(path, builder)
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    if builder == "text":
        kwargs["sample_by"] = "paragraph"
    try:
        ds = datasets.load_dataset(builder, data_files=str(path), split=_base_split(split), **kwargs)
    except Exception as err:  # datasets raises many kinds; the user needs one message
        raise DataError(f"{path.name} could not be read as {builder.upper()}: {_first_line(err)}. "
                        "Check that every line/row is complete and uses the same columns.") from None
    return ds.to_list()


def _base_split(split: str) -> str:
    # Files have a single split called 'train'; keep a slice like train[:10%].
    return "train" + split[split.index("["):] if "[" in split else "train"


def _check_text_encoding(path: Path, builder: str) -> None:
    if builder == "parquet":
        return
    head = path.read_bytes()[:65536]
    if b"\x00" in head:
        raise DataError(f"{path.name} looks like a binary file, not text. Save it as UTF-8 JSON, JSONL, CSV or TXT.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # a cut multi-byte character at the end is fine
            raise DataError(f"{path.name} is not UTF-8 text (it may be CP949/EUC-KR). "
                            "Open it and save it as 'UTF-8', then try again.") from None


def _load_hub(source: str, config: RunConfig, token: str | None) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(source, config.dataset_config or None,
                                   split=config.dataset_split or "train", token=token)
    except Exception as err:
        text = _first_line(err)
        if "401" in text or "gated" in text.lower():
            raise DataError(f"The dataset '{source}' is private or gated: paste a Hugging Face token with access.") from None
        raise DataError(f"Could not load the Hub dataset '{source}': {text}. Check the id, config and split, "
                        "and that this machine can reach huggingface.co.") from None
    return ds.to_list()


def _first_line(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]
