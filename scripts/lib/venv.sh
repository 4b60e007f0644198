# shellcheck shell=bash
# Sourced by scripts/up and scripts/test: make .venv and install the project
# into it, but only when pyproject.toml changed since the last install, so a
# second run starts in a second instead of a minute.
#
# Installs go through uv's pip interface because it honours the
# [tool.uv] override in pyproject.toml that keeps the CUDA-capable
# `tensorflow` package out (tensorflow-serving-api depends on it by name;
# we ship `tensorflow-cpu`, which provides the same import package).

TIERKIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$TIERKIT_ROOT/.venv"
PY="$VENV/bin/python"

tierkit_log() { printf '[tierkit] %s\n' "$*" >&2; }

tierkit_setup_venv() {
    local stamp="$VENV/.tierkit-installed" want
    if [ ! -x "$PY" ]; then
        local base="${PYTHON:-}"
        if [ -z "$base" ]; then
            for candidate in python3.11 python3.12 python3.13 python3; do
                if command -v "$candidate" >/dev/null 2>&1 &&
                    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
                    base="$candidate"
                    break
                fi
            done
        fi
        [ -n "$base" ] || { tierkit_log "need Python >= 3.11 on PATH (or set PYTHON=...)"; return 1; }
        tierkit_log "creating $VENV with $($base --version 2>&1)"
        "$base" -m venv "$VENV" || return 1
    fi
    want="$(sha256sum "$TIERKIT_ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    tierkit_log "installing tierkit and its dependencies into .venv (pyproject.toml changed)"
    if [ ! -x "$VENV/bin/uv" ]; then
        "$PY" -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1" || return 1
    fi
    local started=$SECONDS
    (cd "$TIERKIT_ROOT" && "$VENV/bin/uv" pip install --python "$PY" -e ".[dev]") || return 1
    echo "$want" >"$stamp"
    tierkit_log "install done in $((SECONDS - started)) s"
}
