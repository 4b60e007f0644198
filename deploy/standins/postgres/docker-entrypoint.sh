#!/bin/bash
# The stand-in's entrypoint: the part of the official postgres image's contract
# that tierkit's compose stack uses. On a first start (empty PGDATA) it runs
# initdb for POSTGRES_USER with the password from POSTGRES_PASSWORD or
# POSTGRES_PASSWORD_FILE, creates POSTGRES_DB, and allows password logins
# (scram-sha-256) from the network; then it execs postgres listening on all
# addresses. Started as root it drops to the postgres user first.
set -Eeuo pipefail

log() { printf '%s - %s - postgres-standin: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$1" "$2" >&2; }

if [[ "${1:-}" == -* ]]; then
    set -- postgres "$@"
fi
if [[ "${1:-}" != postgres ]]; then
    exec "$@"
fi

if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
password="${POSTGRES_PASSWORD:-}"
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
    [[ -z "$password" ]] || { log ERROR "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set"; exit 1; }
    password="$(<"$POSTGRES_PASSWORD_FILE")"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    [[ -n "$password" ]] || { log ERROR "database is uninitialized and no POSTGRES_PASSWORD[_FILE] is set"; exit 1; }
    log INFO "initializing $PGDATA for user $user, database $database"
    pwfile="$(mktemp)"
    printf '%s\n' "$password" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    if [[ "$database" != postgres ]]; then
        postgres --single -D "$PGDATA" -j postgres >/dev/null <<<"CREATE DATABASE \"$database\" OWNER \"$user\";"
    fi
    log INFO "initialized"
fi

exec "$@" -c listen_addresses='*'
