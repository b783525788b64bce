"""A user's clone has no sibling `shared` folder: this guard fails if any code, test or benchmark
refers to one (it reads nothing there itself)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for pattern in ("*.py", "*.sh", "Makefile", "Dockerfile", "*.yml", "*.cfg", "*.ini", ".ci/*")
           for p in ROOT.glob(f"**/{pattern}") if not any(part.startswith(".venv") for part in p.parts)]


def test_no_code_reads_the_shared_folder():
    pattern = re.compile(r"""\.\./shared|["'/]shared["'/]""")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in SOURCES if p.is_file() and p != Path(__file__)
                 for n, line in enumerate(p.read_text(errors="ignore").splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders


def test_the_built_in_clinc150_ships_with_its_licence():
    folder = ROOT / "baal_backend" / "corpora" / "clinc150"
    assert (folder / "clinc150.json.gz").stat().st_size > 100_000
    assert "Attribution 3.0" in (folder / "LICENSE").read_text()
