"""Where things are, for tests in any folder: the repository root and the sample data files."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
