"""Reading one local file into rows: JSON/JSONL, CSV/TSV, Parquet and text, through `datasets`.

The file-level half of core/data/sources.py: size and row limits are checked
before anything is parsed (core/data/limits.py), and when `datasets` fails the
file is read by hand only to tell the user where it is broken (the line of a bad
JSON record, the encoding, the delimiter) and what to do.
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from core.data.limits import (
    BadLine,
    DataLimits,
    check_file_size,
    check_row_count,
    limits,
    read_json_document,
    read_json_file,
    sliced_range,
)
from core.errors import DataError
from core.messages import Msg, msg

FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet",
                 ".txt": "text"}
# File types people often try, named in the message that refuses them.
UNSUPPORTED = {".xlsx": msg("data.kind.excel"), ".xls": msg("data.kind.excel"), ".py": msg("data.kind.script"),
               ".zip": msg("data.kind.zip"), ".gz": msg("data.kind.compressed"), ".arrow": msg("data.kind.arrow"),
               ".pdf": msg("data.kind.pdf")}
# What a JSON document holds instead of records, for the message that says so.
JSON_KINDS = {str: msg("data.json_kind.text"), int: msg("data.json_kind.number"), float: msg("data.json_kind.number"),
              bool: msg("data.json_kind.bool"), list: msg("data.json_kind.list")}
_HEAD_BYTES = 1 << 16


# --- files -------------------------------------------------------------------------
_last_read: dict = {}  # the one file read last: {"key": (path, size, mtime, split, limits), "rows": [...], "at": t}
_CACHE_SECONDS = 120.0


def cached_file(path: Path, split: str) -> list[dict]:
    """The rows of a file, read once for a data check (preview and pre-flight both ask) while it is unchanged."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, split, limits())
    if _last_read.get("key") == key and time.monotonic() - _last_read["at"] < _CACHE_SECONDS:
        return list(_last_read["rows"])
    _last_read.clear()  # the old rows go before the new ones are read: one copy in memory
    rows = load_file(path, split)
    _last_read.update(key=key, rows=rows, at=time.monotonic())
    return list(rows)


def load_file(path: Path, split: str) -> list[dict]:
    import datasets  # noqa: PLC0415 - datasets takes ~2 s to import; only needed when a file is read

    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED or suffix not in FILE_BUILDERS:
        kind = UNSUPPORTED.get(suffix) or (msg("data.kind.other", suffix=suffix) if suffix else msg("data.kind.no_extension"))
        raise DataError(msg("data.unsupported_file", name=path.name, kind=kind))
    builder = FILE_BUILDERS[suffix]
    lim = limits()
    check_file_size(path, lim)
    head = _check_bytes(path, builder)
    if builder == "json":
        return _load_json(path, split, lim)
    if builder == "parquet":
        _check_parquet_rows(path, split, lim)  # from the footer: a million rows can hide in 5 KB
    # CSV/TXT become an Arrow table first (compact); _rows counts it before it becomes Python dicts
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    if builder == "csv":
        _check_csv_head(path, head, kwargs.get("delimiter", ","))
    if builder == "text":
        # Blank lines separate documents/conversations; without them every line is one.
        kwargs["sample_by"] = "paragraph" if b"\n\n" in head.replace(b"\r\n", b"\n") else "line"
    try:
        ds = datasets.load_dataset(builder, data_files=str(path), split=_file_split(split), **kwargs)
    except DataError:
        raise
    except Exception as err:  # datasets raises many kinds; the user needs one sentence
        raise DataError(_file_error(path, builder, err)) from None
    return rows_of(ds, path.name, split, lim)


def _file_split(split: str) -> str:
    # A file is one split, called 'train'; keep a slice such as [:10%] or [:500].
    return "train" + split[split.index("["):] if "[" in split else "train"


