# shellcheck shell=bash
# Sourced by scripts/test and scripts/bench: install a Debian package when the
# command it provides is missing, for a test or a benchmark that needs it.
# Installs only when apt-get is usable (root, or password-less sudo); otherwise
# it says why and carries on (the test then skips with its reason, the benchmark
# falls back). Never fails the caller.
#
#   TIERKIT_SKIP_APT_INSTALL=1   do not try to install anything

# tierkit_ensure_apt_tool COMMAND PACKAGE PURPOSE FALLBACK
#   COMMAND   a name looked up on PATH, or an absolute path
#   PURPOSE   what it is for ("the dashboard's browser test")
#   FALLBACK  what happens without it ("the browser test will skip")
tierkit_ensure_apt_tool() {
    local command="$1" package="$2" purpose="$3" fallback="$4"
    local log_fn="tierkit_log"
    declare -F tierkit_log >/dev/null 2>&1 || log_fn="echo"
    if [ -x "$command" ] || command -v "$command" >/dev/null 2>&1; then
        return 0
    fi
    if [ "${TIERKIT_SKIP_APT_INSTALL:-0}" = "1" ]; then
        "$log_fn" "$package missing and TIERKIT_SKIP_APT_INSTALL=1: $fallback"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        "$log_fn" "$package missing and no apt-get here: $fallback"
        return 0
    fi
    local -a as_root=()
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            "$log_fn" "$package missing and apt-get needs root: $fallback"
            return 0
        fi
    fi
    "$log_fn" "installing $package with apt-get (for $purpose)"
    if "${as_root[@]}" apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "$package" \
            >/dev/null 2>&1; then
        "$log_fn" "$package installed"
    else
        "$log_fn" "apt-get could not install $package: $fallback"
    fi
    return 0
}
