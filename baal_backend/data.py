"""Labelled text data sets for simulations and benchmarks: CLINC150, BBC News, any CSV/JSONL."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

DEFAULT_CLINC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clinc150" / "data_full.json"


@dataclass(frozen=True)
class TextDataset:
    name: str
    texts: List[str]
    labels: List[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_clinc(path: Path = DEFAULT_CLINC, split: str = "train") -> TextDataset:
    """CLINC150's 150 in-scope intents (the out-of-scope `oos_*` splits are left out)."""
    rows: List[Tuple[str, str]] = json.loads(Path(path).read_text())[split]
    return TextDataset(f"clinc150-{split}", [r[0] for r in rows], [r[1] for r in rows])
