#!/usr/bin/env bash
# One process on this machine: create/reuse .venv, then run a coa_jax command.
# Usage: bash launch/local.sh [COMMAND [ARGS...]]   (default command: pipeline)
set -e
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/launch/env.sh"
cd "$root"
[ $# -eq 0 ] && set -- pipeline
exec python -m coa_jax "$@"
