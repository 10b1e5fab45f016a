#!/usr/bin/env bash
# Graphical-session benchmark (release build, real xrdp with an xterm desktop, real sshd), as in
# BENCHMARKS.md: one session through the display channel, idle for a while (expected: nothing
# sent), then a scripted xterm scroll: frames per second delivered to the browser, bytes per second
# and per frame, gateway CPU per frame. The baseline, same run: the same scroll through an SSH
# terminal session to the same account (bytes and gateway CPU per second).
# Usage: bench/rdp.sh [idle_secs] [scroll_secs]      (defaults: 10 s idle, 10 s scroll)
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${1:-10}
SCROLL=${2:-10}
source scripts/services.sh
GW=""
trap '[ -n "$GW" ] && kill "$GW" 2>/dev/null; stop_services' EXIT

cargo build -q --release -p openpsm-gateway -p psm-load
start_sshd >/dev/null
start_xrdp >/dev/null
W="$PSM_SERVICES_DIR/gateway"
mkdir -p "$W"
PERSON=a11ce000-0000-4000-8000-000000000001 RDP=c0000000-0000-4000-8000-0000000000e1
SSH=c0000000-0000-4000-8000-0000000000e3 POLICY=f0000000-0000-4000-8000-0000000000e2
cat > "$W/directory.toml" <<DIR
[[person]]
id = "$PERSON"
login = "bench"
name = "Bench"
[[computer]]
id = "$RDP"
computer_id = "1"
name = "xrdp"
hosts = ["127.0.0.1"]
port = $PSM_TEST_XRDP_PORT
modes = ["rdp"]
[[computer]]
id = "$SSH"
computer_id = "2"
name = "sshd"
hosts = ["127.0.0.1"]
port = $PSM_TEST_SSHD_PORT
modes = ["ssh"]
[[policy]]
id = "$POLICY"
name = "bench"
computers = ["$RDP", "$SSH"]
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
CONF
psm="target/release/openpsm --config $W/gw.toml"
echo "bench-master-pw" | $psm vault set-master --person $PERSON >/dev/null
for c in $RDP $SSH; do
    printf '%s\n' "$PSM_TEST_SSHD_PASSWORD" | $psm vault add --computer $c --label bench --user "$PSM_TEST_SSHD_USER" >/dev/null
done
OPENPSM_SERVER__LISTEN=127.0.0.1:0 target/release/openpsm --config "$W/gw.toml" serve > "$W/out" 2> "$W/err" &
GW=$!
for _ in $(seq 100); do grep -q listening "$W/out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's#openpsm listening on http://##p' "$W/out")
load() { target/release/psm-load --gateway "$ADDR" --data-dir "$W/data" --person $PERSON --policy $POLICY --master bench-master-pw "$@"; }

echo "== baseline: the scroll through an SSH terminal session, $SCROLL s"
terminal=$(load --computer $SSH terminal-scroll "$SCROLL" "$GW")
echo "$terminal"
echo "== graphical session: idle $IDLE s, then the scroll in the remote xterm, $SCROLL s"
display=$(load --computer $RDP display "$IDLE" "$SCROLL" "$GW")
echo "$display"
python3 - "$terminal" "$display" <<'PY'
import json, sys
t = json.loads(sys.argv[1]); d = json.loads(sys.argv[2]); s = d["scroll"]; i = d["idle"]
print(f"first picture {d['first_picture_ms']} ms after the tunnel opened")
print(f"idle {i['seconds']:.0f} s: {i['frames']} frames, {i['bytes']} bytes sent")
print(f"scroll: {s['fps']:.1f} frames/s, {s['bytes_per_s']/1e3:.0f} kB/s, {s['bytes_per_frame']/1e3:.1f} kB/frame, "
      f"gateway CPU {s['gateway_cpu_ms_per_frame']:.2f} ms/frame ({s['gateway_cpu_ms']/s['seconds']/10:.0f}% of a core)")
print(f"terminal baseline: {t['bytes_per_s']/1e3:.0f} kB/s, gateway CPU {t['gateway_cpu_ms']/t['seconds']/10:.0f}% of a core")
print(f"ratios display/terminal: bytes per second {s['bytes_per_s']/t['bytes_per_s']:.2f}, "
      f"gateway CPU per second {(s['gateway_cpu_ms']/s['seconds'])/max(t['gateway_cpu_ms']/t['seconds'], 1e-9):.2f}")
PY
