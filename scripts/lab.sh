#!/usr/bin/env bash
# gluster-libvirt lab: a real hypervisor on this machine, on loopback.
#   sshd (127.0.0.1:2222, its own config and keys) -> login user gllab
#   glusterd + a started volume "labvol" (brick in the state dir)
#   virtlogd + libvirtd (QEMU driver) with two small test domains, booting the guest below
#   a guest image (Debian's kernel + a busybox initramfs with a test agent) and the
#   domain definition tests boot it from
#
#   optional hypervisors 2..10 (GLUSTER_LIBVIRT_LAB_HOSTS=N): each its own libvirtd, virtlogd and
#   sshd (127.0.0.<K+1>:2222) in a private mount namespace, the same glusterd
#
# Usage: lab.sh up|down|status      (Debian, as root; see docs/lab.md)
# stdout carries exactly one JSON object (up, status) and nothing else; all
# progress and errors go to stderr.
set -euo pipefail

readonly STATE_DIR=${GLUSTER_LIBVIRT_LAB_DIR:-/var/lib/gluster-libvirt-lab}
readonly SSH_PORT=${GLUSTER_LIBVIRT_LAB_SSH_PORT:-2222}
readonly SSH_HOST=127.0.0.1
readonly LAB_USER=gllab
readonly VOLUME=labvol
readonly DOM_RUNNING=lab-running
readonly DOM_STOPPED=lab-stopped
readonly LIBVIRT_URI=qemu:///system
readonly SUDOERS_FILE=/etc/sudoers.d/gluster-libvirt-lab
readonly LOCK_FILE=/run/lock/gluster-libvirt-lab.lock

readonly SSH_DIR=$STATE_DIR/ssh
readonly GLUSTER_DIR=$STATE_DIR/gluster
readonly BRICK_DIR=$GLUSTER_DIR/brick
readonly LIBVIRT_DIR=$STATE_DIR/libvirt
# The lab domains' definition as `up` defines them (no disks): tests clone their own VMs
# from it, never from lab-running/lab-stopped, which may carry a demo's disks.
readonly PRISTINE_XML=$LIBVIRT_DIR/pristine-domain.xml
# Full output of the Debian package install (kept by `down`, like the packages).
readonly LOG_DIR=${GLUSTER_LIBVIRT_LAB_LOG_DIR:-/var/log/gluster-libvirt-lab}

readonly PACKAGES=(
  openssh-server openssh-client libvirt-daemon-system libvirt-clients
  libvirt-daemon-driver-qemu libvirt-daemon-driver-storage-gluster glusterfs-server
  glusterfs-client qemu-system-x86 qemu-utils qemu-block-extra sudo iproute2 curl
  linux-image-amd64 busybox-static cpio kmod
)

# ---------------------------------------------------------------- helpers

log() { printf 'lab: %s\n' "$*" >&2; }

die() {
  printf 'lab: error: %s\n' "$*" >&2
  exit 1
}

# die_component COMPONENT LOGFILE MESSAGE: name what failed and show the end of its log.
die_component() {
  local component=$1 logfile=$2 message=$3
  printf 'lab: error: %s: %s\n' "$component" "$message" >&2
  if [[ -n $logfile ]]; then
    printf 'lab: %s log: %s\n' "$component" "$logfile" >&2
    if [[ -r $logfile ]]; then
      tail -n 20 "$logfile" | sed 's/^/lab:   | /' >&2
    fi
  fi
  exit 1
}

# wait_for TIMEOUT_S COMPONENT LOGFILE WHAT CMD...: poll CMD until it succeeds.
wait_for() {
  local timeout=$1 component=$2 logfile=$3 what=$4
  shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die_component "$component" "$logfile" "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.2
  done
}

