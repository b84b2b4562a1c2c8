#!/usr/bin/env bash
# The main job: sets everything up, brings up the local lab, and runs
# `pulumi preview --diff` then `pulumi up` of examples/basic against it, with a
# file:// backend. EXAMPLE=<dir under examples/> picks another example.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
bash scripts/setup.sh
lab_json=$(node dist/sdk/cli.js lab status 2>/dev/null || node dist/sdk/cli.js lab up)
lab() { node -e 'const l=JSON.parse(process.argv[1]); console.log(process.argv[2].split(".").reduce((o,k)=>o[k],l))' "$lab_json" "$1"; }

# Examples depend on the packed package, exactly as a user's project would.
bash scripts/pack.sh >/dev/null

example="$root/examples/${EXAMPLE:-basic}"
cd "$example"
rm -rf node_modules/pulumi-gluster-libvirt
npm install --no-package-lock --no-audit --no-fund --silent
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-lab-demo}"
export PULUMI_BACKEND_URL="file://$example/.pulumi-state"
mkdir -p .pulumi-state
pulumi stack select lab 2>/dev/null || pulumi stack init lab
# The lab's address and credentials go into stack config, as they would for real hosts.
pulumi config set host "$(lab ssh.host)"
pulumi config set gluster-libvirt:port "$(lab ssh.port)"
pulumi config set gluster-libvirt:user "$(lab ssh.user)"
pulumi config set gluster-libvirt:privateKeyPath "$(lab ssh.privateKeyPath)"
pulumi config set gluster-libvirt:knownHostsFile "$(lab ssh.knownHostsFile)"
pulumi config set glusterServer "$(lab gluster.servers.0)"
pulumi config set glusterVolume "$(lab gluster.volume)"
pulumi config set vm "$(lab domains.running)"
pulumi preview --diff
pulumi up --yes
echo "demo: the lab now has the example's pool, volume and disk; remove them with:" >&2
echo "  source scripts/env.sh && cd examples/${EXAMPLE:-basic} && PULUMI_CONFIG_PASSPHRASE=$PULUMI_CONFIG_PASSPHRASE PULUMI_BACKEND_URL=$PULUMI_BACKEND_URL pulumi destroy" >&2
