"""Hypothesis fuzzing of data files, run as its own process by test_fuzz_files.py.

Files of every supported type are generated with hostile shapes: nesting thousands of levels
deep, mixed column types, other encodings (UTF-16, CP949, Latin-1, a BOM), cut at any byte,
random binary, sizes from empty up. Reading each must end in rows or one DataError; any other
exception fails the run here, and a crash of a parser shows as this process's exit status.
"""
from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import RunConfig
from core.data.pipeline import load_examples
from core.errors import DataError

leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                   st.text(max_size=30))
values = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
turns = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "gpt", "x"]),
                                        "content": st.one_of(st.text(max_size=40), values)}), max_size=6)
keys = st.sampled_from(["messages", "conversations", "instruction", "input", "output", "question", "answer",
                        "질문", "답변", "text", "prompt", "response", "x"])
rows = st.lists(st.dictionaries(keys, st.one_of(values, turns), min_size=1, max_size=4), max_size=8)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp949", "latin-1"])


def _deep(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@st.composite
def json_file(draw) -> tuple[str, bytes]:
    records = draw(rows)
    lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in records]
    depth = draw(st.sampled_from([0, 0, 10, 70, 900, 5_000, 30_000]))
    if depth:
        lines.insert(draw(st.integers(0, len(lines))), '{"messages": ' + _deep(depth) + '}')
    suffix = draw(st.sampled_from([".jsonl", ".json"]))
    text = "\n".join(lines) if suffix == ".jsonl" or draw(st.booleans()) else "[" + ",".join(lines) + "]"
    return suffix, _encoded(draw, text)


@st.composite
def csv_file(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".csv", ".tsv", ".txt"]))
    sep = "\t" if suffix == ".tsv" else ","
    header = draw(st.lists(keys, min_size=1, max_size=4))
    cells = st.one_of(st.text(max_size=30), st.integers().map(str), st.just(""), st.just('"'), values.map(json.dumps))
    body = draw(st.lists(st.lists(cells, min_size=0, max_size=6), max_size=10))
    text = "\n".join([sep.join(header)] + [sep.join(r) for r in body])
    return suffix, _encoded(draw, text)


@st.composite
def parquet_file(draw) -> tuple[str, bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    if draw(st.booleans()):
        return ".parquet", b"PAR1" + draw(st.binary(max_size=200))
    n = draw(st.integers(0, 6))
    kinds = [st.text(max_size=20), st.integers(-2**40, 2**40), st.booleans(), st.lists(st.text(max_size=5), max_size=3)]
    columns = {}
    for name in draw(st.lists(keys, min_size=1, max_size=3, unique=True)):
        columns[name] = draw(st.lists(st.one_of(st.none(), draw(st.sampled_from(kinds))), min_size=n, max_size=n))
    if draw(st.booleans()):
        columns["messages"] = [draw(turns.filter(lambda t: all(isinstance(x["content"], str) for x in t)))
                               for _ in range(n)]
    try:
        table = pa.table(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types pyarrow itself refuses: not a file we can write
        return ".parquet", b"PAR1" + draw(st.binary(max_size=50)) + b"PAR1"
    out = io.BytesIO()
    pq.write_table(table, out)
    data = out.getvalue()
    return ".parquet", data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


def _encoded(draw, text: str) -> bytes:
    data = text.encode(draw(encodings), errors="replace")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # cut anywhere, even inside a character
    if draw(st.integers(0, 4)) == 0:
        data += draw(st.binary(max_size=64))
    return data


files = st.one_of(json_file(), csv_file(), parquet_file(),
                  st.tuples(st.sampled_from([".jsonl", ".csv", ".txt", ".json"]), st.binary(max_size=300)))
FOLDER = Path(tempfile.mkdtemp(prefix="tunelab-fuzz-"))
counts = {"rows": 0, "refused": 0}


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "50")), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(files)
def check_one_file(file: tuple[str, bytes]) -> None:
    suffix, data = file
    path = FOLDER / f"f{sum(counts.values())}{suffix}"
    path.write_bytes(data)
    try:
        load_examples(RunConfig(dataset=str(path), validation_share=0.0))
        counts["rows"] += 1
    except DataError as err:
        assert str(err).strip() and "Traceback" not in str(err)
        counts["refused"] += 1


if __name__ == "__main__":
    check_one_file()
    print(f"fuzzed files: {counts['rows']} read, {counts['refused']} refused with a sentence")
    sys.exit(0)
