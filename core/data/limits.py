"""Limits on what a data file may hold, checked before it is parsed, and a JSON reader that keeps to them.

Hostile or broken files must end in one plain sentence, never in a crashed
process: pyarrow's JSON reader (behind `datasets`) dies with a segmentation
fault on a row nested 20,000 levels deep, and turning a 50-million-row
Parquet file into Python dicts takes all memory. So every file is measured
first (size, rows from the Parquet footer or by counting lines, per-row
bytes, nesting depth by a cheap bracket count), and JSON/JSONL is parsed here
with Python's own `json`, which raises RecursionError instead of crashing and
reads only the rows a slice such as `train[:500]` asks for.

Each limit is generous for real data and set by an environment variable
(listed in the README, "Data limits"), so the operator of a shared app, not
the person uploading, decides.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.messages import msg

_BOM = b"\xef\xbb\xbf"
_STRING = re.compile(rb'"(?:[^"\\\n]|\\.)*"')  # a JSON string on one line (raw newlines are not allowed in one)
_CHUNK = 8 << 20


@dataclass(frozen=True)
class DataLimits:
    max_file_mb: int = 2048      # TUNELAB_DATA_MAX_FILE_MB
    max_rows: int = 500_000      # TUNELAB_DATA_MAX_ROWS (after a slice such as train[:1000] is applied)
    max_row_kb: int = 16_384     # TUNELAB_DATA_MAX_ROW_KB: one JSONL line
    max_depth: int = 64          # TUNELAB_DATA_MAX_DEPTH: nesting of lists/objects in one row
    max_turns: int = 1_000       # TUNELAB_DATA_MAX_TURNS: turns in one conversation (more: the row is dropped)


ENV_NAMES = {"max_file_mb": "TUNELAB_DATA_MAX_FILE_MB", "max_rows": "TUNELAB_DATA_MAX_ROWS",
             "max_row_kb": "TUNELAB_DATA_MAX_ROW_KB", "max_depth": "TUNELAB_DATA_MAX_DEPTH",
             "max_turns": "TUNELAB_DATA_MAX_TURNS"}


def limits() -> DataLimits:
    """The limits in force: the defaults above, each replaced by its environment variable when set."""
    values = {}
    for name, env in ENV_NAMES.items():
        raw = os.environ.get(env, "").strip().replace("_", "")
        if raw.isdigit() and int(raw) > 0:
            values[name] = int(raw)
    return DataLimits(**values)


def check_file_size(path: Path, lim: DataLimits) -> None:
    size = path.stat().st_size
    if size > lim.max_file_mb << 20:
        raise DataError(msg("data.limit.file_size", name=path.name, size=f"{size / 2**20:,.0f}",
                            limit=f"{lim.max_file_mb:,}"))


def check_row_count(rows: int, name: str, lim: DataLimits) -> None:
    if rows > lim.max_rows:
        raise DataError(msg("data.limit.rows", name=name, rows=f"{rows:,}", limit=f"{lim.max_rows:,}"))


def sliced_range(split: str, n: int) -> list[tuple[int, int]]:
    """The (from, to) row ranges a file split such as 'train[:10%]' or 'train[5:20]' selects out of n rows."""
    if "[" not in split:
        return [(0, n)]
    from datasets.arrow_reader import ReadInstruction  # noqa: PLC0415 - datasets takes ~2 s to import: slices only

    spec = "train" + split[split.index("["):]
    return [(p.from_, p.to) for p in ReadInstruction.from_spec(spec).to_absolute({"train": n})]


def max_depth(data: bytes) -> int:
    """The deepest nesting of [ and { in JSON text (strings ignored), without parsing it.

    A line with fewer opening brackets than the limit cannot be too deep, so callers
    run this only on the rare lines that have many; it is vectorised (numpy), so a
    20,000-deep line costs microseconds.
    """
    text = _STRING.sub(b"", data)
    codes = np.frombuffer(text, dtype=np.uint8)
    step = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int32) - \
        ((codes == ord("]")) | (codes == ord("}"))).astype(np.int32)
    return int(np.cumsum(step).max(initial=0))


def _too_deep(data: bytes, limit: int) -> bool:
    return data.count(b"[") + data.count(b"{") > limit and max_depth(data) > limit


def parse_json(data: bytes | str, where: str, name: str, lim: DataLimits):
    """json.loads with the depth limit checked first; RecursionError (a deeper parse) is the same refusal."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if _too_deep(raw, lim.max_depth):
        raise DataError(msg("data.limit.depth", name=name, row=where, limit=lim.max_depth))
    try:
        return json.loads(data)
    except RecursionError:
        raise DataError(msg("data.limit.depth", name=name, row=where, limit=lim.max_depth)) from None


def count_lines(path: Path) -> int:
    """Non-blank lines (a JSONL file's rows), counted without decoding or parsing any."""
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def newline_count(path: Path) -> int:
    """Line breaks, counted in 8 MB blocks: an upper bound on rows that costs almost nothing."""
    total, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            total += block.count(b"\n")
            last = block[-1:]
    return total + (0 if last == b"\n" else 1)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM):]
            if line.strip():
                yield number, line


