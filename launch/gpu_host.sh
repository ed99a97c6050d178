#!/usr/bin/env bash
# One GPU host: one process drives every local GPU (the mesh spans them all), e.g.
#   launch/gpu_host.sh                                   # the embedded default pipeline
#   launch/gpu_host.sh sft --stage 2 --config configs/r1_distill_qwen_7b.py:gpu8 --init /ckpt/R1-Distill-Qwen-7B --out runs/sft2
#   launch/gpu_host.sh --platform cpu pipeline --quick   # the same path on the CPU backend (no GPU here)
# Several GPU hosts: run it on each with --coordinator HOST0:PORT --num-processes N --process-id K.
# Installs the CUDA plugin matching the pinned jax on first use (skip with --no-install).
set -e
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
platform=gpu install=1 pod=()
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) platform="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    --coordinator|--num-processes|--process-id) pod+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
source "$root/launch/env.sh"
cd "$root"
[ $# -eq 0 ] && set -- pipeline
if [ "$platform" = gpu ]; then
  jax_version="$(python -c 'import jax; print(jax.__version__)')"
  if [ $install -eq 1 ] && ! python -c 'import jax_cuda12_plugin' 2>/dev/null; then
    python -m pip install -q "jax[cuda12]==$jax_version"
  fi
  export JAX_PLATFORMS=cuda
  # Let XLA take most of the GPU memory up front and overlap collectives with compute.
  export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}"
  export XLA_FLAGS="--xla_gpu_enable_latency_hiding_scheduler=true ${XLA_FLAGS:-}"
  command -v nvidia-smi >/dev/null && nvidia-smi -L
else
  export JAX_PLATFORMS="$platform"
fi
exec python -m coa_jax "${pod[@]}" "$@"
