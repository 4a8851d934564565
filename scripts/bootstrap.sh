#!/usr/bin/env bash
# Idempotent setup for development and CI: .venv, pinned Python deps, Debian packages.
# Run it directly or `source` it (test.sh and dev.sh do); when everything is up to date
# it only compares a hash and returns.
set -euo pipefail

# Debian packages the suite needs from the OS, space separated: PowerDNS for
# `csfabric dev --with powerdns` and the DNS failover tests; Chromium to check that the
# `csfabric dr report` page renders.
DEBIAN_PACKAGES="pdns-server pdns-backend-sqlite3 chromium"

CSFABRIC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CSFABRIC_VENV="$CSFABRIC_ROOT/.venv"

_bootstrap_python() {
    # First interpreter >= 3.11; $PYTHON wins when set.
    local candidate
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "bootstrap: need python >= 3.11 (set \$PYTHON or apt-get install python3)" >&2
    return 1
}

_bootstrap_venv() {
    if [[ ! -x "$CSFABRIC_VENV/bin/python" ]]; then
        local python
        python="$(_bootstrap_python)"
        echo "bootstrap: creating .venv with $python" >&2
        "$python" -m venv "$CSFABRIC_VENV"
    fi
    # Reinstall only when the declared or locked dependencies changed since last time.
    local stamp="$CSFABRIC_VENV/.csfabric-deps.sha256" want have=""
    want="$(cat "$CSFABRIC_ROOT/pyproject.toml" "$CSFABRIC_ROOT/requirements.lock" | sha256sum)"
    [[ -f "$stamp" ]] && have="$(cat "$stamp")"
    if [[ "$want" != "$have" ]]; then
        echo "bootstrap: installing Python dependencies" >&2
        (cd "$CSFABRIC_ROOT" &&
            "$CSFABRIC_VENV/bin/python" -m pip install -q -c requirements.lock -e '.[dev]')
        echo "$want" >"$stamp"
    fi
}

_bootstrap_debian() {
    local pkg missing=()
    for pkg in $DEBIAN_PACKAGES; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    echo "bootstrap: apt-get install ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

_bootstrap_debian
_bootstrap_venv
