#!/usr/bin/env bash
# gluster-libvirt lab: hypervisors 2 to 10 (and the setting that adds or removes them).
# Sourced by lab.sh after its helpers; not a command of its own. Hypervisor K (2..10) is the
# same mechanism with its own address (127.0.0.<K+1>), directory (<state>/host<K>) and
# domain names (lab<K>-running, lab<K>-stopped); hv_select K points the functions below at it.

readonly HV_MAX=10
HV="" HV_DIR="" HV_SSH_HOST="" HV_DOM_RUNNING="" HV_DOM_STOPPED=""
hv_select() {
  HV=$1
  HV_DIR=$STATE_DIR/host$1
  HV_SSH_HOST=$(hv_address "$1")
  HV_DOM_RUNNING=lab$1-running
  HV_DOM_STOPPED=lab$1-stopped
}
hv_address() { printf '127.0.0.%d\n' $(($1 + 1)); }

# The hypervisors beyond host 1 that are part of the lab, in order.
hv_list() {
  local k
  for ((k = 2; k <= HV_MAX; k++)); do [[ -d $STATE_DIR/host$k ]] && echo "$k"; done
  return 0
}

# Each is a further hypervisor on this machine without network namespaces (LAB.md):
# libvirtd and virtlogd in a private mount namespace with a tmpfs on /run and their own
# copies of libvirt's directories bind-mounted in place, plus an sshd in that namespace on
# its address. SSH to that address reaches a separate libvirt (its own domains, pools and
# FUSE mounts) next to the same glusterd. A `sleep` holds the namespace; every later
# command enters it with nsenter. Opt-in (GLUSTER_LIBVIRT_LAB_HOSTS=N); once made it is
# part of the lab — status checks it, a plain `up` repairs it — until `down`, or a smaller
# GLUSTER_LIBVIRT_LAB_HOSTS `up`, removes it.

readonly HV_BINDS=(/etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt)

