#!/usr/bin/env bash
# Issue 11's simulation checks (results in benchmarks/results/*-checks, *-flip):
#  - the stopping signal: where it fires, the accuracy there and random's at the same labels;
#  - Label Studio's cluster-aware sampler (`--clusters`: margin+clusters) against plain score order;
#  - the suspicious-label list: 10% of the oracle's labels wrong, precision at k.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
BBC=(--data bbc --seed-size 10 --batch-size 10 --budget 200 --repeats 3 --strategies random,margin --quiet)
$PY -m baal_backend simulate "${BBC[@]}" --clusters --out benchmarks/results/bbc-checks
$PY -m baal_backend simulate "${BBC[@]}" --flip 0.1 --out benchmarks/results/bbc-flip
# CLINC150: one repeat each (what fitted in the session that measured them)
$PY -m baal_backend simulate --data clinc150 --seed-size 150 --batch-size 150 --budget 3000 --repeats 1 \
    --strategies random,margin --clusters --quiet --out benchmarks/results/clinc150-checks
$PY -m baal_backend simulate --data clinc150 --seed-size 150 --batch-size 150 --budget 1500 --repeats 1 \
    --strategies random,margin --flip 0.1 --quiet --out benchmarks/results/clinc150-flip
