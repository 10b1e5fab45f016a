# Real servers on loopback for the tests, sourced by scripts/test.sh. Each start_* installs what it
# needs from Debian's packages, starts the server in $PSM_SERVICES_DIR on a free port of 127.0.0.1,
# exports the address for the tests, and registers its stop in stop_services.
# shellcheck shell=bash

PSM_SERVICES_DIR=${PSM_SERVICES_DIR:-$(mktemp -d /tmp/openpsm-services.XXXXXX)}
chmod 755 "$PSM_SERVICES_DIR"
_psm_stops=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]}"
    if [ -z "${_psm_apt_updated:-}" ]; then
        apt-get update -qq
        _psm_apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# PostgreSQL (Debian's), trust auth on loopback only: PSM_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT
start_postgres() {
    apt_install postgresql
    local bin dir port
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    dir="$PSM_SERVICES_DIR/pg"
    port=$(free_port)
    mkdir -p "$dir" && chown postgres: "$dir"
    su postgres -c "$bin/initdb -D $dir/data -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
    su postgres -c "$bin/pg_ctl -D $dir/data -l $dir/pg.log -o '-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300' -w start" >/dev/null
    export PSM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port"
    _psm_stops+=("su postgres -c '$bin/pg_ctl -D $dir/data -m fast -w stop' >/dev/null")
    echo "postgresql on 127.0.0.1:$port"
}

stop_services() {
    local stop
    for stop in "${_psm_stops[@]}"; do
        eval "$stop" || true
    done
    _psm_stops=()
    rm -rf "$PSM_SERVICES_DIR"
}

# Headless Chromium (Debian's) and playwright-core (npm, from web/package-lock.json).
ensure_browser() {
    apt_install chromium
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
}
