# shellcheck shell=bash
# Sourced by scripts/up, scripts/test and scripts/bench: make .venv and install
# the project into it, but only when pyproject.toml changed since the last
# install or an extra is asked for that was not installed yet, so a second run
# starts in a second instead of a minute.
#
# `tierkit_setup_venv [EXTRAS]` installs `.[EXTRAS]` (comma-separated, default
# `dev`). The stamp file records the pyproject.toml hash and the extras
# installed with it; a caller asking for fewer extras than are installed
# (scripts/test after scripts/bench) installs nothing, and a reinstall keeps
# the extras an earlier caller wanted, so the scripts never undo each other.
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
    local wanted_extras="${1:-dev}"
    local stamp="$VENV/.tierkit-installed" want have_hash="" have_extras="" extras
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
    if [ -f "$stamp" ]; then
        # Line 1: pyproject.toml's sha256; line 2: the extras installed with it
        # (absent in stamps written before extras were recorded: those had dev).
        have_hash="$(sed -n 1p "$stamp")"
        have_extras="$(sed -n 2p "$stamp")"
        [ -n "$have_extras" ] || have_extras="dev"
    fi
    extras="$(_tierkit_union_extras "$have_extras" "$wanted_extras")"
    if [ "$have_hash" = "$want" ] && [ "$extras" = "$(_tierkit_union_extras "$have_extras" "")" ]; then
        return 0
    fi
    if [ "$have_hash" = "$want" ]; then
        tierkit_log "installing tierkit with extras [$extras] into .venv (new extras asked for)"
    else
        tierkit_log "installing tierkit with extras [$extras] into .venv (pyproject.toml changed)"
    fi
    if [ ! -x "$VENV/bin/uv" ]; then
        "$PY" -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1" || return 1
    fi
    local started=$SECONDS
    (cd "$TIERKIT_ROOT" && "$VENV/bin/uv" pip install --python "$PY" -e ".[$extras]") || return 1
    printf '%s\n%s\n' "$want" "$extras" >"$stamp"
    tierkit_log "install done in $((SECONDS - started)) s"
}

# The sorted, de-duplicated union of two comma-separated extras lists.
_tierkit_union_extras() {
    printf '%s\n' "$1,$2" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -
}
