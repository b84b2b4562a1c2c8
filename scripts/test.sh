#!/usr/bin/env bash
# The test command: sets everything up (Node, npm packages, build, Pulumi CLI, lab),
# removes what killed test runs left on the lab, runs the unit, integration and e2e
# layers, then the harness check that the tests do not depend on the disks the lab's VMs
# carry (scripts/check-lab-independence.sh), and stops the lab if it started it.
# Setup steps print one line each (logs in .logs/); the test output is node --test's own.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
bash scripts/setup.sh
STEP_TAG=test
source scripts/progress.sh

lab() { node dist/sdk/cli.js lab "$@"; }
# The multihost tests need the lab's hypervisor 2 (docs/lab.md): bring it up with the lab,
# or add it to a running lab and remove it again at the end.
two_hosts() { node -e 'process.exit(JSON.parse(require("fs").readFileSync(0, "utf8")).hypervisors?.length >= 2 ? 0 : 1)'; }
lab_up2() { GLUSTER_LIBVIRT_LAB_HOSTS=2 node dist/sdk/cli.js lab up >/dev/null; }
started_lab= added_host2=
if ! status=$(lab status 2>/dev/null); then
  STEP_HINT="the first time it installs ~190 Debian packages: 1-3 min" run_step lab-up "lab up (2 hypervisors)" lab_up2
  started_lab=1
elif ! two_hosts <<<"$status"; then
  run_step lab-up "lab: adding hypervisor 2" lab_up2
  added_host2=1
else
  note "lab: up, with hypervisor 2"
fi
stop_lab() {
  if [ -n "${KEEP_LAB:-}" ]; then return 0; fi
  if [ -n "$started_lab" ]; then run_step lab-down "lab down (KEEP_LAB=1 keeps it)" lab down || true
  elif [ -n "$added_host2" ]; then run_step lab-up "lab: removing hypervisor 2 again" env GLUSTER_LIBVIRT_LAB_HOSTS=1 node dist/sdk/cli.js lab up || true; fi
}
trap stop_lab EXIT

run_step leftovers "removing what killed test runs left on the lab" bash scripts/test-leftovers.sh

t0=$SECONDS suite=0 check=0
node --test --test-concurrency=1 --test-timeout=900000 \
  'dist/test/unit/**/*.test.js' 'dist/test/integration/**/*.test.js' 'dist/test/e2e/**/*.test.js' \
  'dist/test/faults/**/*.test.js' || suite=$?
note "suite took $((SECONDS - t0)) s ($([ "$suite" = 0 ] && echo passed || echo "FAILED, exit $suite"))"

# The harness check last (also after a failed suite: its verdict is its own): it attaches
# disks to the shared lab VMs for a few minutes.
t0=$SECONDS
bash scripts/check-lab-independence.sh || check=$?
note "lab-independence check took $((SECONDS - t0)) s ($([ "$check" = 0 ] && echo passed || echo "FAILED, exit $check"))"
[ "$suite" = 0 ] && [ "$check" = 0 ]
