#!/usr/bin/env bash
# The label-name prior's levers (issue "Useful from label zero"): the simulation with the prior
# off on CLINC150 and BBC News (the same runs as label_savings.sh, margin and random), and on BBC
# News with its classes renamed to meaningless codes, prior on and off. 3 repeats each. Writes
# benchmarks/results/{clinc150-noprior,bbc-noprior,bbc-cryptic,bbc-cryptic-noprior}/.
# About 25 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
STRATEGIES=${STRATEGIES:-random,margin}
CLINC=(--data clinc150 --seed-size 150 --batch-size 150 --budget 3000 --repeats 3 --strategies "$STRATEGIES" --quiet)
BBC=(--data bbc --seed-size 10 --batch-size 10 --budget 200 --repeats 3 --strategies "$STRATEGIES" --quiet)
$PY -m baal_backend simulate "${CLINC[@]}" --prior off --out benchmarks/results/clinc150-noprior
$PY -m baal_backend simulate "${BBC[@]}" --prior off --out benchmarks/results/bbc-noprior
$PY -m baal_backend simulate "${BBC[@]}" --cryptic-labels --out benchmarks/results/bbc-cryptic
$PY -m baal_backend simulate "${BBC[@]}" --cryptic-labels --prior off --out benchmarks/results/bbc-cryptic-noprior
