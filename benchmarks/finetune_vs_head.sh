#!/usr/bin/env bash
# Fine-tune mode against head mode on a 10-intent CLINC150 subset at 100 and 300 labels (k-means
# seed set of 100, then 200 by margin), results in benchmarks/results/clinc10-{head,finetune}.
# REPEATS=3 for the full comparison; on 2 shared CPU cores one fine-tune round took minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ARGS=(--data clinc150 --classes 10 --strategies margin --seed-size 100 --batch-size 200 --budget 300
      --repeats "${REPEATS:-1}" --quiet)
for mode in head finetune; do
  start=$(date +%s)
  $PY -m baal_backend simulate "${ARGS[@]}" --mode "$mode" --out "benchmarks/results/clinc10-$mode"
  echo "$mode: $(( $(date +%s) - start )) s in all" | tee "benchmarks/results/clinc10-$mode/seconds.txt"
done
