#!/usr/bin/env bash
# Label-efficiency benchmark (issue "Prove the label savings"): the simulation CLI on CLINC150 and
# BBC News, 3 repeats each, head mode. Writes benchmarks/results/<data>/{results.json,results.md,
# learning_curves.png}. About 25 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STRATEGIES=${STRATEGIES:-random,bald,entropy,margin,least_confidence,power_bald,power_margin}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
$PY -m baal_backend simulate --data clinc150 --seed-size 150 --batch-size 150 --budget 3000 \
    --repeats 3 --strategies "$STRATEGIES" --out benchmarks/results/clinc150 "$@"
$PY -m baal_backend simulate --data bbc --seed-size 10 --batch-size 10 --budget 200 \
    --repeats 3 --strategies "$STRATEGIES" --out benchmarks/results/bbc "$@"
