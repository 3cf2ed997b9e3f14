"""Where rows come from: built-in sets, local/uploaded files and folders, the Hub.

Everything is read with `datasets` (`load_dataset` with the json/csv/parquet/
text builders for files, the same call with config, split and token for Hub
ids and data folders, `load_from_disk` for saved datasets). Hand-written
reading happens only after a failure, to tell the user *where* the file is
broken (the line of a bad JSON record) and *what* to do; every failure a user
can cause becomes a DataError. One local file is read by core/data/readers.py.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

from core.config import RunConfig
from core.data.readers import FILE_BUILDERS, UNSUPPORTED, cached_file, first_line, innermost, load_file, rows_of
from core.errors import DataError
from core.messages import Msg, msg

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTINS = {"builtin:demo": BUILTIN_DIR / "demo_train.jsonl",
            "builtin:demo-preferences": BUILTIN_DIR / "demo_preferences.jsonl"}  # pairs for DPO (core/data/preference.py)
_HEAD_SLICE = re.compile(r"^\s*([\w.-]+)\s*\[\s*:\s*(\d+)\s*\]\s*$")  # 'train[:100]': the first N rows
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def load_rows(config: RunConfig, token: str | None = None) -> list[dict]:
    """All rows of the configured source, as plain dicts."""
    source = config.dataset.strip()
    split = config.dataset_split.strip() or "train"
    if not source:
        raise DataError(msg("data.no_dataset"))
    if source.startswith("builtin:"):
        if source not in BUILTINS:
            raise DataError(msg("data.unknown_builtin", source=source, available=", ".join(BUILTINS)))
        return load_file(BUILTINS[source], "train")
    path = Path(source).expanduser()
    if path.is_file():
        return cached_file(path, split)
    if path.is_dir():
        return _load_folder(path, config, token)
    if path.suffix.lower() in {**FILE_BUILDERS, **UNSUPPORTED} or source.startswith((".", "/", "~")) \
            or source.count("/") > 1:
        raise DataError(msg("data.path_missing", source=source))
    if not HUB_ID.match(source):
        raise DataError(msg("data.not_a_source", source=source))
    return rows_of(_load_by_id(source, config, token), source, split)


def _load_folder(path: Path, config: RunConfig, token: str | None) -> list[dict]:
    split = config.dataset_split.strip() or "train"
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return rows_of(_load_saved(path, split), path.name, split)
    return rows_of(_load_by_id(str(path), config, token), path.name, split)


def _load_saved(path: Path, split: str):
    """A folder written by `save_to_disk`, with the split and slice applied."""
    import datasets  # noqa: PLC0415 - datasets takes ~2 s to import; only needed when a folder is read
    from datasets.arrow_reader import ReadInstruction  # noqa: PLC0415 - part of datasets (see above)

    try:
        loaded = datasets.load_from_disk(str(path))
        name = re.split(r"[\[+]", split, maxsplit=1)[0].strip()
        if isinstance(loaded, datasets.DatasetDict):
            if name not in loaded:
                raise DataError(msg("data.saved_split_unknown", split=name, name=path.name, splits=", ".join(loaded)))
            loaded = loaded[name]
        parts = ReadInstruction.from_spec(split).to_absolute({name: len(loaded)})
        return datasets.concatenate_datasets([loaded.select(range(p.from_, p.to)) for p in parts])
    except DataError:
        raise
    except Exception as err:
        raise DataError(_dataset_error(path.name, split, "", err)) from None


def _load_by_id(source: str, config: RunConfig, token: str | None):
    """`load_dataset` for a Hub id or a local data folder, with config, split (slices allowed) and token."""
    import datasets  # noqa: PLC0415 - datasets takes ~2 s to import; only needed when a dataset is loaded

    split = config.dataset_split.strip() or "train"
    subset = config.dataset_config.strip() or None
    head = _HEAD_SLICE.match(split)
    try:
        if head:  # 'train[:100]': stream the first rows instead of downloading the whole split
            rows = datasets.load_dataset(source, subset, split=head.group(1), token=token or None, streaming=True)
            return list(itertools.islice(rows, int(head.group(2))))
        return datasets.load_dataset(source, subset, split=split, token=token or None)
    except Exception as err:
        raise DataError(_dataset_error(source, split, config.dataset_config, err)) from None


def _dataset_error(source: str, split: str, subset: str, err: Exception) -> Msg:
    text = " ".join(str(err).split())[:500]
    kind = type(err).__name__
    low = text.lower()
    if "gated" in low or " 401" in low or " 403" in low or "unauthorized" in low:
        return msg("data.hub_gated", source=source)
    if kind == "DatasetNotFoundError" or "doesn't exist on the hub" in low:
        return msg("data.hub_not_found", source=source)
    if "couldn't reach" in low or kind in ("ConnectionError", "OfflineModeIsEnabled"):
        return msg("data.hub_offline", source=source)
    if "unknown split" in low or "bad split" in low and "available splits" in low:  # the second from streaming
        return _split_error(source, split, text)
    if "builderconfig" in low or "config name is missing" in low:
        return _config_error(source, subset, text)
    if "instruction" in low and ("unrecognized" in low or "format" in low) or "bad split" in low:
        return msg("data.bad_split", split=split)
    if "scripts are no longer supported" in low:
        return msg("data.hub_script", source=source)
    if kind in ("DataFilesNotFoundError", "FileNotFoundError", "EmptyDatasetError") or "no (supported) data" in low:
        return msg("data.no_data_files", source=source)
    if kind == "HFValidationError":
        return msg("data.hub_bad_id", source=source)
    return msg("data.load_failed", source=source, error=first_line(innermost(err)))


def _split_error(source: str, split: str, text: str) -> Msg:
    """An unknown split, with the splits the library listed (when it did)."""
    found = re.search(r"(?:one of|available splits:) (\[.*?\])", text, re.I)
    if found:
        return msg("data.split_unknown_listed", split=split, source=source, splits=found.group(1))
    return msg("data.split_unknown", split=split, source=source)


def _config_error(source: str, subset: str, text: str) -> Msg:
    """A configuration that does not exist or is missing, with the ones the library listed (when it did)."""
    found = re.search(r"(?:available|among the available configs):? (\[.*?\])", text, re.I)
    if subset:
        if found:
            return msg("data.config_unknown_listed", source=source, subset=subset, configs=found.group(1))
        return msg("data.config_unknown", source=source, subset=subset)
    if found:
        return msg("data.config_missing_listed", source=source, configs=found.group(1))
    return msg("data.config_missing", source=source)


# --- helpers -------------------------------------------------------------------------
