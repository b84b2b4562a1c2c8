#!/usr/bin/env bash
# The main job: sets everything up, brings up the local lab, and runs
# `pulumi preview --diff` then `pulumi up` of examples/basic against it, with a
# file:// backend (examples/<name>/.pulumi-state, stack "lab").
#
#   bash scripts/demo.sh                  preview + up of examples/basic
#   EXAMPLE=<name> bash scripts/demo.sh   another example (any directory under examples/)
#   bash scripts/demo.sh down             `pulumi destroy` of what the demo made (or DEMO_DOWN=1)
#
# Setup steps print one line each (logs in .logs/); Pulumi's output is Pulumi's own.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"

example_name=${EXAMPLE:-basic}
example="$root/examples/$example_name"
[ -f "$example/Pulumi.yaml" ] || { echo "demo: no example '$example_name' (one of: $(ls examples | tr '\n' ' '))" >&2; exit 2; }
down=${DEMO_DOWN:-}
case ${1:-} in
down) down=1 ;;
"") ;;
*) echo "usage: [EXAMPLE=<name>] bash scripts/demo.sh [down]" >&2; exit 2 ;;
esac
prefix=""
[ "$example_name" = basic ] || prefix="EXAMPLE=$example_name "

bash scripts/setup.sh
STEP_TAG=demo
source scripts/progress.sh