# proc_live PID COMM: PID is a running process named COMM. A zombie does not count: with
# no real init here, a daemon that exited may linger unreaped.
proc_live() {
  local pid=$1 comm=$2 stat
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# pid_alive PIDFILE COMM: the pid file names a running process whose comm is COMM.
pid_alive() {
  local pidfile=$1 comm=$2 pid
  # the daemon may remove its pid file (or exit) between any two of these reads
  pid=$(tr -dc '0-9' 2>/dev/null <"$pidfile") || return 1
  [[ -n $pid ]] || return 1
  proc_live "$pid" "$comm"
}

pid_of() { tr -dc '0-9' 2>/dev/null <"$1" || true; }

# pids_by_comm COMM: running processes named COMM (no procps needed), in our mount
# namespace: a daemon in another one (a further hypervisor's libvirtd) does not serve our /run.
pids_by_comm() {
  local comm=$1 f pid self_ns
  self_ns=$(readlink /proc/$$/ns/mnt)
  for f in /proc/[0-9]*/comm; do
    pid=${f#/proc/}
    pid=${pid%/comm}
    if proc_live "$pid" "$comm" && [[ $(readlink "/proc/$pid/ns/mnt" 2>/dev/null) == "$self_ns" ]]; then
      printf '%s\n' "$pid"
    fi
  done
}

# foreign_pid PIDFILE COMM: a COMM process not started by the lab (empty if none).
foreign_pid() {
  local pidfile=$1 comm=$2 own="" pid
  if pid_alive "$pidfile" "$comm"; then own=$(pid_of "$pidfile"); fi
  while read -r pid; do
    if [[ -n $pid && $pid != "$own" ]]; then
      printf '%s\n' "$pid"
      return 0
    fi
  done < <(pids_by_comm "$comm")
}

# stop_pidfile COMPONENT PIDFILE COMM: end a lab-started daemon, TERM then KILL.
stop_pidfile() {
  local component=$1 pidfile=$2 comm=$3 pid i
  if pid_alive "$pidfile" "$comm"; then
    pid=$(pid_of "$pidfile")
    log "stopping $component (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      pid_alive "$pidfile" "$comm" || break
      sleep 0.2
    done
    if pid_alive "$pidfile" "$comm"; then
      log "$component (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# start_daemon LOGFILE CMD...: start a self-daemonizing program. It must not inherit our
# stdout (the caller's JSON pipe would never close) nor the lock (fd 9, held forever).
start_daemon() {
  local logfile=$1
  shift
  "$@" </dev/null >>"$logfile" 2>&1 3>&- 9>&-
}

# ensure_daemon COMM PIDFILE LOGFILE CMD...: keep the lab's COMM (its pid file names a live
# one), else reuse a foreign COMM (one in our mount namespace not started by the lab: `lab
# down` leaves it running), else start CMD, a self-daemonizing COMM, logging to LOGFILE.
# Sets DAEMON_LOG: LOGFILE, or empty for a reused daemon (its log is not ours).
DAEMON_LOG=""
ensure_daemon() {
  local comm=$1 pidfile=$2 logfile=$3 other
  shift 3
  DAEMON_LOG=$logfile
  if pid_alive "$pidfile" "$comm"; then
    :
  elif other=$(foreign_pid "$pidfile" "$comm") && [[ -n $other ]]; then
    log "reusing $comm (pid $other) not started by the lab; 'lab down' leaves it running"
    rm -f "$pidfile"
    DAEMON_LOG=""
  else
    log "starting $comm"
    start_daemon "$logfile" "$@" || die_component "$comm" "$logfile" "$comm did not start"
  fi
}

# step NAME CMD...: run one part of `up`, logging how long it took.
step() {
  local t0=$SECONDS
  "$@"
  log "$1: ok ($((SECONDS - t0)) s)"
}

json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# IN_NS: a command prefix (nsenter into hypervisor K's mount namespace, K >= 2), empty for host 1.
IN_NS=()
virsh_root() { "${IN_NS[@]}" timeout 120 virsh -q -c "$LIBVIRT_URI" "$@"; }

gluster_cli() { timeout 60 gluster --mode=script "$@"; }

# virsh_remove pool|domain NAME: stopped if it runs, then undefined; failures are ignored (down
# removes what it can, and checks what is left where it matters).
virsh_remove() {
  local prefix=""
  [[ $1 == pool ]] && prefix=pool-
  virsh_root "${prefix}destroy" "$2" >/dev/null 2>&1 || true
  virsh_root "${prefix}undefine" "$2" >/dev/null 2>&1 || true
}

require_root() {
  if [[ $(id -u) -ne 0 ]]; then
    local missing=""
    if [[ $1 == up ]] && command -v dpkg-query >/dev/null; then
      missing=$(missing_packages | tr '\n' ' ')
      [[ -n $missing ]] && missing=" Debian packages it would install: ${missing% }."
    fi
    die "lab $1 needs root: it installs Debian packages, creates the user $LAB_USER and starts sshd, glusterd and libvirtd.$missing Run: sudo npx gluster-libvirt lab $1"
  fi
}

with_lock() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  if ! flock -w 600 9; then
    die "another 'lab' command holds $LOCK_FILE for more than 10 minutes"
  fi
}

# Hypervisors 2..N: their constants and functions (hv_select K), in a file of their own.
source "$(dirname "${BASH_SOURCE[0]}")/lab-hypervisors.sh"
# The guest image and its domain definition, likewise.
source "$(dirname "${BASH_SOURCE[0]}")/lab-guest.sh"

# ---------------------------------------------------------------- packages

missing_packages() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

ensure_packages() {
  command -v dpkg-query >/dev/null || die "this lab needs a Debian (apt/dpkg) machine"
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  # No init system here: keep package scripts from starting daemons; the lab starts its own.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  # 9>&-: apt runs under the lab's lock; a daemon a package script leaves running must not hold it.
  # Its output goes to a log; the terminal gets one line, a ticker while it runs, and the
  # log's tail if it fails.
  mkdir -p "$LOG_DIR"
  local apt_log=$LOG_DIR/packages.log ok=1 t0=$SECONDS
  log "installing ${#missing[@]} Debian packages and their dependencies (about 190 on a fresh Debian 12, 1-2 min; log: $apt_log)"
  {
    printf 'installing: %s\n' "${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null
  } >"$apt_log" 2>&1 9>&- &
  local apt_pid=$! next=30
  while kill -0 "$apt_pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS - t0 >= next)); then
      log "  still installing packages ($((SECONDS - t0)) s)"
      next=$((next + 30))
    fi
  done
  wait "$apt_pid" || ok=""
  if [[ -n $ok ]]; then
    log "installed the Debian packages ($((SECONDS - t0)) s)"
  else
    tail -n 20 "$apt_log" | sed 's/^/lab:   | /' >&2
    log "apt log: $apt_log"
  fi
  [[ -n $made_policy ]] && rm -f "$policy"
  if [[ -z $ok ]]; then
    die "could not install the Debian packages ${missing[*]}; install them yourself: apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  fi
}

# ---------------------------------------------------------------- qemu identity

# QEMU's user and group, as libvirtd will use them (qemu.conf, else Debian's default).
qemu_conf_value() {
  local key=$1 default=$2 value
  value=$(sed -n -E "s/^[[:space:]]*$key[[:space:]]*=[[:space:]]*\"([^\"]*)\".*/\1/p" /etc/libvirt/qemu.conf 2>/dev/null | tail -n 1)
  printf '%s\n' "${value:-$default}"
}

QEMU_USER="" QEMU_UID="" QEMU_GID=""
load_qemu_identity() {
  local user group
  user=$(qemu_conf_value user libvirt-qemu)
  group=$(qemu_conf_value group libvirt-qemu)
  if [[ $user == +* ]]; then QEMU_UID=${user#+}; user=$(getent passwd "$QEMU_UID" | cut -d: -f1); else QEMU_UID=$(id -u "$user" 2>/dev/null || true); fi
  if [[ $group == +* ]]; then QEMU_GID=${group#+}; else QEMU_GID=$(getent group "$group" | cut -d: -f3); fi
  [[ -n $QEMU_UID && -n $QEMU_GID ]] || die "cannot resolve QEMU's user/group ($user:$group from /etc/libvirt/qemu.conf); is libvirt-daemon-system installed?"
  QEMU_USER=$user
}

# ---------------------------------------------------------------- login user

ensure_user() {
  getent group libvirt >/dev/null || die "group 'libvirt' does not exist (it comes with libvirt-daemon-system)"
  if ! id "$LAB_USER" >/dev/null 2>&1; then
    log "creating user $LAB_USER"
    useradd --create-home --shell /bin/sh --groups libvirt --comment "gluster-libvirt lab" "$LAB_USER"
  fi
  # Keep the user as the lab needs it even if it was changed since.
  usermod --shell /bin/sh --append --groups libvirt "$LAB_USER"
  local pwfile=$SSH_DIR/password pw
  if [[ ! -s $pwfile ]]; then
    pw=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    (umask 077 && printf '%s\n' "${pw:0:24}" >"$pwfile")
  fi
  chmod 600 "$pwfile"
  # A password also unlocks the account: sshd without PAM refuses even keys for a locked one.
  printf '%s:%s\n' "$LAB_USER" "$(head -n 1 "$pwfile")" | chpasswd

  local tmp
  tmp=$(mktemp)
  printf '# gluster-libvirt lab (removed by `gluster-libvirt lab down`)\n%s ALL=(ALL) NOPASSWD: ALL\n' "$LAB_USER" >"$tmp"
  visudo -cqf "$tmp" >/dev/null || { rm -f "$tmp"; die "sudoers: generated drop-in does not validate"; }
  chmod 440 "$tmp"
  mkdir -p "$(dirname "$SUDOERS_FILE")"
  mv -f "$tmp" "$SUDOERS_FILE"
}

# ---------------------------------------------------------------- sshd

ensure_ssh_keys() {
  if [[ ! -s $SSH_DIR/ssh_host_ed25519_key ]]; then
    rm -f "$SSH_DIR"/ssh_host_ed25519_key "$SSH_DIR"/ssh_host_ed25519_key.pub
    ssh-keygen -q -t ed25519 -N '' -C "gluster-libvirt-lab-host" -f "$SSH_DIR/ssh_host_ed25519_key" </dev/null
  fi
  if [[ ! -s $SSH_DIR/id_ed25519 ]]; then
    rm -f "$SSH_DIR"/id_ed25519 "$SSH_DIR"/id_ed25519.pub
    ssh-keygen -q -t ed25519 -N '' -C "gluster-libvirt-lab-client" -f "$SSH_DIR/id_ed25519" </dev/null
  fi
  chmod 600 "$SSH_DIR/ssh_host_ed25519_key" "$SSH_DIR/id_ed25519"
  # sshd reads authorized_keys as the login user: readable, owned by root, not writable by others.
  install -m 644 "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/authorized_keys"
  printf '[%s]:%s %s\n' "$SSH_HOST" "$SSH_PORT" "$(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")" >"$SSH_DIR/known_hosts"
  chmod 644 "$SSH_DIR/known_hosts"
}

write_sshd_config() {
  cat >"$SSH_DIR/sshd_config.new" <<EOF
# gluster-libvirt lab sshd (generated by lab.sh; do not edit)
Port $SSH_PORT
ListenAddress $SSH_HOST
HostKey "$SSH_DIR/ssh_host_ed25519_key"
PidFile "$SSH_DIR/sshd.pid"
AuthorizedKeysFile "$SSH_DIR/authorized_keys"
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $LAB_USER
# Parallel tests open many connections at once; MaxSessions stays at OpenSSH's default (10)
# so the provider's channel queueing meets a stock server.
MaxStartups 100:30:200
PrintMotd no
X11Forwarding no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  mv -f "$SSH_DIR/sshd_config.new" "$SSH_DIR/sshd_config"
}

# ssh_lab CMD: run CMD on the lab as LAB_USER with the lab key, host key checked strictly.
ssh_lab() { ssh_to "$SSH_HOST" "$@"; }

# ssh_to ADDRESS CMD: the same, to the lab sshd on ADDRESS (host 1, or hypervisor K with
# its own known_hosts).
ssh_to() {
  local address=$1 known_hosts=$SSH_DIR/known_hosts
  shift
  [[ $address != "$SSH_HOST" && $address =~ ^127\.0\.0\.([0-9]+)$ ]] &&
    known_hosts=$STATE_DIR/host$((BASH_REMATCH[1] - 1))/ssh/known_hosts
  timeout 30 ssh -F none -i "$SSH_DIR/id_ed25519" -p "$SSH_PORT" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 -o LogLevel=ERROR "$LAB_USER@$address" "$@" </dev/null
}

port_open() { (exec 3<>"/dev/tcp/$SSH_HOST/$SSH_PORT") 2>/dev/null; }

# A listener running the lab's config whose pid file was lost: adopt it instead of
# reporting the port as taken.
adopt_sshd_listener() {
  local f pid cmdline
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    proc_live "$pid" sshd || continue
    cmdline=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
    if [[ $cmdline == *" -f $SSH_DIR/sshd_config "* && $cmdline == *"[listener]"* ]]; then
      log "adopting the lab's sshd listener (pid $pid), whose pid file was missing"
      printf '%s\n' "$pid" >"$SSH_DIR/sshd.pid"
      return 0
    fi
  done
  return 1
}

ensure_sshd() {
  local pidfile=$SSH_DIR/sshd.pid logfile=$SSH_DIR/sshd.log
  write_sshd_config
  mkdir -p /run/sshd
  chmod 755 /run/sshd
  /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config" 2>"$logfile" || die_component sshd "$logfile" "sshd rejects its config $SSH_DIR/sshd_config"
  if pid_alive "$pidfile" sshd || adopt_sshd_listener; then
    # pick up a changed config without dropping connections
    kill -HUP "$(pid_of "$pidfile")"
  else
    if port_open; then
      die_component sshd "" "port $SSH_HOST:$SSH_PORT is taken by another process; stop it or choose another port with GLUSTER_LIBVIRT_LAB_SSH_PORT"
    fi
    log "starting sshd on $SSH_HOST:$SSH_PORT"
    start_daemon "$logfile" /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$logfile" ||
      die_component sshd "$logfile" "sshd did not start"
  fi
  wait_for 15 sshd "$logfile" "sshd to listen on $SSH_HOST:$SSH_PORT" port_open
  wait_for 30 sshd "$logfile" "a key login as $LAB_USER" ssh_lab true
}

# ---------------------------------------------------------------- gluster

# is_local_address ADDR: ADDR is assigned to this machine (or is loopback).
is_local_address() {
  local addr=$1
  [[ $addr == 127.* ]] && return 0
  ip -o addr show 2>/dev/null | awk '{split($4, a, "/"); print a[1]}' | grep -qxF "$addr"
}

# resolves_local HOST: HOST is, or resolves to, an address of this machine.
resolves_local() {
  local addr
  is_local_address "$1" && return 0
  while read -r addr _; do
    is_local_address "$addr" && return 0
  done < <(getent ahosts "$1" 2>/dev/null)
  return 1
}

# The brick host. Gluster refuses localhost/127.0.0.1 as a brick host; the machine's own
# global address works (and is reachable from network namespaces, unlike 127.0.0.x).
# Fallback on a machine without one: 127.0.0.2 (loopback, accepted by glusterd).
GLUSTER_HOST=""
choose_gluster_host() {
  local brick
  if brick=$(gluster_cli volume info "$VOLUME" 2>/dev/null | sed -n -E 's/^Brick1: ([^:]+):.*/\1/p') && [[ -n $brick ]]; then
    GLUSTER_HOST=$brick
  elif [[ -n ${GLUSTER_LIBVIRT_LAB_GLUSTER_HOST:-} ]]; then
    GLUSTER_HOST=$GLUSTER_LIBVIRT_LAB_GLUSTER_HOST
  elif [[ -s $GLUSTER_DIR/server ]] && is_local_address "$(<"$GLUSTER_DIR/server")"; then
    GLUSTER_HOST=$(<"$GLUSTER_DIR/server")
  else
    GLUSTER_HOST=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
    GLUSTER_HOST=${GLUSTER_HOST:-127.0.0.2}
  fi
  if ! resolves_local "$GLUSTER_HOST"; then
    die_component gluster "" "brick host $GLUSTER_HOST of volume $VOLUME is not an address of this machine (did its address change?): run 'gluster-libvirt lab down' and 'lab up' again"
  fi
  printf '%s\n' "$GLUSTER_HOST" >"$GLUSTER_DIR/server"
}

glusterd_answers() { gluster_cli pool list; }

ensure_glusterd() {
  local pidfile=$GLUSTER_DIR/glusterd.pid logfile=$GLUSTER_DIR/glusterd.log
  ensure_daemon glusterd "$pidfile" "$logfile" /usr/sbin/glusterd --pid-file="$pidfile" --log-file="$logfile"
  wait_for 60 glusterd "$DAEMON_LOG" "glusterd to answer 'gluster pool list'" glusterd_answers
}

volume_exists() { gluster_cli volume info "$VOLUME" >/dev/null 2>&1; }

volume_started() { gluster_cli volume info "$VOLUME" 2>/dev/null | grep -q '^Status: Started'; }

brick_online() {
  gluster_cli volume status "$VOLUME" --xml 2>/dev/null | tr -d ' \n' | grep -q '<node><hostname>[^<]*</hostname><path>[^<]*</path><peerid>[^<]*</peerid><status>1</status>'
}

# The value set on the volume ("Options Reconfigured"), empty when left at the default.
volume_option() {
  gluster_cli volume info "$VOLUME" 2>/dev/null | awk -v k="$1:" '$1 == k {print $2}'
}

# Set explicitly, even where it is today's default: the lab documents what QEMU needs.
set_volume_option() {
  local key=$1 value=$2
  if [[ $(volume_option "$key") != "$value" ]]; then
    gluster_cli volume set "$VOLUME" "$key" "$value" >&2 ||
      die_component gluster "/var/log/glusterfs/glusterd.log" "volume set $VOLUME $key $value failed"
  fi
}

ensure_volume() {
  local logfile=$GLUSTER_DIR/glusterd.log
  choose_gluster_host
  if ! volume_exists; then
    log "creating Gluster volume $VOLUME on $GLUSTER_HOST:$BRICK_DIR"
    # a brick left from an earlier volume carries its volume-id xattr: start afresh
    rm -rf "$BRICK_DIR"
    mkdir -p "$BRICK_DIR"
    gluster_cli volume create "$VOLUME" "$GLUSTER_HOST:$BRICK_DIR" force >&2 ||
      die_component gluster "$logfile" "volume create $VOLUME $GLUSTER_HOST:$BRICK_DIR failed"
  fi
  # Unprivileged QEMU (libgfapi) connects from non-reserved ports and must own what it opens.
  set_volume_option server.allow-insecure on
  set_volume_option storage.owner-uid "$QEMU_UID"
  set_volume_option storage.owner-gid "$QEMU_GID"
  if ! volume_started; then
    log "starting Gluster volume $VOLUME"
    gluster_cli volume start "$VOLUME" >&2 || die_component gluster "$logfile" "volume start $VOLUME failed"
  elif ! brick_online; then
    log "restarting the brick of $VOLUME"
    gluster_cli volume start "$VOLUME" force >&2 || die_component gluster "$logfile" "volume start $VOLUME force failed"
  fi
  local brick_log=${BRICK_DIR#/}
  wait_for 60 gluster "/var/log/glusterfs/bricks/${brick_log//\//-}.log" "the brick of $VOLUME to come online" brick_online
}

# ---------------------------------------------------------------- libvirt

write_libvirtd_conf() {
  cat >"$LIBVIRT_DIR/libvirtd.conf" <<EOF
# gluster-libvirt lab libvirtd (generated by lab.sh; do not edit)
# No D-Bus/polkit here: members of group libvirt get qemu:///system through the socket.
unix_sock_group = "libvirt"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$LIBVIRT_DIR/libvirtd.log"
EOF
}

libvirtd_answers() { virsh_root uri; }

# Without udev nobody gives /dev/kvm its usual root:kvm 0660. Then QEMU (probing as root)
# finds KVM while libvirt's check as the QEMU user does not, so libvirtd throws away its
# QEMU capability cache and re-probes QEMU (4+ s) on nearly every API call.
ensure_kvm_access() {
  [[ -c /dev/kvm ]] || return 0
  if ! setpriv --reuid="$QEMU_UID" --regid="$QEMU_GID" --init-groups test -r /dev/kvm -a -w /dev/kvm 2>/dev/null; then
    if getent group kvm >/dev/null && id -nG "$QEMU_USER" | tr ' ' '\n' | grep -qx kvm; then
      log "giving /dev/kvm udev's usual owner and mode (root:kvm 0660) so libvirt's QEMU capability cache stays valid"
      chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
    else
      log "warning: $QEMU_USER cannot open /dev/kvm; libvirtd may re-probe QEMU on every call (slow)"
    fi
  fi
}

# libvirt runs each QEMU in its own mount namespace, a slave of the host's: a FUSE pool
# mounted after a VM started reaches that VM only if / is a shared mount, as systemd
# makes it on real hypervisors. Without systemd / is private here, so the lab makes it
# shared and restarts a running lab domain that started before (its namespace saw
# nothing propagate).
ensure_shared_mounts() {
  [[ $(findmnt -no PROPAGATION /) == shared* ]] && return 0
  log "making / a shared mount (as systemd does) so FUSE pools reach running VMs"
  mount --make-rshared /
  if [[ $(domain_state "$DOM_RUNNING") == running ]]; then
    log "restarting $DOM_RUNNING so its QEMU sees later mounts"
    virsh_root destroy "$DOM_RUNNING" >&2 || true
  fi
}

# Two cheap calls must be cheap: otherwise libvirtd is re-probing QEMU each time.
check_libvirtd_speed() {
  local t0
  virsh_root version >/dev/null 2>&1 || true
  t0=$(date +%s%N)
  virsh_root version >/dev/null 2>&1 || true
  if (( ($(date +%s%N) - t0) / 1000000 > 2000 )); then
    log "warning: 'virsh version' takes over 2 s: libvirtd keeps re-probing QEMU's capabilities (see ensure_kvm_access in $0)"
  fi
}

virtlogd_answers() { [[ -S /run/libvirt/virtlogd-sock ]]; }

ensure_virtlogd() {
  local pidfile=$LIBVIRT_DIR/virtlogd.pid
  ensure_daemon virtlogd "$pidfile" "$LIBVIRT_DIR/virtlogd.log" /usr/sbin/virtlogd -d -p "$pidfile"
  wait_for 15 virtlogd "" "its socket /run/libvirt/virtlogd-sock" virtlogd_answers
}

ensure_libvirtd() {
  local pidfile=$LIBVIRT_DIR/libvirtd.pid
  write_libvirtd_conf
  # a first start on a machine probes QEMU's capabilities: up to a minute or more
  ensure_daemon libvirtd "$pidfile" "$LIBVIRT_DIR/libvirtd.log" /usr/sbin/libvirtd -d -f "$LIBVIRT_DIR/libvirtd.conf" -p "$pidfile"
  wait_for 300 libvirtd "$DAEMON_LOG" "virsh -c $LIBVIRT_URI to answer" libvirtd_answers
  check_libvirtd_speed
}

domain_xml() {
  cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <description>gluster-libvirt lab test domain (software emulation, no OS)</description>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# Additive and idempotent: rewritten only when missing or different (a lab brought up by an
# older lab.sh gets it on its next `up` or `status`); the domains themselves are untouched.
ensure_pristine_xml() {
  local want
  want=$(domain_xml lab-pristine)
  [[ -f $PRISTINE_XML && $(<"$PRISTINE_XML") == "$want" ]] && return 0
  mkdir -p "$LIBVIRT_DIR"
  printf '%s\n' "$want" >"$PRISTINE_XML.tmp.$$" && chmod 644 "$PRISTINE_XML.tmp.$$" && mv -f "$PRISTINE_XML.tmp.$$" "$PRISTINE_XML"
}

domain_state() { virsh_root domstate "$1" 2>/dev/null | head -n 1; }

# The lab's own domains boot the guest (lab-guest.sh): its definition under their name, so a
# test that starts lab-stopped, or a copy of it, gets the same Linux and agent. The pristine
# definition above stays without an OS: tests that judge only from libvirt's side clone it and
# pay no boot (docs/lab.md "The guest").
lab_domain_xml() { guest_domain_xml | sed "s|$GUEST_NAME_PLACEHOLDER|$1|g"; }

# domain_boots_guest NAME [--inactive]: its live (or persistent) definition boots the guest
# kernel with its agent socket named after it.
domain_boots_guest() {
  local xml
  xml=$(virsh_root dumpxml ${2:-} "$1" 2>/dev/null) || return 1
  grep -qF "<kernel>$GUEST_KERNEL</kernel>" <<<"$xml" && grep -qF "path='$GUEST_RUN_DIR/$1.agent.sock'" <<<"$xml"
}

# define_lab_domain NAME: defines NAME from lab_domain_xml. An existing definition (of an older
# lab.sh, without an OS) keeps its uuid and its disks: a demo's disk at sdb stays.
define_lab_domain() {
  local old
  old=$(virsh_root dumpxml --inactive "$1" 2>/dev/null) || old=""
  lab_domain_xml "$1" |
    UUID=$(sed -n 's|^ *<uuid>\(.*\)</uuid>.*|\1|p' <<<"$old" | head -n 1) \
    DISKS=$(awk '/^ *<disk /,/^ *<\/disk>/' <<<"$old") \
    awk '/<\/name>/ && ENVIRON["UUID"] != "" { print; print "  <uuid>" ENVIRON["UUID"] "</uuid>"; next }
         /<\/devices>/ && ENVIRON["DISKS"] != "" { print ENVIRON["DISKS"] }
         { print }' |
    virsh_root define /dev/stdin >&2
}

# disk_list NAME [--inactive]: its disks (target and source), for comparing live with persistent.
disk_list() { virsh_root domblklist ${2:-} "$1" 2>/dev/null | sort; }

# guest_agent_started NAME: the guest's console shows its agent started in this boot (the
# console log is truncated at each start) and its socket is there. Passive: the agent serves
# one client at a time, and a test may be talking to it.
guest_agent_started() { grep -qF 'agent on ttyS1' "$GUEST_RUN_DIR/$1.console.log" 2>/dev/null && [[ -S $GUEST_RUN_DIR/$1.agent.sock ]]; }

ensure_domain() {
  local name=$1 want=$2 qemu_log=/var/log/libvirt/qemu/$1.log
  if ! virsh_root dominfo "$name" >/dev/null 2>&1; then
    log "defining domain $name"
    define_lab_domain "$name" || die_component "domain $name" "$LIBVIRT_DIR/libvirtd.log" "virsh define failed"
  elif ! domain_boots_guest "$name" --inactive; then
    log "redefining domain $name to boot the guest (its uuid and disks are kept)"
    define_lab_domain "$name" || die_component "domain $name" "$LIBVIRT_DIR/libvirtd.log" "virsh define failed"
  fi
  local state
  state=$(domain_state "$name")
  # Still running an older definition, or its agent socket is gone (seen on the shared lab: a
  # copy of this domain's definition, stopped, made libvirt unlink the path): restarted to boot the
  # guest, unless it carries disks attached live only, which a restart would take away from
  # whoever attached them.
  local why=""
  if [[ $want == running && $state == running ]]; then
    if ! domain_boots_guest "$name"; then why="to boot the guest"
    elif [[ ! -S $GUEST_RUN_DIR/$name.agent.sock ]]; then why="to give its guest agent a socket again (it is gone)"
    fi
  fi
  if [[ -n $why ]]; then
    if [[ $(disk_list "$name") == "$(disk_list "$name" --inactive)" ]]; then
      log "restarting domain $name $why"
      virsh_root destroy "$name" >&2 || die_component "domain $name" "$qemu_log" "virsh destroy failed"
      state="shut off"
    else
      log "warning: $name is not restarted $why: it has disks attached live only, which a restart would drop; run up again once they are gone"
    fi
  fi
  if [[ $want == running && $state != running ]]; then
    if [[ $state == paused ]]; then
      virsh_root resume "$name" >&2 || die_component "domain $name" "$qemu_log" "virsh resume failed"
    else
      log "starting domain $name"
      virsh_root start "$name" >&2 || die_component "domain $name" "$qemu_log" "virsh start failed"
    fi
    wait_for 60 "domain $name" "$qemu_log" "state running" domain_state_is "$name" running
    # a boot takes 6-13 s here under software emulation
    wait_for 180 "domain $name" "$GUEST_RUN_DIR/$name.console.log" "its guest agent to start" guest_agent_started "$name"
  elif [[ $want == "shut off" && $state != "shut off" ]]; then
    log "stopping domain $name"
    virsh_root destroy "$name" >&2 || die_component "domain $name" "$qemu_log" "virsh destroy failed"
    wait_for 30 "domain $name" "$qemu_log" "state shut off" domain_state_is "$name" "shut off"
  fi
}

domain_state_is() { [[ $(domain_state "$1") == "$2" ]]; }

# ---------------------------------------------------------------- status

# report OK|DOWN COMPONENT DETAIL: one component's verdict for check_lab/check_hv_all (a
# line on stderr when VERBOSE=1); any DOWN makes the check fail (CHECK_OK=1).
CHECK_OK=0
report() {
  [[ $1 == OK ]] || CHECK_OK=1
  if [[ ${VERBOSE:-0} == 1 ]]; then printf '  %-12s %-4s %s\n' "$2" "$1" "$3" >&2; fi
}

# check_lab: one line per component on stderr when VERBOSE=1; returns non-zero if any is down.
check_lab() {
  CHECK_OK=0
  if [[ ! -d $STATE_DIR ]]; then
    report DOWN state "no state dir $STATE_DIR (run: npx gluster-libvirt lab up)"
    return 1
  fi
  local f missing=""
  for f in id_ed25519 known_hosts password sshd_config; do
    [[ -s $SSH_DIR/$f ]] || missing+=" $f"
  done
  if [[ -z $missing ]]; then report OK files "keys, known_hosts, password in $SSH_DIR"; else report DOWN files "missing in $SSH_DIR:$missing"; fi

  if pid_alive "$SSH_DIR/sshd.pid" sshd; then
    report OK sshd "pid $(pid_of "$SSH_DIR/sshd.pid"), $SSH_HOST:$SSH_PORT"
  else
    report DOWN sshd "not running (pid file $SSH_DIR/sshd.pid, log $SSH_DIR/sshd.log)"
  fi

  local gpid
  if pid_alive "$GLUSTER_DIR/glusterd.pid" glusterd; then
    report OK glusterd "pid $(pid_of "$GLUSTER_DIR/glusterd.pid"), started by the lab"
  elif gpid=$(foreign_pid "$GLUSTER_DIR/glusterd.pid" glusterd) && [[ -n $gpid ]]; then
    report OK glusterd "pid $gpid, not started by the lab"
  else
    report DOWN glusterd "not running (log $GLUSTER_DIR/glusterd.log)"
  fi
  if volume_started && brick_online; then
    report OK volume "$VOLUME started, brick $(cat "$GLUSTER_DIR/server" 2>/dev/null):$BRICK_DIR online"
  elif volume_exists; then
    report DOWN volume "$VOLUME exists but is not started or its brick is offline"
  else
    report DOWN volume "$VOLUME does not exist (or glusterd is down)"
  fi

  local comp
  for comp in virtlogd libvirtd; do
    if pid_alive "$LIBVIRT_DIR/$comp.pid" "$comp"; then
      report OK "$comp" "pid $(pid_of "$LIBVIRT_DIR/$comp.pid"), started by the lab"
    elif gpid=$(foreign_pid "$LIBVIRT_DIR/$comp.pid" "$comp") && [[ -n $gpid ]]; then
      report OK "$comp" "pid $gpid, not started by the lab"
    else
      report DOWN "$comp" "not running"
    fi
  done

  if [[ -f $SUDOERS_FILE ]]; then report OK sudoers "$SUDOERS_FILE"; else report DOWN sudoers "$SUDOERS_FILE missing"; fi

  # End to end, the way tests use it: ssh as the lab user, sudo, virsh as that user.
  local out
  if out=$(ssh_lab "sudo -n true && echo sudo-ok; virsh -q -c $LIBVIRT_URI domstate $DOM_RUNNING; virsh -q -c $LIBVIRT_URI domstate $DOM_STOPPED" 2>&1); then :; fi
  if grep -q '^sudo-ok$' <<<"$out"; then report OK login "ssh $LAB_USER@$SSH_HOST:$SSH_PORT (key, strict host key), sudo -n"; else report DOWN login "ssh/sudo as $LAB_USER failed: $(head -n 2 <<<"$out" | tr '\n' ' ')"; fi
  local states
  states=$(grep -v -e '^sudo-ok$' -e '^$' <<<"$out" | tr '\n' '|')
  if [[ $states == "running|shut off|" ]]; then
    report OK domains "$DOM_RUNNING running, $DOM_STOPPED shut off (virsh as $LAB_USER)"
  else
    local hint=""
    if ! pid_alive "$LIBVIRT_DIR/libvirtd.pid" libvirtd && grep -qiE 'system bus|polkit|authentication|permission denied' <<<"$states"; then
      hint=" (libvirtd was not started by the lab: let group libvirt use its socket, see docs/lab.md)"
    fi
    report DOWN domains "want '$DOM_RUNNING running, $DOM_STOPPED shut off'; virsh as $LAB_USER says: ${states:-nothing}$hint"
  fi
  return "$CHECK_OK"
}

print_json() {
  local fp
  fp=$(host_key_fingerprint "$SSH_DIR/ssh_host_ed25519_key.pub")
  ensure_pristine_xml
  printf '{"ssh":%s,' "$(ssh_json "$SSH_HOST" "$fp" "$SSH_DIR/known_hosts")" >&3
  printf '"gluster":{"servers":[%s],"volume":%s},' "$(json_str "$(<"$GLUSTER_DIR/server")")" "$(json_str "$VOLUME")" >&3
  printf '"domains":%s,' "$(domains_json "$DOM_RUNNING" "$DOM_STOPPED")" >&3
  printf '"libvirtUri":%s,"stateDir":%s,' "$(json_str "$LIBVIRT_URI")" "$(json_str "$STATE_DIR")" >&3
  printf '"hypervisors":[%s],' "$(hypervisors_json "$fp")" >&3
  if guest_ready; then printf '"guest":%s,' "$(guest_json)" >&3; fi
  printf '"qemu":{"user":%s,"uid":%d,"gid":%d}}\n' "$(json_str "$QEMU_USER")" "$QEMU_UID" "$QEMU_GID" >&3
}

# ---------------------------------------------------------------- down

# The Gluster volumes `down` removes (set by lab_down): labvol and test volumes in the state dir.
LAB_VOLUMES=("$VOLUME")

# Libvirt pools whose source is one of LAB_VOLUMES (netfs+glusterfs or native gluster).
lab_pools() {
  local pool src vol
  virsh_root pool-list --all --name 2>/dev/null | while read -r pool; do
    [[ -n $pool ]] || continue
    src=$(virsh_root pool-dumpxml "$pool" 2>/dev/null | sed -n '/<source>/,/<\/source>/p')
    grep -Eq "<format type='glusterfs'/>|<host name=" <<<"$src" || continue
    for vol in "${LAB_VOLUMES[@]}"; do
      if grep -Eq "<dir path='/$vol(/[^']*)?'/>|<name>$vol(/[^<]*)?</name>" <<<"$src"; then
        printf '%s\n' "$pool"
        break
      fi
    done
  done
}

remove_lab_pools() {
  local pool
  while read -r pool; do
    [[ -n $pool ]] || continue
    log "removing libvirt pool $pool (its source is a lab volume)"
    virsh_remove pool "$pool"
  done < <(lab_pools)
}

remove_lab_domains() {
  local name
  for name in "$DOM_RUNNING" "$DOM_STOPPED"; do
    if virsh_root dominfo "$name" >/dev/null 2>&1; then
      log "removing domain $name"
      virsh_remove domain "$name"
    fi
  done
}

# FUSE mounts of LAB_VOLUMES, wherever they are, and anything mounted under the state dir.
unmount_leftovers() {
  local src target fstype rest vol hit
  while read -r src target fstype rest; do
    target=$(printf '%b' "$target")
    hit=""
    [[ $target == "$STATE_DIR" || $target == "$STATE_DIR"/* ]] && hit=1
    if [[ $fstype == fuse.glusterfs ]]; then
      for vol in "${LAB_VOLUMES[@]}"; do
        [[ ${src#*:} =~ ^/?$vol(/.*)?$ ]] && hit=1
      done
    fi
    if [[ -n $hit ]]; then
      log "unmounting $target ($src), lazily"
      umount -l "$target" 2>/dev/null || true
    fi
  done < <(tac /proc/mounts)
}

# Volumes to delete: ours, and any a test made with its bricks inside the state dir (which
# is about to go away).
lab_volumes() {
  printf '%s\n' "$VOLUME"
  gluster_cli volume info all 2>/dev/null | awk -v dir="$STATE_DIR/" '
    /^Volume Name: / { name = $3 }
    /^Brick[0-9]+: / { sub(/^[^:]*: [^:]*:/, ""); if (index($0, dir) == 1) print name }' | sort -u
}

stop_volume() {
  local vol
  if glusterd_answers >/dev/null 2>&1; then
    for vol in "${LAB_VOLUMES[@]}"; do
      gluster_cli volume info "$vol" >/dev/null 2>&1 || continue
      log "stopping and deleting Gluster volume $vol"
      gluster_cli volume stop "$vol" force >&2 || true
      gluster_cli volume delete "$vol" >&2 || true
    done
  fi
  # brick/self-heal processes of our volume that outlived it
  local f
  for f in /var/run/gluster/vols/"$VOLUME"/*.pid /var/run/gluster/shd/"$VOLUME"/*.pid; do
    [[ -e $f ]] || continue
    if pid_alive "$f" glusterfsd || pid_alive "$f" glusterfs; then
      log "ending leftover gluster process $(pid_of "$f") ($f)"
      kill -TERM "$(pid_of "$f")" 2>/dev/null || true
    fi
  done
}

lab_down() {
  local k
  for ((k = HV_MAX; k >= 2; k--)); do
    hv_select "$k"
    hv_down
  done
  if glusterd_answers >/dev/null 2>&1; then
    mapfile -t LAB_VOLUMES < <(lab_volumes | awk '!seen[$0]++')
  fi
  if virsh_root uri >/dev/null 2>&1; then
    remove_lab_pools
    remove_lab_domains
  fi
  unmount_leftovers
  stop_volume
  stop_pidfile libvirtd "$LIBVIRT_DIR/libvirtd.pid" libvirtd
  stop_pidfile virtlogd "$LIBVIRT_DIR/virtlogd.pid" virtlogd
  local glusterd_was_ours=""
  pid_alive "$GLUSTER_DIR/glusterd.pid" glusterd && glusterd_was_ours=1
  stop_pidfile glusterd "$GLUSTER_DIR/glusterd.pid" glusterd
  if [[ -n $glusterd_was_ours && -d /var/lib/glusterd/vols/$VOLUME ]]; then
    # glusterd could not delete it (e.g. the brick host is no longer local)
    log "removing stale volume definition /var/lib/glusterd/vols/$VOLUME"
    rm -rf "/var/lib/glusterd/vols/$VOLUME"
  fi
  stop_pidfile sshd "$SSH_DIR/sshd.pid" sshd
  rm -f "$SUDOERS_FILE"
  unmount_leftovers
  if [[ -d $STATE_DIR ]]; then
    log "removing $STATE_DIR"
    rm -rf --one-file-system "$STATE_DIR"
  fi
  log "lab is down (user $LAB_USER is kept; remove it with: userdel -r $LAB_USER)"
}

# host_key_fingerprint PUBKEY_FILE: SHA256:… as ssh prints it.
host_key_fingerprint() { ssh-keygen -l -E sha256 -f "$1" | awk '{print $2}'; }

# ssh_json ADDRESS FINGERPRINT KNOWN_HOSTS: the "ssh" object of a hypervisor in the lab JSON.
ssh_json() {
  printf '{"host":%s,"port":%d,"user":%s,"privateKeyPath":%s,"knownHostsFile":%s,"hostKeyFingerprint":%s,"passwordFile":%s}' \
    "$(json_str "$1")" "$SSH_PORT" "$(json_str "$LAB_USER")" "$(json_str "$SSH_DIR/id_ed25519")" \
    "$(json_str "$3")" "$(json_str "$2")" "$(json_str "$SSH_DIR/password")"
}

# domains_json RUNNING STOPPED: the "domains" object of a hypervisor in the lab JSON.
domains_json() {
  printf '{"running":%s,"stopped":%s,"pristineXml":%s}' "$(json_str "$1")" "$(json_str "$2")" "$(json_str "$PRISTINE_XML")"
}

# hypervisor_json ADDRESS FINGERPRINT KNOWN_HOSTS RUNNING STOPPED: one entry of "hypervisors".
hypervisor_json() {
  printf '{"ssh":%s,"domains":%s}' "$(ssh_json "$1" "$2" "$3")" "$(domains_json "$4" "$5")"
}

# hypervisors_json HOST1_FINGERPRINT: host 1, then each further hypervisor that is part of
# the lab and passed its checks (HV_IN_JSON, their numbers).
HV_IN_JSON=()
hypervisors_json() {
  hypervisor_json "$SSH_HOST" "$1" "$SSH_DIR/known_hosts" "$DOM_RUNNING" "$DOM_STOPPED"
  local k
  for k in "${HV_IN_JSON[@]}"; do
    hv_select "$k"
    printf ','
    hypervisor_json "$HV_SSH_HOST" "$(host_key_fingerprint "$HV_DIR/ssh/ssh_host_ed25519_key.pub")" "$HV_DIR/ssh/known_hosts" "$HV_DOM_RUNNING" "$HV_DOM_STOPPED"
  done
}

# hv_check_up: hypervisor $HV passes its checks (into HV_IN_JSON) or `up` fails.
hv_check_up() {
  if ! VERBOSE=0 check_hv_all; then
    log "hypervisor $HV came up but does not pass its own checks:"
    VERBOSE=1 check_hv_all || true
    exit 1
  fi
  HV_IN_JSON+=("$HV")
}

# hv_check_status: a broken hypervisor beyond host 1 does not fail status (host 1 serves
# everyone else's tests): it is reported and left out of the JSON, so what needs it sees
# fewer hypervisors and runs GLUSTER_LIBVIRT_LAB_HOSTS=N `up`, which repairs it.
hv_check_status() {
  if VERBOSE=0 check_hv_all; then
    HV_IN_JSON+=("$HV")
  else
    log "hypervisor $HV is not up (the JSON leaves it out):"
    VERBOSE=1 check_hv_all || true
    log "repair it with: GLUSTER_LIBVIRT_LAB_HOSTS=$HV npx gluster-libvirt lab up"
  fi
}

hv_check_verbose() { VERBOSE=1 check_hv_all || true; }

# ---------------------------------------------------------------- main

lab_up() {
  check_hosts_setting
  # before ensure_packages: two concurrent `up`s would race on apt and policy-rc.d
  with_lock
  ensure_packages
  load_qemu_identity
  mkdir -p "$SSH_DIR" "$GLUSTER_DIR" "$LIBVIRT_DIR"
  # the login user reads authorized_keys in here
  chmod 755 "$STATE_DIR" "$SSH_DIR"
  step ensure_user
  step ensure_ssh_keys
  step ensure_sshd
  step ensure_glusterd
  step ensure_volume
  step ensure_kvm_access
  step ensure_virtlogd
  step ensure_libvirtd
  step ensure_shared_mounts
  # the lab's domains boot the guest: its image first
  step ensure_guest_image
  step ensure_domain "$DOM_STOPPED" "shut off"
  step ensure_domain "$DOM_RUNNING" running
  ensure_pristine_xml
  ensure_hypervisors
  if ! VERBOSE=0 check_lab; then
    log "the lab came up but does not pass its own checks:"
    VERBOSE=1 check_lab || true
    exit 1
  fi
  hv_each hv_check_up
  print_json
  log "lab is up (${SECONDS} s)"
}

lab_status() {
  if VERBOSE=0 check_lab; then
    load_qemu_identity
    hv_each hv_check_status
    # Without the guest image (a lab brought up by an older lab.sh, or a new kernel since)
    # every test but the guest tests works: say so, leave "guest" out of the JSON; likewise
    # "guest.running" while lab-running does not run the guest.
    if ! check_guest; then
      log "the guest is not ready (the JSON has no \"guest\" without its image, no \"guest.running\" without lab-running's):"
      VERBOSE=1 check_guest || true
    fi
    print_json
  else
    printf 'lab: not up (state dir %s):\n' "$STATE_DIR" >&2
    VERBOSE=1 check_lab || true
    VERBOSE=1 check_guest || true
    hv_each hv_check_verbose
    printf 'lab: run `npx gluster-libvirt lab up` to start or repair it\n' >&2
    exit 1
  fi
}

main() {
  # stdout is reserved for the JSON; everything else goes to stderr
  exec 3>&1 1>&2
  local cmd=${1:-}
  case $cmd in
  up)
    require_root up
    lab_up
    ;;
  down)
    require_root down
    with_lock
    lab_down
    ;;
  status)
    require_root status
    lab_status
    ;;
  *)
    printf 'usage: lab.sh up|down|status\n' >&2
    exit 2
    ;;
  esac
}

# Sourced (test/integration/guest.test.ts runs ensure_domain on a scratch domain): define
# everything, run nothing.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
