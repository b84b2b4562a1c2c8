#!/usr/bin/env bash
# The test command: sets everything up (Node, npm packages, build, Pulumi CLI, lab),
# runs the unit, integration and e2e layers, and stops the lab if it started it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
bash scripts/setup.sh

lab() { node dist/sdk/cli.js lab "$@"; }
# The multihost tests need the lab's hypervisor 2 (docs/lab.md): bring it up with the lab,
# or add it to a running lab and remove it again at the end.
two_hosts() { node -e 'process.exit(JSON.parse(require("fs").readFileSync(0, "utf8")).hypervisors?.length >= 2 ? 0 : 1)'; }
started_lab= added_host2=
if ! status=$(lab status 2>/dev/null); then
  t0=$SECONDS
  GLUSTER_LIBVIRT_LAB_HOSTS=2 lab up >/dev/null
  started_lab=1
  echo "test: lab up (2 hypervisors) took $((SECONDS - t0)) s" >&2
elif ! two_hosts <<<"$status"; then
  t0=$SECONDS
  GLUSTER_LIBVIRT_LAB_HOSTS=2 lab up >/dev/null
  added_host2=1
  echo "test: adding the lab's hypervisor 2 took $((SECONDS - t0)) s" >&2
fi
stop_lab() {
  if [ -n "${KEEP_LAB:-}" ]; then return 0; fi
  if [ -n "$started_lab" ]; then lab down >/dev/null || true
  elif [ -n "$added_host2" ]; then GLUSTER_LIBVIRT_LAB_HOSTS=1 lab up >/dev/null || true; fi
}
trap stop_lab EXIT

t0=$SECONDS
node --test --test-concurrency=1 --test-timeout=900000 \
  'dist/test/unit/**/*.test.js' 'dist/test/integration/**/*.test.js' 'dist/test/e2e/**/*.test.js' \
  'dist/test/faults/**/*.test.js'
echo "test: suite took $((SECONDS - t0)) s" >&2
