"""Where rows come from: built-in sets, local/uploaded files and folders, the Hub.

Everything is read with `datasets` (`load_dataset` with the json/csv/parquet/
text builders for files, the same call with config, split and token for Hub
ids and data folders, `load_from_disk` for saved datasets). Hand-written
reading happens only after a failure, to tell the user *where* the file is
broken (the line of a bad JSON record) and *what* to do; every failure a user
can cause becomes a DataError.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from core.config import RunConfig
from core.errors import DataError

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTINS = {"builtin:demo": BUILTIN_DIR / "demo_train.jsonl"}
FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet",
                 ".txt": "text"}
UNSUPPORTED = {".xlsx": "an Excel workbook", ".xls": "an Excel workbook", ".py": "a dataset loading script",
               ".zip": "a ZIP archive", ".gz": "a compressed file", ".arrow": "an Arrow file", ".pdf": "a PDF"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HEAD_BYTES = 1 << 16


def load_rows(config: RunConfig, token: str | None = None) -> list[dict]:
    """All rows of the configured source, as plain dicts."""
    source = config.dataset.strip()
    split = config.dataset_split.strip() or "train"
    if not source:
        raise DataError("No dataset is chosen. Pick builtin:demo, upload a file, or enter a Hub dataset id.")
    if source.startswith("builtin:"):
        if source not in BUILTINS:
            raise DataError(f"Unknown built-in dataset '{source}'. Available: {', '.join(BUILTINS)}.")
        return _load_file(BUILTINS[source], "train")
    path = Path(source).expanduser()
    if path.is_file():
        return _load_file(path, split)
    if path.is_dir():
        return _load_folder(path, config, token)
    if path.suffix.lower() in {**FILE_BUILDERS, **UNSUPPORTED} or source.startswith((".", "/", "~")) \
            or source.count("/") > 1:
        raise DataError(f"The file or folder '{source}' does not exist. Check the path, or upload the file again.")
    if not HUB_ID.match(source):
        raise DataError(f"'{source}' is neither a file here nor a Hub dataset id. "
                        "A Hub id looks like owner/name, e.g. beomi/KoAlpaca-v1.1a.")
    return _rows(_load_by_id(source, config, token), source, split)


# --- files -------------------------------------------------------------------------
def _load_file(path: Path, split: str) -> list[dict]:
    import datasets

    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED or suffix not in FILE_BUILDERS:
        kind = UNSUPPORTED.get(suffix, f"a '{suffix or 'no extension'}' file")
        raise DataError(f"{path.name} is {kind}, which TuneLab does not read. Save the data as JSON, JSONL, CSV "
                        "(UTF-8), TSV, Parquet or TXT; from Excel use 'Save As' > 'CSV UTF-8'.")
    builder = FILE_BUILDERS[suffix]
    head = _check_bytes(path, builder)
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    if builder == "csv":
        _check_csv_head(path, head, kwargs.get("delimiter", ","))
    if builder == "json":
        _check_json_nulls(path, head)
    if builder == "text":
        # Blank lines separate documents/conversations; without them every line is one.
        kwargs["sample_by"] = "paragraph" if b"\n\n" in head.replace(b"\r\n", b"\n") else "line"
    try:
        ds = datasets.load_dataset(builder, data_files=str(path), split=_file_split(split), **kwargs)
        if suffix == ".json" and len(ds) == 1:
            ds = _records_field(ds, path, split) or ds
    except DataError:
        raise
    except Exception as err:  # datasets raises many kinds; the user needs one sentence
        raise DataError(_file_error(path, builder, err)) from None
    return _rows(ds, path.name, split)


def _file_split(split: str) -> str:
    # A file is one split, called 'train'; keep a slice such as [:10%] or [:500].
    return "train" + split[split.index("["):] if "[" in split else "train"


def _records_field(ds, path: Path, split: str):
    """For {"data": [{...}, ...]}-style JSON, reload the list of records under its key."""
    import datasets

    row = ds[0]
    keys = [k for k, v in row.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    # One conversation ({"messages": [{"role": ...}]}) has the same shape: leave it alone.
    if len(keys) != 1 or any(t in row[keys[0]][0] for t in ("role", "from")):
        return None
    return datasets.load_dataset("json", data_files=str(path), field=keys[0], split=_file_split(split))


def _check_bytes(path: Path, builder: str) -> bytes:
    """The file's first bytes, after refusing empty, binary and non-UTF-8 files with a reason."""
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if not head.strip() or head.strip() == b"\xef\xbb\xbf":
        raise DataError(f"{path.name} is empty. Pick a file with at least a few rows.")
    if builder == "parquet":
        if not head.startswith(b"PAR1"):
            raise DataError(f"{path.name} is not a Parquet file (it may be renamed). Export it again as Parquet, "
                            "or save it as CSV/JSONL.")
        return head
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path.name} is saved as UTF-16 ('Unicode text'). Save it again as UTF-8 "
                        "(in Excel: 'CSV UTF-8'; in Notepad: encoding 'UTF-8').")
    if head.startswith(b"PK\x03\x04") or b"\x00" in head:
        raise DataError(f"{path.name} looks like a binary file (an Excel workbook, a ZIP, an image…), not text. "
                        "Save the data as UTF-8 JSON, JSONL, CSV or TXT.")
    _check_utf8(path, head)
    return head


