"""A person's own evaluation questions: a JSONL or CSV file read into the held-out evaluation's rows.

Each question comes with what makes an answer right, one of:
- `expected`: one or more substrings (a name, a number); right when the answer contains one
  (case-insensitive), like the built-in set. In CSV, several are separated by "|".
- `reference`: a reference answer (also accepted as `answer`); right when the answer contains at
  least REFERENCE_RECALL of the reference's key words (its words of two or more characters that
  are not common English function words), each found as a case-insensitive substring.

Why key-word recall and not token F1: the small models tuned here answer in whole sentences, often
longer than the reference, and F1's precision half marks a right but chatty answer wrong; what a
person wants to know is whether the reference's facts are in the answer. Substring matching lets
"Fenwright" match "Fenwright's"; for Korean, write the key word without its particle in the reference
(or use `expected`).

A file that cannot be used raises DataError with the line or row and what to fix.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from core.data.limits import check_file_size, check_row_count, limits, parse_json
from core.errors import DataError
from core.messages import msg

REFERENCE_RECALL = 0.6
QUESTION_KEYS, EXPECTED_KEYS, REFERENCE_KEYS = ("question", "prompt"), ("expected",), ("reference", "answer")
STOP_WORDS = frozenset(
    "the a an and or of to in on at by for with from is are was were be been it its this that these those as "
    "which who whom what when where why how do does did has have had not no yes but so than then there their "
    "they them he she his her you your we our i me my".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def load_user_questions(path: Path) -> list[dict]:
    """[{"question", "expected": [...], "reference": str}] from a .jsonl or .csv file; DataError when unusable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(msg("votes.q_missing", name=path.name))
    lim = limits()
    check_file_size(path, lim)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise DataError(msg("votes.q_format", name=path.name))
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    raw = _jsonl_rows(text, path.name, lim) if suffix == ".jsonl" else _csv_rows(text, path.name)
    check_row_count(len(raw), path.name, lim)
    questions = [_question(row, where, path.name) for where, row in raw]
    if not questions:
        raise DataError(msg("votes.q_empty", name=path.name))
    return questions


def _jsonl_rows(text: str, name: str, lim) -> list[tuple[str, dict]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = parse_json(line, str(number), name, lim)
        except ValueError:
            raise DataError(msg("votes.q_bad_json", name=name, line=number)) from None
        if not isinstance(row, dict):
            raise DataError(msg("votes.q_bad_json", name=name, line=number))
        rows.append((msg("votes.q_where_line", line=number), row))
    return rows


def _csv_rows(text: str, name: str) -> list[tuple[str, dict]]:
    try:
        reader = csv.DictReader(io.StringIO(text))
        rows = [(msg("votes.q_where_row", row=number), dict(row)) for number, row in enumerate(reader, 2)]
    except csv.Error:
        raise DataError(msg("votes.q_bad_csv", name=name)) from None
    for _, row in rows:
        expected = row.get("expected")
        if isinstance(expected, str):
            row["expected"] = expected.split("|")
    return rows


def _first(row: dict, keys: tuple[str, ...]):
    return next((row[k] for k in keys if row.get(k) not in (None, "", [])), None)


def _question(row: dict, where: str, name: str) -> dict:
    """One row as {"question", "expected", "reference"}, or DataError saying what the row lacks."""
    lowered = {k.strip().lower(): v for k, v in row.items() if isinstance(k, str)}
    question = _first(lowered, QUESTION_KEYS)
    expected, reference = _first(lowered, EXPECTED_KEYS), _first(lowered, REFERENCE_KEYS)
    if not isinstance(question, str) or not question.strip():
        raise DataError(msg("votes.q_no_question", name=name, where=where))
    if isinstance(expected, str):
        expected = [expected]
    if expected is not None:
        if not isinstance(expected, list) or not all(isinstance(e, str) for e in expected):
            raise DataError(msg("votes.q_bad_expected", name=name, where=where))
        expected = [e.strip() for e in expected if e.strip()]
    if not expected and not (isinstance(reference, str) and key_words(reference)):
        raise DataError(msg("votes.q_no_answer", name=name, where=where))
    return {"question": question.strip(), "expected": expected or [],
            "reference": reference.strip() if isinstance(reference, str) and not expected else ""}


def key_words(reference: str) -> list[str]:
    """The reference's words that carry its facts: two or more characters, not an English function word."""
    words = [w.lower() for w in _WORD.findall(reference)]
    return list(dict.fromkeys(w for w in words if len(w) >= 2 and w not in STOP_WORDS))


def reference_recall(answer: str, reference: str) -> float:
    """Share of the reference's key words found (as case-insensitive substrings) in the answer."""
    words = key_words(reference)
    low = answer.lower()
    return sum(w in low for w in words) / len(words) if words else 0.0


def is_right(answer: str, question: dict) -> bool:
    """The question's rule: an expected substring, else the reference's key-word recall."""
    if question.get("expected"):
        low = answer.lower()
        return any(e.lower() in low for e in question["expected"])
    return reference_recall(answer, question.get("reference", "")) >= REFERENCE_RECALL

