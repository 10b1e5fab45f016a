#!/usr/bin/env bash
# Session benchmarks (release build, real sshd on loopback), figures as in BENCHMARKS.md:
#   1. terminal throughput through the gateway vs a direct ssh client, same run, as a ratio;
#   2. start link to first shell byte, p50/p99 over many launches;
#   3. gateway memory per idle session at 100 and 500 concurrent sessions.
# Usage: bench/sessions.sh [launches] [bytes]      (defaults: 200 launches, 200 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
LAUNCHES=${1:-200}
BYTES=${2:-200000000}
source scripts/services.sh
GW=""
trap '[ -n "$GW" ] && kill "$GW" 2>/dev/null; stop_services' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build -q --release -p openpsm-gateway -p psm-load
start_sshd >/dev/null
W="$PSM_SERVICES_DIR/gateway"
mkdir -p "$W"
PERSON=a11ce000-0000-4000-8000-000000000001 COMPUTER=c0000000-0000-4000-8000-0000000000e1 POLICY=f0000000-0000-4000-8000-0000000000e2
cat > "$W/directory.toml" <<DIR
[[person]]
id = "$PERSON"
login = "bench"
name = "Bench"
[[computer]]
id = "$COMPUTER"
computer_id = "1"
name = "sshd"
hosts = ["127.0.0.1"]
port = $PSM_TEST_SSHD_PORT
modes = ["ssh"]
[[policy]]
id = "$POLICY"
name = "bench"
computers = ["$COMPUTER"]
max_session_minutes = 600
[[policy.access_levels]]
id = "user"
label = "User"
approved = ["$PERSON"]
DIR
cat > "$W/gw.toml" <<CONF
data_dir = "$W/data"
[directory]
file = "$W/directory.toml"
[log]
level = "warn"
[flows]
person_failures_per_15min = 100
CONF
psm="target/release/openpsm --config $W/gw.toml"
echo "bench-master-pw" | $psm vault set-master --person $PERSON >/dev/null
printf '%s\n' "$PSM_TEST_SSHD_PASSWORD" | $psm vault add --computer $COMPUTER --label bench --user "$PSM_TEST_SSHD_USER" >/dev/null
# A personal credential is not leased: the idle sessions use it side by side.
PERSONAL=$(printf 'bench-master-pw\n%s\n' "$PSM_TEST_SSHD_PASSWORD" | $psm vault add --computer $COMPUTER --label personal --user "$PSM_TEST_SSHD_USER" --owner $PERSON)
OPENPSM_SERVER__LISTEN=127.0.0.1:0 target/release/openpsm --config "$W/gw.toml" serve > "$W/out" 2> "$W/err" &
GW=$!
for _ in $(seq 100); do grep -q listening "$W/out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's#openpsm listening on http://##p' "$W/out")
load() { target/release/psm-load --gateway "$ADDR" --data-dir "$W/data" --person $PERSON --computer $COMPUTER --policy $POLICY --master bench-master-pw "$@"; }
rss() { awk '/VmRSS/ {print $2}' /proc/$GW/status; }

echo "== throughput: $BYTES bytes of base64, through the gateway and directly"
through=$(load throughput "$BYTES")
start=$(date +%s.%N)
ssh -q -i "$PSM_TEST_SSHD_KEY" -p "$PSM_TEST_SSHD_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    "$PSM_TEST_SSHD_USER@127.0.0.1" "head -c $BYTES /dev/zero | base64 -w 0; echo" > "$W/direct.out"
end=$(date +%s.%N)
direct_bytes=$(stat -c %s "$W/direct.out")
python3 - "$through" "$start" "$end" "$direct_bytes" <<'PY'
import json, sys
g = json.loads(sys.argv[1]); secs = float(sys.argv[3]) - float(sys.argv[2]); d = int(sys.argv[4]) / secs / 1e6
print(f"gateway {g['mb_per_s']:.1f} MB/s, direct ssh {d:.1f} MB/s, ratio gateway/direct = {g['mb_per_s'] / d:.2f}")
PY

echo "== latency: start link to first shell byte, $LAUNCHES launches"
load latency "$LAUNCHES"

for n in 100 500; do
    echo "== memory: $n idle sessions"
    base=$(rss)
    load --credential "$PERSONAL" idle "$n" 30 > "$W/idle.out" &
    LP=$!
    for _ in $(seq 600); do grep -q open "$W/idle.out" 2>/dev/null && break; sleep 0.5; done
    sleep 2
    held=$(rss)
    echo "gateway RSS $base KiB -> $held KiB with $n sessions: $(( (held - base) / n )) KiB per idle session"
    wait $LP || true
    sleep 3
done