def _check_csv_head(path: Path, head: bytes, delimiter: str) -> None:
    """Refuse rows with more values than the header: pandas would silently turn the extra
    leading values into an index and shift every column."""
    text = head[: head.rfind(b"\n") + 1].decode("utf-8-sig", errors="replace")
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        rows = rows[:-1] if len(head) == _HEAD_BYTES else rows  # the last record may be cut by the read size
    except csv.Error:
        return  # pandas will report it with its own words
    header = next((r for r in rows if r), None)
    for number, row in enumerate(rows[1:], 2):
        if header and len(row) > len(header):
            sep = "tab" if delimiter == "\t" else "comma"
            raise DataError(f"{path.name}, row {number} (the header is row 1), has {len(row)} values but the header has {len(header)} "
                            f"names. Put quotes around values that contain a {sep}, or fix that line.")


def _check_json_nulls(path: Path, head: bytes) -> None:
    """Refuse records that are just `null`: pyarrow's JSON reader (used by datasets)
    crashes the whole process, not with an exception, when a block starts with one."""
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        try:
            items = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError:
            return  # not valid JSON: datasets fails cleanly and _json_problem explains
        position = next((i for i, x in enumerate(items, 1) if x is None), 0) if isinstance(items, list) else 0
        if position:
            raise DataError(f"{path.name}: item {position} of the list is null, not a {{...}} record. Remove it.")
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip() == b"null":
                raise DataError(f"{path.name}, line {number}, is null, not a {{...}} record. Delete that line.")


def _check_utf8(path: Path, head: bytes) -> None:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start >= len(head) - 3:  # a multi-byte character cut by the read size is fine
            return
        raise DataError(_encoding_message(path.name, head)) from None


def _encoding_message(name: str, sample: bytes) -> str:
    try:
        sample.decode("cp949")
        guess = "Korean Windows encoding (CP949/EUC-KR)"
    except UnicodeDecodeError:
        guess = "an encoding other than UTF-8"
    return (f"{name} is not UTF-8 text: it looks like {guess}. Open it and save it as UTF-8 "
            "(Excel: 'Save As' > 'CSV UTF-8'; Notepad: encoding 'UTF-8'), then load it again.")


def _file_error(path: Path, builder: str, err: Exception) -> str:
    """Why datasets could not read a file, found by looking where it broke."""
    cause = _innermost(err)
    if isinstance(cause, UnicodeDecodeError):
        return _encoding_message(path.name, cause.object[max(0, cause.start - 64): cause.end + 64])
    if builder == "json":
        where = _json_problem(path)
        if where:
            return where
    text = _first_line(cause)
    if builder == "csv" and "fields" in text:
        sep = "tabs" if path.suffix.lower() == ".tsv" else "commas"
        return (f"{path.name}: {text}. A row has more values than the header: put quotes around values that "
                f"contain {sep}, or fix that line.")
    if "corresponds to no data" in text:
        return f"{path.name} has no rows. Add some data below the header, or pick another file."
    return (f"{path.name} could not be read as {builder.upper()}: {text}. Check that every row is complete "
            "and uses the same columns.")


def _json_problem(path: Path) -> str:
    """The first line that is not a JSON record, in plain words ('' when none is found)."""
    try:
        if path.stat().st_size > 200 << 20:
            return ""
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return ""
    try:
        document = json.loads(text)
    except ValueError:
        pass
    else:  # one valid JSON document that is not a table of records
        inner = document[0] if isinstance(document, list) and document else document
        if isinstance(inner, dict):
            return ""
        kind = {str: "text string", int: "number", float: "number", bool: "true/false value", list: "list"}.get(
            type(inner), "null value")
        what = f"a list of {kind}s" if isinstance(document, list) else f"a single {kind}"
        return (f"{path.name} holds {what}, not records. Use a list of {{...}} objects, "
                "or one {...} object per line (JSONL).")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            return (f"{path.name}, line {number}, is not valid JSON ({err.msg} at character {err.colno}). "
                    "Fix or delete that line: in a JSONL file every line is one complete {...} record.")
        if not isinstance(record, dict):
            return (f"{path.name}, line {number}, holds a {type(record).__name__}, not a {{...}} record. "
                    "Every line must be one JSON object with named fields.")
    return ""


