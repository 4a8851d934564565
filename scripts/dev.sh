#!/usr/bin/env bash
# Local development stack (`csfabric dev`); arguments are passed through.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec .venv/bin/csfabric dev "$@"
