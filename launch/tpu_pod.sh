#!/usr/bin/env bash
# A Cloud TPU slice (one or more TPU VM hosts): create it, copy the code, run a command on every
# worker as one JAX job, follow worker 0's log, delete it. Every step is one gcloud command;
# --dry-run prints the commands instead of running them.
#   launch/tpu_pod.sh --name coa --zone us-east5-a --type v5p-16 up -- sft --stage 2 --config configs/r1_distill_qwen_7b.py:v5p16 --init /mnt/shared/R1-Distill-Qwen-7B --out /mnt/shared/runs/sft2
#   launch/tpu_pod.sh --name coa --zone us-east5-a tail | delete
# Steps: create, setup (copy the repo, install .venv + jax[tpu] on every worker), run (start
# `python -m coa_jax --distributed COMMAND` on all workers in the background, log in ~/coa_jax/run.log),
# tail (worker 0's log), delete, up (= create setup run tail). --out must be a directory every
# worker sees (NFS / gcsfuse): checkpoints are written by all processes together.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="" zone="" type="v5p-16" version="" project="" spot=0 dry=0 step=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --zone) zone="$2"; shift 2 ;;
    --type) type="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --project) project="$2"; shift 2 ;;
    --spot) spot=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    create|setup|run|tail|delete|up) step="$1"; shift; break ;;
    *) echo "tpu_pod.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "${1:-}" = "--" ] && shift
[ -n "$step" ] || { echo "tpu_pod.sh: give a step: create setup run tail delete up" >&2; exit 2; }
[ -n "$name" ] && [ -n "$zone" ] || { echo "tpu_pod.sh: --name and --zone are required" >&2; exit 2; }
if [ -z "$version" ]; then  # the TPU VM image for the chip generation
  case "$type" in
    v5p-*) version=v2-alpha-tpuv5 ;;
    v5litepod-*|v5e-*) version=v2-alpha-tpuv5-lite ;;
    v6e-*) version=v2-alpha-tpuv6e ;;
    v4-*|v3-*|v2-*) version=tpu-ubuntu2204-base ;;
    *) echo "tpu_pod.sh: no default --version for --type $type" >&2; exit 2 ;;
  esac
fi
jax_version="$(sed -n 's/^jax\[[a-z]*\]==\([0-9.]*\).*/\1/p' "$root/requirements.txt")"
tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone" ${project:+--project="$project"})
bundle="/tmp/coa_jax-$name.tgz"

quote() {  # one shell word, single-quoted when it needs quoting
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,~-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
do_cmd() {  # print (dry run) or run one command
  if [ $dry -eq 1 ]; then local sep=""; for a in "$@"; do printf '%s%s' "$sep" "$(quote "$a")"; sep=" "; done; echo
  else "$@"; fi
}

step_create() {
  local extra=(); [ $spot -eq 0 ] || extra=(--spot)
  do_cmd "${tpu[@]}" create "$name" "${where[@]}" --accelerator-type="$type" --version="$version" "${extra[@]}"
}
step_setup() {
  do_cmd tar -czf "$bundle" --exclude=.venv --exclude=runs --exclude=.git -C "$root" .
  do_cmd "${tpu[@]}" scp "$bundle" "$name:coa_jax.tgz" "${where[@]}" --worker=all
  do_cmd "${tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command "mkdir -p ~/coa_jax && \
tar -xzf ~/coa_jax.tgz -C ~/coa_jax && cd ~/coa_jax && bash launch/env.sh && \
.venv/bin/python -m pip install -q \"jax[tpu]==$jax_version\""
}
step_run() {
  [ $# -gt 0 ] || set -- pipeline
  local cmd; cmd="$(printf '%q ' "$@")"
  do_cmd "${tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command "cd ~/coa_jax && \
nohup .venv/bin/python -m coa_jax --distributed $cmd> run.log 2>&1 < /dev/null &"
}
step_tail() {
  do_cmd "${tpu[@]}" ssh "$name" "${where[@]}" --worker=0 --command "tail -n +1 -F ~/coa_jax/run.log"
}
step_delete() {
  do_cmd "${tpu[@]}" delete "$name" "${where[@]}" --quiet
}

case "$step" in
  up) step_create; step_setup; step_run "$@"; step_tail ;;
  run) step_run "$@" ;;
  *) "step_$step" ;;
esac
