#!/usr/bin/env bash
# Fine-tune mode against head mode on a 10-intent CLINC150 subset, 20 -> 300 labels, margin,
# 3 repeats (results in benchmarks/results/clinc10-{head,finetune}). CPU: about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ARGS=(--data clinc150 --classes 10 --strategies margin --seed-size 20 --batch-size 40 --budget 300 --repeats 3 --quiet)
for mode in head finetune; do
  start=$(date +%s)
  $PY -m baal_backend simulate "${ARGS[@]}" --mode "$mode" --out "benchmarks/results/clinc10-$mode"
  echo "$mode: $(( $(date +%s) - start )) s in all" | tee "benchmarks/results/clinc10-$mode/seconds.txt"
done
