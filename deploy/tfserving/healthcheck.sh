#!/usr/bin/env bash
# Docker HEALTHCHECK of the graph tier: healthy when every model named in the
# served config has a version in state AVAILABLE, the same condition the logic
# tier's /readyz waits for. A bare port check would pass while a model failed
# to load.
#
# The tensorflow/serving image ships no curl or wget, so this speaks HTTP/1.1
# over bash's /dev/tcp to TF Serving's REST status endpoint
# (GET /v1/models/<name>). It reads the REST port and the resolved config that
# entrypoint.sh recorded in TIERKIT_STATE_DIR (default /tmp/tierkit).
set -uo pipefail

state_dir="${TIERKIT_STATE_DIR:-/tmp/tierkit}"
host="${TIERKIT_HEALTH_HOST:-127.0.0.1}"
read_timeout="${TIERKIT_HEALTH_TIMEOUT:-3}"
config="$state_dir/models.config"
port="$(cat "$state_dir/rest_api_port" 2>/dev/null || echo 8501)"

fail() {
    echo "unhealthy: $*" >&2
    exit 1
}

[[ "$port" =~ ^[0-9]+$ && "$port" != 0 ]] ||
    fail "the REST API is off (--rest_api_port=0); this check needs it"

models=()
if [[ -r "$config" ]]; then
    # ModelConfig.name is the only field called `name` in a ModelServerConfig.
    mapfile -t models < <(
        grep -oE '(^|[^A-Za-z0-9_])name[[:space:]]*:[[:space:]]*"[^"]*"' "$config" |
            sed -E 's/.*"([^"]*)"$/\1/'
    )
elif [[ -n "${MODEL_NAME:-}" ]]; then
    models=("$MODEL_NAME") # started without --model_config_file
fi
((${#models[@]})) || fail "no model named in $config"

# Print the raw HTTP reply to GET /v1/models/$1.
model_status() {
    exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || return 1
    printf 'GET /v1/models/%s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' \
        "$1" "$host" "$port" >&3
    timeout "$read_timeout" cat <&3
    exec 3<&-
    return 0
}

for model in "${models[@]}"; do
    reply="$(model_status "$model")" || fail "nothing answers on $host:$port"
    status_line="${reply%%$'\r'*}"
    [[ "$status_line" =~ ^HTTP/1\.[01]\ 200 ]] ||
        fail "model $model: ${status_line:-no answer}"
    grep -qE '"state"[[:space:]]*:[[:space:]]*"AVAILABLE"' <<<"$reply" ||
        fail "model $model has no AVAILABLE version"
done
echo "healthy: ${models[*]}"