def read_json_file(path: Path, split: str, lim: DataLimits) -> list | None:
    """The records of a JSON/JSONL file as Python values, or None when it is one multi-line document.

    JSONL: rows are counted first, then only the lines the slice selects are parsed. Values that are
    not records come back as they are, for the caller to name (null lines, lists).
    """
    check_file_size(path, lim)
    with open(path, "rb") as fh:
        start = fh.read(1 << 12).lstrip(_BOM + b" \t\r\n")
    if start.startswith(b"["):
        return None
    bound = newline_count(path)
    # the exact count is needed only for a slice or near the limit; below it the bound will do
    n = count_lines(path) if "[" in split or bound > lim.max_rows else bound
    ranges = sliced_range(split, n)
    check_row_count(sum(b - a for a, b in ranges), path.name, lim)
    wanted = iter(ranges)
    low, high = next(wanted, (0, 0))
    rows, index = [], -1
    for number, line in _lines(path):
        index += 1
        while index >= high:
            low, high = next(wanted, (None, None))
            if low is None:
                return rows
        if index < low:
            continue
        if len(line) > lim.max_row_kb << 10:
            raise DataError(msg("data.limit.row_size", name=path.name, row=number, size=f"{len(line) >> 10:,}",
                                limit=f"{lim.max_row_kb:,}"))
        try:
            row = parse_json(line, str(number), path.name, lim)
        except (DataError, UnicodeDecodeError):
            raise
        except ValueError as err:
            if number == 1 and not rows:
                return None  # maybe one pretty-printed document: the caller reads it whole
            raise _BadLine(number, err) from None
        if not isinstance(row, dict):
            if number == 1 and row is not None and not rows:
                return None  # one value ("text", 5): the caller names what the document holds
            raise _not_a_record(path.name, number, row)
        rows.append(row)
    return rows


def _not_a_record(name: str, number: int, value) -> DataError:
    if value is None:  # the message pyarrow's reader never got to give: it crashed on these
        return DataError(msg("data.json_null_line", name=name, line=number))
    return DataError(msg("data.json_line_not_record", name=name, line=number, type=type(value).__name__))


def read_json_document(path: Path, lim: DataLimits):
    """A whole JSON document (a list of records, or an object), parsed within the limits."""
    check_file_size(path, lim)
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    document = parse_json(data, "1", path.name, lim)
    if isinstance(document, list):
        check_row_count(len(document), path.name, lim)
    return document


class _BadLine(ValueError):
    """A JSONL line that is not JSON: (line number, the json error)."""

    def __init__(self, line: int, err: ValueError):
        super().__init__(line, err)
        self.line, self.error = line, err


BadLine = _BadLine
