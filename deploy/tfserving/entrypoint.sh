#!/usr/bin/env bash
# Entry point of the graph tier image: runs tensorflow_model_server on tierkit's
# models.config, passing every flag through.
#
# Why a wrapper: tierkit's models.config names base paths relative to the
# repository root (base_path: "serving_models/ctr"), so one file serves both
# ./scripts/up and Docker. tensorflow_model_server accepts only absolute base
# paths (ServerCore::ValidateModelConfigList: "Expected model ... to have an
# absolute path or URI"). So the wrapper writes a copy of the file given by
# --model_config_file with relative base paths resolved against the working
# directory, points the server at that copy, and refreshes the copy every
# second when the original changes; --model_config_file_poll_wait_seconds then
# picks up edits as usual. Absolute paths and URIs (gs://, s3://) stay as they are.
#
# The copy is made from TIERKIT_EFFECTIVE_CONFIG when that file exists: the
# effective config the logic tier keeps (models.config plus the versions in use
# by rollouts, labels and pins, so they stay loaded whatever the policy; see
# docs/rollouts.md). Until the logic tier has written it (the graph tier starts
# first), the copy is made from --model_config_file itself.
#
# It also records the REST port for healthcheck.sh, which runs as a separate
# process and cannot see the server's flags.
#
# Environment: TIERKIT_MODEL_SERVER (default tensorflow_model_server),
# TIERKIT_STATE_DIR (default /tmp/tierkit), TIERKIT_CONFIG_SYNC_SECONDS (default 1),
# TIERKIT_EFFECTIVE_CONFIG (default unset: --model_config_file only).
set -euo pipefail

server="${TIERKIT_MODEL_SERVER:-tensorflow_model_server}"
state_dir="${TIERKIT_STATE_DIR:-/tmp/tierkit}"
sync_seconds="${TIERKIT_CONFIG_SYNC_SECONDS:-1}"
resolved="$state_dir/models.config"
effective="${TIERKIT_EFFECTIVE_CONFIG:-}"
source_used=""

log() { printf '%s - %s - tierkit-tfserving: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$1" "$2" >&2; }

# Print the config file $1 with relative base paths made absolute under $2.
resolve_config() {
    local root
    root="$(printf '%s' "$2" | sed -e 's/[#&\\]/\\&/g')"
    sed -E \
        -e '/base_path[[:space:]]*:[[:space:]]*["'"'"'][A-Za-z][A-Za-z0-9+.-]*:\/\//b' \
        -e "s#(base_path[[:space:]]*:[[:space:]]*)\"([^/\"][^\"]*)\"#\\1\"${root}/\\2\"#g" \
        -e "s#(base_path[[:space:]]*:[[:space:]]*)'([^/'][^']*)'#\\1'${root}/\\2'#g" \
        "$1"
}

# Refresh the resolved copy if its source changed; the rename is atomic, so
# the server never reads a half-written copy.
sync_config() {
    local fresh="$resolved.next" source="$config"
    if [[ -n "$effective" && -r "$effective" ]]; then
        source="$effective"
    fi
    if [[ "$source" != "$source_used" ]]; then
        log INFO "serving the config from $source"
        source_used="$source"
    fi
    if ! resolve_config "$source" "$root" >"$fresh" 2>/dev/null; then
        rm -f "$fresh"
        return 1
    fi
    if cmp -s "$fresh" "$resolved"; then
        rm -f "$fresh"
    else
        mv -f "$fresh" "$resolved"
    fi
}

config=""
rest_port="0"
args=()
while (($#)); do
    case "$1" in
    --model_config_file=*) config="${1#*=}" ;;
    --model_config_file)
        (($# >= 2)) || { log ERROR "--model_config_file needs a value"; exit 2; }
        config="$2"
        shift
        ;;
    --rest_api_port=*)
        rest_port="${1#*=}"
        args+=("$1")
        ;;
    --rest_api_port)
        (($# >= 2)) || { log ERROR "--rest_api_port needs a value"; exit 2; }
        rest_port="$2"
        args+=("--rest_api_port=$2")
        shift
        ;;
    *) args+=("$1") ;;
    esac
    shift
done

mkdir -p "$state_dir"
printf '%s\n' "$rest_port" >"$state_dir/rest_api_port"

if [[ -n "$config" ]]; then
    root="$(pwd)"
    if [[ ! -r "$config" ]]; then
        # The usual cause in a container: the host folder mounted at the config's
        # folder is not readable by this user (a 0700 temp dir, say).
        log ERROR "cannot read --model_config_file=$config (working directory $root, running as uid $(id -u)); the folder mounted there must be readable by uid $(id -u): $(ls -ld "$(dirname "$config")" 2>&1)"
        exit 2
    fi
    sync_config
    log INFO "serving $config with base paths resolved under $root (copy: $resolved)"
    args+=("--model_config_file=$resolved")
    (
        trap 'exit 0' TERM INT
        while sleep "$sync_seconds"; do
            sync_config || log WARNING "cannot read $config; keeping the last good copy"
        done
    ) &
fi

exec "$server" "${args[@]}"