def _check_parquet_rows(path: Path, split: str, lim: DataLimits) -> None:
    """Refuse a Parquet file with more rows than the limit (after the slice) from its footer alone."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - comes with datasets (slow import): Parquet files only

    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as err:  # a broken footer: datasets would fail the same way; say it once
        raise DataError(msg("data.file_unreadable", name=path.name, builder="PARQUET", error=first_line(err))) from None
    check_row_count(sum(b - a for a, b in sliced_range(split, rows)), path.name, lim)


def _load_json(path: Path, split: str, lim: DataLimits) -> list[dict]:
    """JSON and JSONL read by Python's own parser within the limits (pyarrow's reader crashes on some files)."""
    try:
        rows = read_json_file(path, split, lim)
        if rows is None:  # one document: a list of records, {"data": [...]}, or a single record
            rows = _document_rows(read_json_document(path, lim), path, split, lim)
        elif path.suffix.lower() == ".json" and len(rows) == 1:
            rows = _records_field(rows[0], path, split, lim) or rows
    except BadLine as bad:
        raise DataError(msg("data.json_bad_line", name=path.name, line=bad.line, error=bad.error.msg,
                            column=bad.error.colno)) from None
    except UnicodeDecodeError as err:
        raise DataError(_encoding_message(path.name, err.object[max(0, err.start - 64): err.end + 64])) from None
    except ValueError as err:
        if isinstance(err, DataError):
            raise
        raise DataError(_json_problem(path) or msg("data.file_unreadable", name=path.name, builder="JSON",
                                                   error=first_line(err))) from None
    if not rows:
        raise DataError(msg("data.no_rows_in_split", name=path.name, split=split) if split != "train"
                        else msg("data.no_rows", name=path.name))
    return rows


def _document_rows(document, path: Path, split: str, lim: DataLimits) -> list[dict]:
    """The records of a whole JSON document, sliced; a plain sentence when it holds something else."""
    if isinstance(document, dict):
        return _records_field(document, path, split, lim) or [document]
    items = document if isinstance(document, list) else [document]
    position = next((i for i, x in enumerate(items, 1) if x is None), 0) if isinstance(document, list) else 0
    if position:
        raise DataError(msg("data.json_null_item", name=path.name, position=position))
    inner = items[0] if items else None
    if items and not isinstance(inner, dict) or not isinstance(document, list):
        kind = JSON_KINDS.get(type(inner)) or msg("data.json_kind.null")
        what = msg("data.json_list_of", kind=kind) if isinstance(document, list) else msg("data.json_single", kind=kind)
        raise DataError(msg("data.json_not_records", name=path.name, what=what))
    return _sliced(items, split, path, lim)


def _records_field(row: dict, path: Path, split: str, lim: DataLimits) -> list[dict] | None:
    """For {"data": [{...}, ...]}-style JSON, the list of records under its key (None for anything else)."""
    keys = [k for k, v in row.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    # One conversation ({"messages": [{"role": ...}]}) has the same shape: leave it alone.
    if len(keys) != 1 or any(t in row[keys[0]][0] for t in ("role", "from")):
        return None
    return _sliced(row[keys[0]], split, path, lim)


def _sliced(items: list, split: str, path: Path, lim: DataLimits) -> list:
    chosen = [x for a, b in sliced_range(split, len(items)) for x in items[a:b]]
    check_row_count(len(chosen), path.name, lim)
    return chosen


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
    cause = innermost(err)
    if isinstance(cause, UnicodeDecodeError):
        return _encoding_message(path.name, cause.object[max(0, cause.start - 64): cause.end + 64])
    if builder == "json":
        where = _json_problem(path)
        if where:
            return where
    text = first_line(cause)
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
    except (ValueError, RecursionError):
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
        except RecursionError:
            return ""  # too deep to say more; the limits module refuses such rows before this
        except ValueError as err:
            return msg("data.json_bad_line", name=path.name, line=number, error=err.msg, column=err.colno)
        if not isinstance(record, dict):
            return msg("data.json_line_not_record", name=path.name, line=number, type=type(record).__name__)
    return ""


# --- folders and the Hub ----------------------------------------------------------------


def rows_of(ds, name: str, split: str, lim: DataLimits | None = None) -> list[dict]:
    if len(ds) == 0:
        raise DataError(msg("data.no_rows_in_split", name=name, split=split) if split != "train"
                        else msg("data.no_rows", name=name))
    check_row_count(len(ds), name, lim or limits())  # counted in Arrow, before a dict is made per row
    if isinstance(ds, list):  # streamed rows (a Hub slice): already dicts
        return ds
    try:
        return ds.to_list()
    except UnicodeDecodeError as err:  # pyarrow keeps invalid UTF-8 in JSON strings until they are read
        raise DataError(_encoding_message(name, err.object[max(0, err.start - 64): err.end + 64])) from None


def innermost(err: BaseException) -> BaseException:
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        nxt = err.__cause__ or err.__context__
        if nxt is None:
            break
        err = nxt
    return err


def first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]
