#!/usr/bin/env bash
# Removes what killed test runs left on the lab: libvirt domains and pools, guests' sockets
# and console logs, FUSE mounts, Gluster test volumes and their bricks. scripts/test.sh
# runs it before the suite.
#
# Tests name everything with uniqueName() (test/helpers/local.ts): <prefix>-<pid>-<5 chars>
# (pools and Gluster volumes with `_` for `-`), where <pid> is the test process that made
# it. An object is a leftover only when its name has that shape AND that process is gone,
# so a test running right now (in this or another checkout) keeps everything it has. The
# lab's own domains and volume (lab-running, lab-stopped, lab<K>-*, labvol) and a demo's
# pool, images and disks (examples' names, e.g. primary_gluster) never have that shape.
#
# Usage: bash scripts/test-leftovers.sh [--dry-run]   (as root, lab up; prints what it removes)
set -euo pipefail

dry=""
[[ ${1:-} == --dry-run ]] && dry=1
state=${GLUSTER_LIBVIRT_LAB_DIR:-/var/lib/gluster-libvirt-lab}
uri=qemu:///system
removed=0

say() { printf 'leftovers: %s\n' "$*" >&2; }
# do_ CMD...: run it (output dropped: the object may be half gone), or only say it with --dry-run
do_() {
  if [[ -n $dry ]]; then say "would run: $*"; else "$@" >/dev/null 2>&1 || true; fi
}

# leftover NAME: true when NAME is a test object whose creating process is gone
leftover() {
  [[ $1 =~ [-_]([0-9]+)[-_][a-z0-9]{5}$ ]] || return 1
  local pid=${BASH_REMATCH[1]}
  [[ ! -d /proc/$pid ]]
}

# clean_libvirt PREFIX...: domains, then pools, of one libvirt (PREFIX: how to reach it)
clean_libvirt() {
  local name
  while read -r name; do
    [[ -n $name ]] && leftover "$name" || continue
    say "domain $name"
    do_ "$@" timeout 60 virsh -q -c "$uri" destroy "$name"
    do_ "$@" timeout 60 virsh -q -c "$uri" undefine "$name"
    removed=$((removed + 1))
  done < <("$@" timeout 60 virsh -q -c "$uri" list --all --name 2>/dev/null)
  while read -r name; do
    [[ -n $name ]] && leftover "$name" || continue
    say "pool $name"
    do_ "$@" timeout 60 virsh -q -c "$uri" pool-destroy "$name"
    do_ "$@" timeout 60 virsh -q -c "$uri" pool-undefine "$name"
    removed=$((removed + 1))
  done < <("$@" timeout 60 virsh -q -c "$uri" pool-list --all --name 2>/dev/null)
}

[[ $(id -u) -eq 0 ]] || { say "needs root (skipped)"; exit 0; }
command -v virsh >/dev/null || { say "no virsh: nothing to clean"; exit 0; }

# Disks that a killed scripts/check-lab-independence.sh left on the lab's own VMs: their
# images are <state>/independence/<domain>-<target>-<pid>.img.
for dom in lab-running lab-stopped; do
  for scope in --inactive ""; do
    while read -r target src; do
      [[ $src =~ ^$state/independence/.*-([0-9]+)\.img$ && ! -d /proc/${BASH_REMATCH[1]} ]] || continue
      say "disk $target ($src) on $dom${scope:+ (definition)}"
      if [[ -n $scope ]]; then do_ timeout 60 virsh -q -c "$uri" detach-disk "$dom" "$target" --config
      else do_ timeout 60 virsh -q -c "$uri" detach-disk "$dom" "$target" --live; fi
      do_ rm -f "$src"
      removed=$((removed + 1))
    done < <(timeout 60 virsh -q -c "$uri" domblklist $scope "$dom" 2>/dev/null)
  done
done

clean_libvirt env
# agent sockets and console logs of guests (test/helpers/guest.ts): <name>.agent.sock, <name>.console.log
for f in "$state"/guest/run/*; do
  [[ -e $f ]] || continue
  n=${f##*/}
  leftover "${n%%.*}" || continue
  say "guest file $f"
  do_ rm -f "$f"
  removed=$((removed + 1))
done
# hypervisors 2..10 (docs/lab.md): each its own libvirtd in the namespace its holder keeps
namespaces=()
for pidfile in "$state"/host*/ns.pid; do
  if ns=$(tr -dc '0-9' <"$pidfile" 2>/dev/null) && [[ -n $ns && -d /proc/$ns ]]; then
    namespaces+=("$ns")
    clean_libvirt nsenter -m -t "$ns"
  fi
done

# Gluster test volumes: only those with their bricks in the lab's state dir (<state>/bricks/),
# first unmounting their FUSE mounts (host 1's, and inside every further hypervisor's namespace).
if command -v gluster >/dev/null; then
  while read -r vol; do
    [[ -n $vol ]] && leftover "$vol" || continue
    timeout 60 gluster --mode=script volume info "$vol" 2>/dev/null | grep -q "^Brick[0-9]*: [^:]*:$state/bricks/" || continue
    say "gluster volume $vol"
    for prefix in "" "${namespaces[@]/#/nsenter -m -t }"; do
      while read -r target; do
        [[ -n $target ]] && do_ $prefix umount -l "$target"
      done < <($prefix findmnt -rn -t fuse.glusterfs -o TARGET,SOURCE 2>/dev/null | awk -v v="$vol" '$2 ~ (":/" v "$") {print $1}')
    done
    do_ timeout 60 gluster --mode=script volume stop "$vol" force
    do_ timeout 60 gluster --mode=script volume delete "$vol"
    removed=$((removed + 1))
  done < <(timeout 60 gluster --mode=script volume list 2>/dev/null)
fi
for brick in "$state"/bricks/*; do
  [[ -d $brick ]] && leftover "${brick##*/}" || continue
  # a brick of a volume that still exists stays (its volume was kept above for a reason)
  timeout 60 gluster --mode=script volume info "${brick##*/}" >/dev/null 2>&1 && continue
  say "brick directory $brick"
  do_ rm -rf "$brick"
done
if ((removed > 0)); then
  if [[ -n $dry ]]; then say "would remove $removed leftover object(s) of earlier test runs"; else say "removed $removed leftover object(s) of earlier test runs"; fi
fi