# The copy of DIR that hypervisor $HV sees at DIR: /etc/libvirt -> <state>/host<K>/root/etc-libvirt.
hv_copy_of() {
  local d=${1#/}
  printf '%s/root/%s\n' "$HV_DIR" "${d//\//-}"
}

hv_ns_pid() { pid_of "$HV_DIR/ns.pid"; }

# The namespace holder runs, in a mount namespace other than ours.
hv_ns_alive() {
  pid_alive "$HV_DIR/ns.pid" sleep || return 1
  [[ $(readlink "/proc/$(hv_ns_pid)/ns/mnt" 2>/dev/null) != "$(readlink /proc/$$/ns/mnt)" ]]
}

in_hv() { nsenter -t "$(hv_ns_pid)" -m -- "$@"; }

# copy_dir_tree SRC DST: SRC's directories with their owners and modes, none of its files;
# not into pool mounts nor libvirt's per-domain directories.
copy_dir_tree() {
  local src=$1 dst=$2 d
  while IFS= read -r -d '' d; do
    mkdir -p "$dst/$d"
    chown --reference="$src/$d" "$dst/$d"
    chmod --reference="$src/$d" "$dst/$d"
  done < <(cd "$src" && find . -xdev \( -path './gluster/*' -o -name 'domain-*' \) -prune -o -type d -print0)
}

# Made once: libvirt's config without host 1's domains, pools, secrets and autostart
# links; empty state and log trees; a copy of the QEMU capability cache (saves libvirtd's
# first probe, ~1 min here).
hv_make_dirs() {
  mkdir -p "$HV_DIR/ssh" "$HV_DIR/libvirt" "$HV_DIR/root"
  chmod 755 "$HV_DIR" "$HV_DIR/ssh"
  local d copy
  for d in "${HV_BINDS[@]}"; do
    copy=$(hv_copy_of "$d")
    [[ -d $copy ]] && continue
    rm -rf "$copy.new"
    mkdir -p "$d"
    case $d in
    /etc/libvirt)
      cp -a "$d" "$copy.new"
      rm -rf "$copy.new"/qemu/*.xml "$copy.new"/qemu/autostart "$copy.new"/storage/*.xml \
        "$copy.new"/storage/autostart "$copy.new"/qemu/networks/autostart/* "$copy.new"/secrets/*
      ;;
    /var/cache/libvirt) cp -a "$d" "$copy.new" ;;
    *) copy_dir_tree "$d" "$copy.new" ;;
    esac
    mv "$copy.new" "$copy"
  done
  # its own identity: libvirt tells hosts apart by it (migration refuses "the same host")
  [[ -s $HV_DIR/host_uuid ]] || cat /proc/sys/kernel/random/uuid >"$HV_DIR/host_uuid"
}

# Runs as the namespace's first process: bash -c "$HV_NS_SETUP" NAME K PIDFILE SRC DST ….
# Private from ours, then shared inside (like host 1's /) so hypervisor $HV's FUSE pools reach
# its running QEMUs; nothing propagates back to host 1. Mounts copied from host 1 go first:
# its FUSE pools (a copy would keep host 1's Gluster client alive after host 1 unmounts, and
# make libvirt here believe its own pool at the same path is "already mounted") and what is
# under /run (network namespaces it would pin).
read -r -d '' HV_NS_SETUP <<'EOF' || true
set -e
k=$1 pidfile=$2
shift 2
while read -r target fstype; do
  target=$(printf '%b' "$target")
  if [[ $fstype == fuse.* || $target == /run/* ]]; then umount -l "$target" || true; fi
done < <(findmnt -rn -o TARGET,FSTYPE | tac)
mount --make-rshared /
mount -t tmpfs -o mode=755,size=64m "gllab-host$k-run" /run
mkdir -p /run/sshd /run/libvirt /run/lock /run/gluster
chmod 1777 /run/lock
while (($#)); do
  # a peer group of its own: as a peer of /, each mount under it would also appear under SRC
  mount --bind "$1" "$2"
  mount --make-private "$2"
  mount --make-shared "$2"
  shift 2
done
echo $$ >"$pidfile"
exec sleep infinity
EOF
readonly HV_NS_SETUP

hv_start_ns() {
  local d binds=()
  for d in "${HV_BINDS[@]}"; do binds+=("$(hv_copy_of "$d")" "$d"); done
  rm -f "$HV_DIR/ns.pid"
  log "hypervisor $HV: making its mount namespace (tmpfs on /run; libvirt's directories from $HV_DIR/root)"
  setsid unshare -m --propagation private -- bash -c "$HV_NS_SETUP" "hv$HV-ns" "$HV" "$HV_DIR/ns.pid" "${binds[@]}" \
    </dev/null >>"$HV_DIR/ns.log" 2>&1 3>&- 9>&- &
  wait_for 15 "hypervisor $HV" "$HV_DIR/ns.log" "its mount namespace" hv_ns_alive
}

# hv_daemon COMPONENT COMM PIDFILE LOGFILE CMD...: start a self-daemonizing COMM in the
# namespace unless its pid file names a live one.
hv_daemon() {
  local component=$1 comm=$2 pidfile=$3 logfile=$4
  shift 4
  pid_alive "$pidfile" "$comm" && return 0
  log "hypervisor $HV: starting $component"
  start_daemon "$logfile" in_hv "$@" || die_component "hypervisor $HV $component" "$logfile" "$component did not start"
}

hv_port_open() { (exec 3<>"/dev/tcp/$HV_SSH_HOST/$SSH_PORT") 2>/dev/null; }

# Hypervisor 2's processes that lost their pid files (a `down` by an older lab.sh removes
# the state dir under a running hypervisor $HV): its daemons, found by command lines naming
# $HV_DIR, everything else in their mount namespace (holder, sessions, FUSE clients), and
# its QEMUs (guest=lab<K>-…).
hv_reap_orphans() {
  local f pid comm args namespaces="" ns self_ns
  self_ns=$(readlink /proc/$$/ns/mnt)
  for f in /proc/[0-9]*/comm; do
    pid=${f#/proc/}
    pid=${pid%/comm}
    read -r comm <"$f" 2>/dev/null || continue
    case $comm in sshd | libvirtd | virtlogd | qemu-system-*) ;; *) continue ;; esac
    mapfile -d '' args <"/proc/$pid/cmdline" 2>/dev/null || continue
    if [[ " ${args[*]} " == *" $HV_DIR/"* || ( $comm == qemu-system-* && " ${args[*]} " == *" guest=lab$HV-"* ) ]]; then
      ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
      [[ $comm != qemu-system-* && $ns != "$self_ns" ]] && namespaces+=" $ns "
      log "hypervisor $HV: ending orphaned $comm (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  [[ -n $namespaces ]] || return 0
  for f in /proc/[0-9]*/ns/mnt; do
    ns=$(readlink "$f" 2>/dev/null) || continue
    [[ $namespaces == *" $ns "* ]] || continue
    pid=${f#/proc/}
    pid=${pid%%/*}
    log "hypervisor $HV: ending orphaned process $pid in its namespace"
    kill -TERM "$pid" 2>/dev/null || true
  done
}

hv_stop_daemons() {
  stop_pidfile "hypervisor $HV libvirtd" "$HV_DIR/libvirt/libvirtd.pid" libvirtd
  stop_pidfile "hypervisor $HV virtlogd" "$HV_DIR/libvirt/virtlogd.pid" virtlogd
  stop_pidfile "hypervisor $HV sshd" "$HV_DIR/ssh/sshd.pid" sshd
}

ensure_hv() {
  if ! hv_ns_alive; then
    # A namespace whose holder died may still hold daemons, mounts and their Gluster clients:
    # take it all down (everything on hypervisor $HV is the lab's) and build it afresh.
    if [[ -e $HV_DIR/ns.pid ]]; then
      log "hypervisor $HV: its namespace holder is gone: rebuilding hypervisor $HV"
      hv_down
    fi
    hv_reap_orphans
    hv_make_dirs
    hv_start_ns
  fi
  local IN_NS=(nsenter -t "$(hv_ns_pid)" -m --) lv=$HV_DIR/libvirt hs=$HV_DIR/ssh

  hv_daemon virtlogd virtlogd "$lv/virtlogd.pid" "$lv/virtlogd.log" /usr/sbin/virtlogd -d -p "$lv/virtlogd.pid"
  wait_for 15 "hypervisor $HV virtlogd" "$lv/virtlogd.log" "its socket" in_hv test -S /run/libvirt/virtlogd-sock
  # host 1's config (ensure_libvirtd wrote it), with its own log and host UUID
  { sed "s|$LIBVIRT_DIR/libvirtd.log|$lv/libvirtd.log|" "$LIBVIRT_DIR/libvirtd.conf"
    printf 'host_uuid = "%s"\n' "$(<"$HV_DIR/host_uuid")"; } >"$lv/libvirtd.conf"
  hv_daemon libvirtd libvirtd "$lv/libvirtd.pid" "$lv/libvirtd.log" /usr/sbin/libvirtd -d -f "$lv/libvirtd.conf" -p "$lv/libvirtd.pid"
  wait_for 300 "hypervisor $HV libvirtd" "$lv/libvirtd.log" "virsh -c $LIBVIRT_URI to answer" libvirtd_answers
  ensure_domain "$HV_DOM_STOPPED" "shut off"
  ensure_domain "$HV_DOM_RUNNING" running

  # the same login user and client key; its own host key, also in the lab's known_hosts
  if [[ ! -s $hs/ssh_host_ed25519_key ]]; then
    rm -f "$hs"/ssh_host_ed25519_key "$hs"/ssh_host_ed25519_key.pub
    ssh-keygen -q -t ed25519 -N '' -C "gluster-libvirt-lab-host$HV" -f "$hs/ssh_host_ed25519_key" </dev/null
  fi
  hv_write_known_hosts
  sed -e "s|^# gluster-libvirt lab sshd .*|# gluster-libvirt lab hypervisor $HV sshd (derived from $SSH_DIR/sshd_config by lab.sh)|" \
    -e "s|^ListenAddress .*|ListenAddress $HV_SSH_HOST|" \
    -e "s|^HostKey .*|HostKey \"$hs/ssh_host_ed25519_key\"|" \
    -e "s|^PidFile .*|PidFile \"$hs/sshd.pid\"|" "$SSH_DIR/sshd_config" >"$hs/sshd_config"
  in_hv /usr/sbin/sshd -t -f "$hs/sshd_config" 2>"$hs/sshd.log" || die_component "hypervisor $HV sshd" "$hs/sshd.log" "sshd rejects its config $hs/sshd_config"
  if pid_alive "$hs/sshd.pid" sshd; then
    kill -HUP "$(pid_of "$hs/sshd.pid")"
  else
    if hv_port_open; then
      die_component "hypervisor $HV sshd" "" "port $HV_SSH_HOST:$SSH_PORT is taken by another process"
    fi
    hv_daemon sshd sshd "$hs/sshd.pid" "$hs/sshd.log" /usr/sbin/sshd -f "$hs/sshd_config" -E "$hs/sshd.log"
  fi
  wait_for 15 "hypervisor $HV sshd" "$hs/sshd.log" "sshd to listen on $HV_SSH_HOST:$SSH_PORT" hv_port_open
  wait_for 30 "hypervisor $HV sshd" "$hs/sshd.log" "a key login as $LAB_USER" ssh_to "$HV_SSH_HOST" true

  # the same Gluster servers, seen from inside (over TCP: glusterd's socket is on host 1's /run)
  local server
  server=$(<"$GLUSTER_DIR/server")
  in_hv timeout 30 gluster --mode=script --remote-host="$server" volume info "$VOLUME" >/dev/null 2>&1 ||
    die_component "hypervisor $HV" "" "cannot reach glusterd at $server from its namespace"
}

# Host 1's known_hosts keeps exactly host 1's key (older lab.sh rewrites it on every up);
# each further hypervisor's knows every host of the lab, so one knownHostsFile serves a
# stack that uses several. Rewritten whenever a hypervisor is added or removed.
hv_write_known_hosts() {
  local k pub lines
  lines=$(cat "$SSH_DIR/known_hosts"
    for k in $(hv_list); do
      pub=$STATE_DIR/host$k/ssh/ssh_host_ed25519_key.pub
      [[ -s $pub ]] && printf '[%s]:%s %s\n' "$(hv_address "$k")" "$SSH_PORT" "$(cut -d' ' -f1,2 "$pub")"
    done)
  for k in $(hv_list); do
    [[ -d $STATE_DIR/host$k/ssh ]] || continue
    printf '%s\n' "$lines" >"$STATE_DIR/host$k/ssh/known_hosts.new"
    chmod 644 "$STATE_DIR/host$k/ssh/known_hosts.new"
    mv -f "$STATE_DIR/host$k/ssh/known_hosts.new" "$STATE_DIR/host$k/ssh/known_hosts"
  done
}

# Removes hypervisor $HV: everything on it is the lab's (pools, domains, mounts).
hv_down() {
  if [[ ! -d $HV_DIR ]]; then
    hv_reap_orphans
    return 0
  fi
  local ns_id="" pid target fstype rest nspid=""
  # its namespace, through the holder or, if that died, any of its daemons
  for pid in "ns.pid sleep" "libvirt/libvirtd.pid libvirtd" "ssh/sshd.pid sshd" "libvirt/virtlogd.pid virtlogd"; do
    if pid_alive "$HV_DIR/${pid% *}" "${pid#* }"; then
      nspid=$(pid_of "$HV_DIR/${pid% *}")
      break
    fi
  done
  if [[ -n $nspid && $(readlink "/proc/$nspid/ns/mnt") != "$(readlink /proc/$$/ns/mnt)" ]]; then
    ns_id=$(readlink "/proc/$nspid/ns/mnt")
    local IN_NS=(nsenter -t "$nspid" -m --)
    if virsh_root uri >/dev/null 2>&1; then
      while read -r pid; do
        [[ -n $pid ]] || continue
        log "hypervisor $HV: removing pool $pid"
        virsh_remove pool "$pid"
      done < <(virsh_root pool-list --all --name 2>/dev/null)
      while read -r pid; do
        [[ -n $pid ]] || continue
        log "hypervisor $HV: removing domain $pid"
        virsh_remove domain "$pid"
      done < <(virsh_root list --all --name 2>/dev/null)
    fi
    # its FUSE clients live in the namespace and keep it alive while mounted
    while read -r _ target fstype rest; do
      [[ $fstype == fuse.glusterfs ]] || continue
      target=$(printf '%b' "$target")
      log "hypervisor $HV: unmounting $target, lazily"
      "${IN_NS[@]}" umount -l "$target" 2>/dev/null || true
    done < <(tac "/proc/$nspid/mounts")
  fi
  hv_stop_daemons
  stop_pidfile "hypervisor $HV namespace holder" "$HV_DIR/ns.pid" sleep
  if [[ -n $ns_id ]]; then
    local f
    for f in /proc/[0-9]*/ns/mnt; do
      [[ $(readlink "$f" 2>/dev/null) == "$ns_id" ]] || continue
      pid=${f#/proc/}
      pid=${pid%%/*}
      log "hypervisor $HV: ending leftover process $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) in its namespace"
      kill -TERM "$pid" 2>/dev/null || true
    done
  fi
  hv_reap_orphans
  log "removing $HV_DIR"
  rm -rf --one-file-system "$HV_DIR"
}

# check_hv_all: check_lab for hypervisor $HV alone (VERBOSE=1: a line per component on
# stderr); non-zero if any part is down.
check_hv_all() {
  CHECK_OK=0
  check_hv
  return "$CHECK_OK"
}

check_hv() {
  local comp pidfile ns_id=""
  if hv_ns_alive; then
    ns_id=$(readlink "/proc/$(hv_ns_pid)/ns/mnt")
    report OK "hv$HV-ns" "pid $(hv_ns_pid) holds its mount namespace"
  else
    report DOWN "hv$HV-ns" "its namespace holder is not running (pid file $HV_DIR/ns.pid)"
  fi
  for comp in sshd virtlogd libvirtd; do
    pidfile=$HV_DIR/libvirt/$comp.pid
    [[ $comp == sshd ]] && pidfile=$HV_DIR/ssh/sshd.pid
    if pid_alive "$pidfile" "$comp" && [[ -n $ns_id && $(readlink "/proc/$(pid_of "$pidfile")/ns/mnt") == "$ns_id" ]]; then
      report OK "hv$HV-$comp" "pid $(pid_of "$pidfile")"
    else
      report DOWN "hv$HV-$comp" "not running in its namespace (pid file $pidfile)"
    fi
  done
  local out want
  want=$(cat "$HV_DIR/host_uuid" 2>/dev/null)
  out=$(ssh_to "$HV_SSH_HOST" "sudo -n true && echo sudo-ok; virsh -q -c $LIBVIRT_URI domstate $HV_DOM_RUNNING; virsh -q -c $LIBVIRT_URI domstate $HV_DOM_STOPPED; virsh -q -c $LIBVIRT_URI capabilities | sed -n 's|.*<uuid>\(.*\)</uuid>.*|uuid=\1|p' | head -n 1" 2>&1) || true
  if grep -q '^sudo-ok$' <<<"$out"; then report OK "hv$HV-login" "ssh $LAB_USER@$HV_SSH_HOST:$SSH_PORT, sudo -n"; else report DOWN "hv$HV-login" "ssh/sudo as $LAB_USER failed: $(head -n 2 <<<"$out" | tr '\n' ' ')"; fi
  local states
  states=$(grep -v -e '^sudo-ok$' -e '^$' <<<"$out" | tr '\n' '|')
  if [[ $states == "running|shut off|uuid=$want|" ]]; then
    report OK "hv$HV-domains" "$HV_DOM_RUNNING running, $HV_DOM_STOPPED shut off, host UUID $want (virsh as $LAB_USER)"
  else
    report DOWN "hv$HV-domains" "want '$HV_DOM_RUNNING running, $HV_DOM_STOPPED shut off, uuid=$want'; virsh as $LAB_USER says: ${states:-nothing}"
  fi
}

# GLUSTER_LIBVIRT_LAB_HOSTS=N (1..10): the lab has hypervisors 1..N (missing ones are added,
# further ones removed); unset keeps what the lab has.
check_hosts_setting() {
  local n=${GLUSTER_LIBVIRT_LAB_HOSTS:-}
  [[ -z $n ]] && return 0
  if [[ ! $n =~ ^[0-9]+$ ]] || ((10#$n < 1 || 10#$n > HV_MAX)); then
    die "GLUSTER_LIBVIRT_LAB_HOSTS must be a number from 1 to $HV_MAX (got '$n')"
  fi
}

ensure_hypervisors() {
  local n=${GLUSTER_LIBVIRT_LAB_HOSTS:-} k
  for ((k = HV_MAX; k >= 2; k--)); do
    hv_select "$k"
    if [[ -n $n ]] && ((k > 10#$n)) && [[ -d $HV_DIR ]]; then
      log "GLUSTER_LIBVIRT_LAB_HOSTS=$n: removing hypervisor $k"
      hv_down
    fi
  done
  for ((k = 2; k <= HV_MAX; k++)); do
    hv_select "$k"
    if [[ -n $n ]] && ((k <= 10#$n)) || [[ -z $n && -d $HV_DIR ]]; then
      mkdir -p "$HV_DIR"
      step ensure_hv
    fi
  done
  hv_write_known_hosts
}

# hv_each FUNCTION: FUNCTION for each hypervisor beyond host 1 that is part of the lab.
hv_each() {
  local k
  for k in $(hv_list); do
    hv_select "$k"
    "$1"
  done
}
