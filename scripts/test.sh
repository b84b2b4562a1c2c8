#!/usr/bin/env bash
# The test command: sets everything up (Node, npm packages, build, Pulumi CLI, lab),
# runs the unit, integration and e2e layers, and stops the lab if it started it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
bash scripts/setup.sh

lab() { node dist/sdk/cli.js lab "$@"; }
started_lab=
if ! lab status >/dev/null 2>&1; then
  t0=$SECONDS
  lab up >/dev/null
  started_lab=1
  echo "test: lab up took $((SECONDS - t0)) s" >&2
fi
stop_lab() { if [ -n "$started_lab" ] && [ -z "${KEEP_LAB:-}" ]; then lab down >/dev/null || true; fi; }
trap stop_lab EXIT

t0=$SECONDS
node --test --test-concurrency=1 --test-timeout=900000 \
  'dist/test/unit/**/*.test.js' 'dist/test/integration/**/*.test.js' 'dist/test/e2e/**/*.test.js'
echo "test: suite took $((SECONDS - t0)) s" >&2
