"""Fixtures for the tests of core/data: the embedded model's tokenizer as a run loads it (once per session)."""
import pytest

from core.config import RunConfig
from core.models import load_tokenizer


@pytest.fixture(scope="session")
def data_tokenizer():
    return load_tokenizer(RunConfig())
