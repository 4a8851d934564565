#!/usr/bin/env bash
# Quality gates, then pytest.  Arguments go to pytest; none runs everything (fast + slow).
# Every gate runs even after one fails, so a CI log shows all problems at once; the exit
# status is non-zero if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

failed=()
gate() {
    echo "==> $*"
    "$@" || failed+=("$*")
}

gate ruff check services tests bench
gate ruff format --check services tests bench
gate mypy services
gate lint-imports
gate csfabric schemas check
gate pytest "$@"

if ((${#failed[@]})); then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "all gates passed"
