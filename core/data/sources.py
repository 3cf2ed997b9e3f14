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
from core.messages import Msg, msg

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTINS = {"builtin:demo": BUILTIN_DIR / "demo_train.jsonl"}
FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet",
                 ".txt": "text"}
# File types people often try, named in the message that refuses them.
UNSUPPORTED = {".xlsx": msg("data.kind.excel"), ".xls": msg("data.kind.excel"), ".py": msg("data.kind.script"),
               ".zip": msg("data.kind.zip"), ".gz": msg("data.kind.compressed"), ".arrow": msg("data.kind.arrow"),
               ".pdf": msg("data.kind.pdf")}
# What a JSON document holds instead of records, for the message that says so.
JSON_KINDS = {str: msg("data.json_kind.text"), int: msg("data.json_kind.number"), float: msg("data.json_kind.number"),
              bool: msg("data.json_kind.bool"), list: msg("data.json_kind.list")}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HEAD_BYTES = 1 << 16


def load_rows(config: RunConfig, token: str | None = None) -> list[dict]:
    """All rows of the configured source, as plain dicts."""
    source = config.dataset.strip()
    split = config.dataset_split.strip() or "train"
    if not source:
        raise DataError(msg("data.no_dataset"))
    if source.startswith("builtin:"):
        if source not in BUILTINS:
            raise DataError(msg("data.unknown_builtin", source=source, available=", ".join(BUILTINS)))
        return _load_file(BUILTINS[source], "train")
    path = Path(source).expanduser()
    if path.is_file():
        return _load_file(path, split)
    if path.is_dir():
        return _load_folder(path, config, token)
    if path.suffix.lower() in {**FILE_BUILDERS, **UNSUPPORTED} or source.startswith((".", "/", "~")) \
            or source.count("/") > 1:
        raise DataError(msg("data.path_missing", source=source))
    if not HUB_ID.match(source):
        raise DataError(msg("data.not_a_source", source=source))
    return _rows(_load_by_id(source, config, token), source, split)


# --- files -------------------------------------------------------------------------
def _load_file(path: Path, split: str) -> list[dict]:
    import datasets  # noqa: PLC0415 - datasets takes ~2 s to import; only needed when a file is read

    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED or suffix not in FILE_BUILDERS:
        kind = UNSUPPORTED.get(suffix) or (msg("data.kind.other", suffix=suffix) if suffix else msg("data.kind.no_extension"))
        raise DataError(msg("data.unsupported_file", name=path.name, kind=kind))
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
    import datasets  # noqa: PLC0415 - datasets takes ~2 s to import; only needed when a file is read

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
        raise DataError(msg("data.file_empty", name=path.name))
    if builder == "parquet":
        if not head.startswith(b"PAR1"):
            raise DataError(msg("data.not_parquet", name=path.name))
        return head
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(msg("data.utf16", name=path.name))
    if head.startswith(b"PK\x03\x04") or b"\x00" in head:
        raise DataError(msg("data.binary", name=path.name))
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
            sep = msg("data.sep.tab") if delimiter == "\t" else msg("data.sep.comma")
            raise DataError(msg("data.csv_extra_values", name=path.name, row=number, values=len(row), names=len(header),
                                sep=sep))


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
            raise DataError(msg("data.json_null_item", name=path.name, position=position))
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip() == b"null":
                raise DataError(msg("data.json_null_line", name=path.name, line=number))


def _check_utf8(path: Path, head: bytes) -> None:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start >= len(head) - 3:  # a multi-byte character cut by the read size is fine
            return
        raise DataError(_encoding_message(path.name, head)) from None


def _encoding_message(name: str, sample: bytes) -> Msg:
    try:
        sample.decode("cp949")
        guess = msg("data.enc.cp949")
    except UnicodeDecodeError:
        guess = msg("data.enc.other")
    return msg("data.not_utf8", name=name, guess=guess)


def _file_error(path: Path, builder: str, err: Exception) -> Msg:
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
        sep = msg("data.sep.tabs") if path.suffix.lower() == ".tsv" else msg("data.sep.commas")
        return msg("data.csv_fields", name=path.name, error=text, sep=sep)
    if "corresponds to no data" in text:
        return msg("data.file_no_rows", name=path.name)
    return msg("data.file_unreadable", name=path.name, builder=builder.upper(), error=text)


def _json_problem(path: Path) -> Msg | str:
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
        kind = JSON_KINDS.get(type(inner)) or msg("data.json_kind.null")
        what = msg("data.json_list_of", kind=kind) if isinstance(document, list) else msg("data.json_single", kind=kind)
        return msg("data.json_not_records", name=path.name, what=what)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            return msg("data.json_bad_line", name=path.name, line=number, error=err.msg, column=err.colno)
        if not isinstance(record, dict):
            return msg("data.json_line_not_record", name=path.name, line=number, type=type(record).__name__)
    return ""


# --- folders and the Hub ----------------------------------------------------------------
def _load_folder(path: Path, config: RunConfig, token: str | None) -> list[dict]:
    split = config.dataset_split.strip() or "train"
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return _rows(_load_saved(path, split), path.name, split)
    return _rows(_load_by_id(str(path), config, token), path.name, split)


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
    try:
        return datasets.load_dataset(source, config.dataset_config.strip() or None, split=split, token=token or None)
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
    if "unknown split" in low:
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
    return msg("data.load_failed", source=source, error=_first_line(_innermost(err)))


def _split_error(source: str, split: str, text: str) -> Msg:
    """An unknown split, with the splits the library listed (when it did)."""
    found = re.search(r"one of (\[.*?\])", text)
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
def _rows(ds, name: str, split: str) -> list[dict]:
    if len(ds) == 0:
        raise DataError(msg("data.no_rows_in_split", name=name, split=split) if split != "train"
                        else msg("data.no_rows", name=name))
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
