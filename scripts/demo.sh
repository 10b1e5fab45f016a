#!/usr/bin/env bash
# The demo: a real sshd on 127.0.0.1:2222 with an account whose password lives only in the
# gateway's vault, the gateway on its embedded defaults on http://127.0.0.1:8080, and a start link
# that opens a live terminal in the browser. Installs what it needs; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo (Rust) is required" >&2; exit 1; }
source scripts/services.sh
trap stop_services EXIT

PERSON=6f1c2b8e-3a4d-4e5f-8a9b-0c1d2e3f4a5b      # the embedded demo directory's person,
COMPUTER=11111111-2222-4333-8444-555555555555    # computer (127.0.0.1:2222, ssh)
POLICY=0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d      # and policy
MASTER=demo-master-password

echo "== building the gateway and installing the browser files"
cargo build -q -p openpsm-gateway --bin openpsm
(cd web && npm ci --no-audit --no-fund --loglevel=error)
psm=target/debug/openpsm

echo "== starting sshd on 127.0.0.1:2222 with the account psmdemo"
start_sshd 2222 psmdemo

echo "== putting the account's password in the vault (it is shown nowhere)"
echo "$MASTER" | $psm vault set-master --person "$PERSON" >/dev/null
for id in $($psm vault list --computer "$COMPUTER" --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(e["id"] for e in json.load(sys.stdin) if e["label"] == "demo account"))'); do
    $psm vault remove "$id" >/dev/null
done
printf '%s\n' "$PSM_TEST_SSHD_PASSWORD" | $psm vault add --computer "$COMPUTER" --label "demo account" --user psmdemo >/dev/null
unset PSM_TEST_SSHD_PASSWORD

link=$($psm link --person "$PERSON" --computer "$COMPUTER" --policy "$POLICY" --ttl 600 2>/dev/null)
cat <<MSG

Open this link in a browser on this machine within 10 minutes (it works once):

  $link

Accept the recording agreement and enter the master password: $MASTER
A new link: $psm link --person $PERSON --computer $COMPUTER --policy $POLICY

MSG
$psm serve "$@"
