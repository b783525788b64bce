#!/usr/bin/env bash
# Does the head-only MC-Dropout approximation (the server's scoring path) keep the label savings of
# full-network MC-Dropout (the tutorial's path)? The same simulation twice on CLINC150, the pool
# scored either way. Full MC runs the encoder NUM_DRAWS times per text per round: use a GPU.
#   MODEL=path/to/minilm DATA=path/to/data_full.json OUT=dir benchmarks/mc_approximation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
MODEL=${MODEL:-}
DATA=${DATA:-clinc150}
OUT=${OUT:-benchmarks/results/mc}
REPEATS=${REPEATS:-1}
common=(--data "$DATA" --seed-size 150 --batch-size 150 --budget 3000 --repeats "$REPEATS" --quiet)
[ -n "$MODEL" ] && common+=(--model "$MODEL")
$PY -m baal_backend simulate "${common[@]}" --mc head --strategies random,margin,bald --out "$OUT/head"
$PY -m baal_backend simulate "${common[@]}" --mc full --strategies margin,bald --out "$OUT/full"
