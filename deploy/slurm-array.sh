#!/usr/bin/env bash
# One ganlite run written by a Slurm job array: task I writes shard I of K into one shared
# folder (a file system every node mounts). The shards are independent: submit, and
# resubmit any task that failed (`sbatch --array=3,7 deploy/slurm-array.sh`); a rerun
# completes its shard, rewriting nothing already there.
#
#   GANLITE_OUT=/shared/digits GANLITE_N=100000000 sbatch deploy/slurm-array.sh
#
# Then read it back as one array or a stream: ganlite.read_run / ganlite.iter_run.
# Task ids must count from 0 (--array=0-15, or 0-15%4 to run 4 at a time); K is the
# array's size, so change --array to change K (and keep it for every resubmission: K is
# part of the run, shards of another K are refused).
#
# Settings (environment, exported to the tasks by sbatch):
#   GANLITE_OUT     output folder, shared by all tasks (required)
#   GANLITE_N       images in the whole run (default 1,000,000)
#   GANLITE_SEED    seed (default 0)
#   GANLITE_FORMAT  npy (default: images-IIIII-of-KKKKK.npy parts) or png
#   GANLITE_MODEL   model name or .onnx path (default: ganlite's default model)
#   GANLITE_ARGS    further `ganlite generate` options, e.g. "--balanced"
#   GANLITE_PYTHON  run `$GANLITE_PYTHON -m ganlite` instead of the `ganlite` on PATH
#SBATCH --job-name=ganlite
#SBATCH --array=0-15
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --time=02:00:00
#SBATCH --output=ganlite-%A_%a.log
set -euo pipefail

: "${SLURM_ARRAY_TASK_ID:?not a Slurm array task: submit with sbatch (or set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT)}"
: "${GANLITE_OUT:?set GANLITE_OUT to the shared output folder}"
index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
count=${SLURM_ARRAY_TASK_COUNT:-16}

if [[ -n "${GANLITE_PYTHON:-}" ]]; then
    ganlite=("$GANLITE_PYTHON" -m ganlite)
else
    ganlite=(ganlite)
fi
model=()
[[ -n "${GANLITE_MODEL:-}" ]] && model=(--model "$GANLITE_MODEL")
# shellcheck disable=SC2206  # GANLITE_ARGS is split into options on purpose
extra=(${GANLITE_ARGS:-})

# ${a[@]+"${a[@]}"}: an empty array under set -u, on bash before 4.4 too.
exec "${ganlite[@]}" generate --n "${GANLITE_N:-1000000}" --seed "${GANLITE_SEED:-0}" \
    --format "${GANLITE_FORMAT:-npy}" --out "$GANLITE_OUT" ${model[@]+"${model[@]}"} \
    ${extra[@]+"${extra[@]}"} --shard "$index/$count" -q
