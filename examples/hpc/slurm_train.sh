#!/bin/bash
# Train a cvft classifier on a SLURM cluster: one task per node, torchrun starts one process per GPU.
#
#   sbatch examples/hpc/slurm_train.sh /scratch/$USER/datasets/ct runs/ct_r50
#
# The run folder is the job's identity, not the job id: submit the same command again (or let SLURM
# requeue the job when it nears its time limit or is preempted) and `--resume` continues from
# runs/ct_r50/checkpoints/last.pt with the options saved in runs/ct_r50/config.yaml. A finished run
# resumed with a larger --epochs is extended.
#SBATCH --job-name=cvft-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out
set -euo pipefail
DATASET=${1:?dataset folder}
RUN=${2:?run folder, e.g. runs/ct_r50 (the same folder continues the run)}
source .venv/bin/activate                # pip install -e '.[train]' on a login node first
export WANDB_MODE=${WANDB_MODE:-offline}  # compute nodes are often offline: sync later with `wandb sync`
export OMP_NUM_THREADS=4
# compute nodes are often offline: fetch pretrained weights on the login node once
#   python -c "import torchvision; torchvision.models.resnet50(weights='DEFAULT')"
# or point --weights at a local file.

# five minutes before the time limit SLURM sends USR1: requeue this job; it resumes from the last epoch
requeue() { echo "time limit near: requeueing $SLURM_JOB_ID"; scontrol requeue "$SLURM_JOB_ID"; }
trap requeue USR1

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun \
  --nnodes="$SLURM_NNODES" --nproc_per_node="$SLURM_GPUS_PER_NODE" \
  --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$head_node:29500" \
  -m cvft_train.launch "$DATASET" --model resnet50 --epochs 30 --batch 128 --imgsz 224 \
  --workers 8 --out "$RUN" --resume &
wait $!   # in the background so that the USR1 trap runs while training
# YOLO detection uses Ultralytics' own multi-GPU mode instead of torchrun (one node):
#   cvft train "$DATASET" --model yolo11s.pt --device 0,1,2,3 --epochs 100 --out "$RUN" --resume
