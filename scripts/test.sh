#!/usr/bin/env bash
# The whole test suite: formatting, lints, the build of every crate (the tests load the example
# plugin libraries), every test, and cargo-deny. Installs what it needs; run from anywhere.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { printf '\n== %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "build (the example plugin libraries the integration tests load)"
cargo build --workspace
step "servers the tests use (loopback only)"
source scripts/services.sh
results=$(mktemp)
trap 'stop_services; rm -f "$results"' EXIT
apt_install oathtool
start_postgres
start_sshd
start_telnetd
start_samba_ad
start_xrdp
ensure_browser
step "tests"
cargo test --workspace --no-fail-fast 2>&1 | tee "$results"
step "cargo-deny (bans, licenses, sources)"
if ! command -v cargo-deny >/dev/null; then
    cargo install --locked cargo-deny
fi
# The advisory database is fetched from the network, which these machines do not reach; the
# ignored advisories are documented in deny.toml.
cargo deny check bans licenses sources

# One closing line for the whole run (cargo test prints one result line per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
