#!/usr/bin/env bash
# Run the test suite (creates/reuses .venv first). Extra args go to pytest.
set -e
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/launch/env.sh"
cd "$root"
exec python -m pytest -q -ra tests "$@"
