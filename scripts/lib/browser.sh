# shellcheck shell=bash
# Sourced by scripts/test: make sure Debian's chromium is there for the browser
# test (tests/e2e/test_dashboard_browser.py drives it with Playwright's Python
# package; `playwright install` is never used). Installs only when missing and
# apt-get is usable (root, or password-less sudo); otherwise it says why and
# carries on: the test then skips with the reason. Never fails the caller.
#
#   TIERKIT_SKIP_BROWSER_INSTALL=1   do not try to install anything

TIERKIT_CHROMIUM="${TIERKIT_CHROMIUM:-/usr/bin/chromium}"

tierkit_ensure_browser() {
    local log_fn="tierkit_log"
    declare -F tierkit_log >/dev/null 2>&1 || log_fn="echo"
    if [ -x "$TIERKIT_CHROMIUM" ]; then
        return 0
    fi
    if [ "${TIERKIT_SKIP_BROWSER_INSTALL:-0}" = "1" ]; then
        "$log_fn" "chromium missing and TIERKIT_SKIP_BROWSER_INSTALL=1: the browser test will skip"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        "$log_fn" "chromium missing and no apt-get here: the browser test will skip"
        return 0
    fi
    local -a as_root=()
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            "$log_fn" "chromium missing and apt-get needs root: the browser test will skip"
            return 0
        fi
    fi
    "$log_fn" "installing chromium with apt-get (for the dashboard's browser test)"
    if "${as_root[@]}" apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null 2>&1; then
        "$log_fn" "chromium installed: $("$TIERKIT_CHROMIUM" --version 2>/dev/null || echo "$TIERKIT_CHROMIUM")"
    else
        "$log_fn" "apt-get could not install chromium: the browser test will skip"
    fi
    return 0
}
