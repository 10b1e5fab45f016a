#!/usr/bin/env bash
# Runs the gateway with its embedded defaults on http://127.0.0.1:8080 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo (Rust) is required" >&2; exit 1; }
cargo build -p openpsm-gateway --bin openpsm
exec target/debug/openpsm serve "$@"