# Every example uses the lab's volume labvol on 127.0.0.1, and libvirt allows one netfs pool
# per Gluster volume and host: one example's demo at a time.
has_resources() { # STATE_DIR: does stack "lab" in this file:// backend hold resources?
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = path.join(process.argv[1], ".pulumi", "stacks");
    let n = 0;
    for (const project of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const f = path.join(dir, project, "lab.json");
      if (!fs.existsSync(f)) continue;
      const res = JSON.parse(fs.readFileSync(f, "utf8")).checkpoint?.latest?.resources ?? [];
      n += res.filter((r) => !r.type.startsWith("pulumi:")).length;
    }
    process.exit(n > 0 ? 0 : 1)' "$1"
}
if [ -z "$down" ]; then
  for other in examples/*/; do
    other=${other%/}
    other=${other#examples/}
    [ "$other" != "$example_name" ] && has_resources "examples/$other/.pulumi-state" || continue
    other_prefix=""
    [ "$other" = basic ] || other_prefix="EXAMPLE=$other "
    echo "demo: the demo of examples/$other is up (its pool uses the lab's Gluster volume too); remove it first: ${other_prefix}bash scripts/demo.sh down" >&2
    exit 1
  done
fi

# The lab; multi-host needs its second hypervisor (docs/lab.md), which `up` adds to a running lab.
want_hosts=1
[ "$example_name" = multi-host ] && want_hosts=2
lab_json=$(node dist/sdk/cli.js lab status 2>/dev/null) || lab_json=
hosts_in() { node -e 'console.log(JSON.parse(process.argv[1]).hypervisors.length)' "$1"; }
if [ -z "$lab_json" ] || [ "$(hosts_in "$lab_json")" -lt "$want_hosts" ]; then
  lab_up() {
    if [ "$want_hosts" = 2 ]; then GLUSTER_LIBVIRT_LAB_HOSTS=2 node dist/sdk/cli.js lab up >"$LOG_DIR/lab.json"
    else node dist/sdk/cli.js lab up >"$LOG_DIR/lab.json"; fi
  }
  STEP_HINT="the first time it installs ~190 Debian packages: 1-3 min" \
    run_step lab-up "lab up: sshd, glusterd, libvirtd, 2 VMs on this machine" lab_up
  lab_json=$(<"$LOG_DIR/lab.json")
else
  note "lab: already up"
fi
lab() { node -e 'const l=JSON.parse(process.argv[1]); console.log(process.argv[2].split(".").reduce((o,k)=>o[k],l))' "$lab_json" "$1"; }

cd "$example"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-lab-demo}"
export PULUMI_BACKEND_URL="file://$example/.pulumi-state"

if [ -n "$down" ]; then
  if ! has_resources "$example/.pulumi-state"; then
    note "examples/$example_name: nothing to remove (no resources in $example/.pulumi-state)"
    exit 0
  fi
  [ -d node_modules/pulumi-gluster-libvirt ] || run_step demo-npm "npm install in examples/$example_name" npm install --no-package-lock --no-audit --no-fund
  pulumi stack select lab
  pulumi destroy --yes --skip-preview
  echo "demo: removed what examples/$example_name made. The lab keeps running (sshd, glusterd, libvirtd, its VMs); stop it with: bash scripts/lab.sh down" >&2
  exit 0
fi

# Examples depend on the packed package, exactly as a user's project would.
run_step demo-pack "packing the package (npm pack -> dist/pulumi-gluster-libvirt.tgz)" bash "$root/scripts/pack.sh"
rm -rf node_modules/pulumi-gluster-libvirt
run_step demo-npm "npm install in examples/$example_name" npm install --no-package-lock --no-audit --no-fund

demo_config() {
  mkdir -p .pulumi-state
  pulumi stack select lab 2>/dev/null || pulumi stack init lab
  # The lab's address and credentials go into stack config, as they would for real hosts.
  local server volume host
  server=$(lab gluster.servers.0) volume=$(lab gluster.volume) host=$(lab ssh.host)
  pulumi config set gluster-libvirt:port "$(lab ssh.port)"
  pulumi config set gluster-libvirt:user "$(lab ssh.user)"
  pulumi config set gluster-libvirt:privateKeyPath "$(lab ssh.privateKeyPath)"
  pulumi config set gluster-libvirt:knownHostsFile "$(lab ssh.knownHostsFile)"
  case $example_name in
  basic | fuse-only)
    pulumi config set-all --plaintext "host=$host" --plaintext "glusterServer=$server" \
      --plaintext "glusterVolume=$volume" --plaintext "vm=$(lab domains.running)"
    ;;
  golden-image)
    # a small empty qcow2 as the base image (see the example's README for a real one)
    [ -f .pulumi-state/demo-golden.qcow2 ] || qemu-img create -q -f qcow2 .pulumi-state/demo-golden.qcow2 64M
    pulumi config set-all --path --plaintext "host=$host" --plaintext "glusterServer=$server" \
      --plaintext "glusterVolume=$volume" --plaintext "baseImage=$example/.pulumi-state/demo-golden.qcow2" \
      --plaintext "vms[0]=$(lab domains.running)" --plaintext "vms[1]=$(lab domains.stopped)"
    ;;
  multi-host)
    # hypervisor 2's known_hosts holds both hosts' keys (docs/lab.md)
    pulumi config set gluster-libvirt:knownHostsFile "$(lab hypervisors.1.ssh.knownHostsFile)"
    pulumi config set-all --path --plaintext "hypervisors[0]=$host" --plaintext "hypervisors[1]=$(lab hypervisors.1.ssh.host)" \
      --plaintext "glusterServers[0]=$server" --plaintext "glusterVolume=$volume"
    ;;
  stack-config)
    # the layout as data (the example's Pulumi.example.yaml, on the lab)
    local p="layout.hosts[\"$host\"]"
    pulumi config set-all --path \
      --plaintext "$p.pools.layout_gluster.volume=$volume" --plaintext "$p.pools.layout_gluster.servers[0]=$server" \
      --plaintext "$p.pools.layout_gluster.images[\"golden.qcow2\"].capacity=1GiB" \
      --plaintext "$p.pools.layout_gluster.images[\"vm-root.qcow2\"].backing=golden.qcow2" \
      --plaintext "$p.pools.layout_gluster.images[\"vm-data.img\"].capacity=256MiB" \
      --plaintext "$p.disks[\"$(lab domains.running)\"].sdb.image=layout_gluster/vm-root.qcow2" \
      --plaintext "$p.disks[\"$(lab domains.running)\"].sdc.image=layout_gluster/vm-data.img" \
      --plaintext "$p.disks[\"$(lab domains.running)\"].sdc.access=fuse"
    ;;
  *)
    echo "demo: no lab config for examples/$example_name in scripts/demo.sh; examples/$example_name/README.md has the lab's steps" >&2
    return 1
    ;;
  esac
}
run_step demo-config "stack lab of examples/$example_name: the lab's address and credentials as stack config" demo_config

pulumi stack select lab
pulumi preview --diff
pulumi up --yes --skip-preview
cat >&2 <<EOF

demo: the lab now has what examples/$example_name declares (stack "lab", state in examples/$example_name/.pulumi-state).
demo: remove it with:   ${prefix}bash scripts/demo.sh down
demo: the lab keeps running (sshd on 127.0.0.1:2222, glusterd, libvirtd, its VMs); stop it with:   bash scripts/lab.sh down
EOF