# --- folders and the Hub ----------------------------------------------------------------
def _load_folder(path: Path, config: RunConfig, token: str | None) -> list[dict]:
    split = config.dataset_split.strip() or "train"
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return _rows(_load_saved(path, split), path.name, split)
    return _rows(_load_by_id(str(path), config, token), path.name, split)


def _load_saved(path: Path, split: str):
    """A folder written by `save_to_disk`, with the split and slice applied."""
    import datasets
    from datasets.arrow_reader import ReadInstruction

    try:
        loaded = datasets.load_from_disk(str(path))
        name = re.split(r"[\[+]", split, maxsplit=1)[0].strip()
        if isinstance(loaded, datasets.DatasetDict):
            if name not in loaded:
                raise DataError(f"'{name}' is not a split of {path.name}. It has: {', '.join(loaded)}. "
                                "Set 'dataset_split' to one of them.")
            loaded = loaded[name]
        parts = ReadInstruction.from_spec(split).to_absolute({name: len(loaded)})
        return datasets.concatenate_datasets([loaded.select(range(p.from_, p.to)) for p in parts])
    except DataError:
        raise
    except Exception as err:
        raise DataError(_dataset_error(path.name, split, "", err)) from None


def _load_by_id(source: str, config: RunConfig, token: str | None):
    """`load_dataset` for a Hub id or a local data folder, with config, split (slices allowed) and token."""
    import datasets

    split = config.dataset_split.strip() or "train"
    try:
        return datasets.load_dataset(source, config.dataset_config.strip() or None, split=split, token=token or None)
    except Exception as err:
        raise DataError(_dataset_error(source, split, config.dataset_config, err)) from None


def _dataset_error(source: str, split: str, subset: str, err: Exception) -> str:
    text = " ".join(str(err).split())[:500]
    kind = type(err).__name__
    low = text.lower()
    if "gated" in low or " 401" in low or " 403" in low or "unauthorized" in low:
        return (f"The dataset '{source}' is private or gated. Accept its terms on huggingface.co and paste a "
                "Hugging Face token that has access.")
    if kind == "DatasetNotFoundError" or "doesn't exist on the hub" in low:
        return (f"There is no dataset '{source}' on the Hugging Face Hub (or it is private). Check the id: "
                "owner/name, as in the dataset's web address. For a private dataset, paste a token with access.")
    if "couldn't reach" in low or kind in ("ConnectionError", "OfflineModeIsEnabled"):
        return (f"Could not reach the Hugging Face Hub to load '{source}' (no internet connection here?). "
                "Connect this machine, or download the data and upload it as a file.")
    if "unknown split" in low:
        found = re.search(r"one of (\[.*?\])", text)
        return (f"'{split}' is not a split of '{source}'." + (f" It has: {found.group(1)}." if found else "")
                + " Set 'dataset_split' to one of them (e.g. train).")
    if "builderconfig" in low or "config name is missing" in low:
        found = re.search(r"(?:available|among the available configs):? (\[.*?\])", text, re.I)
        what = f"has no configuration '{subset}'" if subset else "has several configurations: pick one"
        return (f"'{source}' {what}." + (f" Available: {found.group(1)}." if found else "")
                + " Set 'dataset_config' to one of them.")
    if "instruction" in low and ("unrecognized" in low or "format" in low) or "bad split" in low:
        return (f"The split '{split}' is not understood. Write a split name with an optional slice: train, "
                "test, train[:10%], train[:500], train[100:200].")
    if "scripts are no longer supported" in low:
        return (f"'{source}' is an old script-based dataset, which the installed datasets library no longer runs. "
                "Use a version with data files (Parquet/JSON), or download the data and upload it as a file.")
    if kind in ("DataFilesNotFoundError", "FileNotFoundError", "EmptyDatasetError") or "no (supported) data" in low:
        return (f"No data files (JSON, JSONL, CSV, Parquet, TXT) were found in '{source}'. "
                "Check the folder or dataset id and its 'dataset_config'.")
    if kind == "HFValidationError":
        return f"'{source}' is neither a file here nor a valid Hub dataset id (owner/name)."
    return f"Could not load '{source}': {_first_line(_innermost(err))}. Check the id, configuration and split."


# --- helpers -------------------------------------------------------------------------
def _rows(ds, name: str, split: str) -> list[dict]:
    if len(ds) == 0:
        raise DataError(f"{name} has no rows{f' in {split}' if split != 'train' else ''}. "
                        "Pick a file or split that holds some data.")
    try:
        return ds.to_list()
    except UnicodeDecodeError as err:  # pyarrow keeps invalid UTF-8 in JSON strings until they are read
        raise DataError(_encoding_message(name, err.object[max(0, err.start - 64): err.end + 64])) from None


def _innermost(err: BaseException) -> BaseException:
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        nxt = err.__cause__ or err.__context__
        if nxt is None:
            break
        err = nxt
    return err


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]
