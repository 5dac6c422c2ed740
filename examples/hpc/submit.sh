#!/bin/bash
# Ingest an archive with N array tasks and a dependent commit, then predict with M GPU tasks and a
# dependent merge:
#   examples/hpc/submit.sh ARCHIVE DATASET N [WEIGHTS PREDICTIONS.json M]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ARCHIVE=$1; DATASET=$2; N=$3
mkdir -p logs
ingest=$(sbatch --parsable --array=0-$((N - 1)) "$HERE/ingest_array.sbatch" "$ARCHIVE" "$DATASET" "$N" --format camera-trap)
commit=$(sbatch --parsable --dependency=afterok:"$ingest" "$HERE/ingest_commit.sbatch" "$ARCHIVE" "$DATASET" --format camera-trap)
echo "ingest array $ingest, commit $commit"
if [ $# -ge 6 ]; then
  WEIGHTS=$4; PREDICTIONS=$5; M=$6
  predict=$(sbatch --parsable --array=0-$((M - 1)) "$HERE/predict_array.sbatch" "$WEIGHTS" "$ARCHIVE" "$PREDICTIONS" "$M" --format megadetector)
  merge=$(sbatch --parsable --dependency=afterok:"$predict" "$HERE/predict_merge.sbatch" "$WEIGHTS" "$ARCHIVE" "$PREDICTIONS" --format megadetector)
  echo "predict array $predict, merge $merge"
fi
