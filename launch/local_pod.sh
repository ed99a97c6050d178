#!/usr/bin/env bash
# A JAX "pod" on this machine: N CPU processes x M fake devices each, joined by jax.distributed
# with gloo collectives. Runs any command as every worker of a pod would, e.g.
#   launch/local_pod.sh --processes 2 --devices 4 -- python -m coa_jax sft --stage 2 --config configs/default.py:tiny --out runs/pod
#   launch/local_pod.sh -- python -m coa_jax.runtime.selfcheck        (2 x 4 by default)
# Each process gets JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID (read by
# `python -m coa_jax`), its output is prefixed [pK]; the first failure stops the others, and
# the script exits with that status. Options: --port P (default: a free one), --timeout S
# (kill the pod after S seconds, exit 124), --logs DIR (also write pK.log files there).
set -u
procs=2 devices=4 port="" timeout_s=0 logs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --processes) procs="$2"; shift 2 ;;
    --devices) devices="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    --logs) logs="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "local_pod.sh: unknown option $1 (the command goes after --)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "local_pod.sh: no command (put it after --)" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$(command -v python3 || command -v python)}"
[ -n "$port" ] || port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
[ -z "$logs" ] || mkdir -p "$logs"

pids=()
stop_all() {  # TERM (a training run checkpoints on it), then KILL whatever is left after 10 s
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return; sleep 0.2; done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap 'stop_all; exit 130' INT TERM
for ((k = 0; k < procs; k++)); do
  log="${logs:+$logs/p$k.log}"
  env JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=$devices ${XLA_FLAGS:-}" \
      JAX_COORDINATOR_ADDRESS="127.0.0.1:$port" JAX_NUM_PROCESSES="$procs" JAX_PROCESS_ID="$k" \
      PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$@" \
      > >(sed -u -e '/peer ranks/d' -e "s/^/[p$k] /" | tee ${log:+"$log"}) 2>&1 &  # (gloo's connect chatter dropped)
  pids+=("$!")
done

status=0
deadline=$(( timeout_s > 0 ? SECONDS + timeout_s : 0 ))
left=("${pids[@]}")
while [ ${#left[@]} -gt 0 ]; do
  still=()
  for p in "${left[@]}"; do
    if kill -0 "$p" 2>/dev/null; then still+=("$p"); continue; fi
    wait "$p"; rc=$?
    if [ $rc -ne 0 ] && [ $status -eq 0 ]; then
      status=$rc; echo "local_pod.sh: a process exited with status $rc; stopping the others" >&2; stop_all
    fi
  done
  left=("${still[@]}")
  if [ $deadline -gt 0 ] && [ $SECONDS -ge $deadline ] && [ ${#left[@]} -gt 0 ]; then
    echo "local_pod.sh: timed out after ${timeout_s}s; stopping the pod" >&2; stop_all; status=124; deadline=0
  fi
  [ ${#left[@]} -eq 0 ] || sleep 0.2
done
wait  # the output prefixers
exit $status
