#!/usr/bin/env bash
# Label-efficiency benchmark: the simulation CLI on CLINC150 and BBC News, 3 repeats each, head
# mode, the server's defaults (label-name prior on, k-means first batch; each repeat its own
# k-means and training seed). Writes benchmarks/results/<data>/{results.json,results.md,
# learning_curves.png}. About 45 minutes on 2 CPU cores for the 7 strategies. `benchmarks/prior_levers.sh` runs the prior-off and
# cryptic-names comparisons.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STRATEGIES=${STRATEGIES:-random,bald,entropy,margin,least_confidence,power_bald,power_margin}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
$PY -m baal_backend simulate --data clinc150 --seed-size 150 --batch-size 150 --budget 3000 \
    --repeats 3 --strategies "$STRATEGIES" --out benchmarks/results/clinc150 "$@"
$PY -m baal_backend simulate --data bbc --seed-size 10 --batch-size 10 --budget 200 \
    --repeats 3 --strategies "$STRATEGIES" --out benchmarks/results/bbc "$@"
