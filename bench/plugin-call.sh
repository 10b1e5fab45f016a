#!/usr/bin/env bash
# One plugin call, built-in vs shared library (criterion), then the ratios from the same run.
# Usage: bench/plugin-call.sh   (from the repository root; release build, a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p openpsm-example-mfa
cargo bench -p openpsm-gateway --bench plugin_call -- "$@"
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion/mfa_verify")
est = {}
for name in ["builtin", "library", "builtin_guarded", "library_guarded"]:
    f = root / name / "new" / "estimates.json"
    est[name] = json.loads(f.read_text())["median"]["point_estimate"]  # nanoseconds
print()
print("median per call (ns):", {k: round(v) for k, v in est.items()})
print(f"library / builtin                 = {est['library'] / est['builtin']:.1f}x")
print(f"library_guarded / builtin_guarded = {est['library_guarded'] / est['builtin_guarded']:.1f}x")
print(f"builtin_guarded / builtin         = {est['builtin_guarded'] / est['builtin']:.2f}x")
PY
