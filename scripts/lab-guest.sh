#!/usr/bin/env bash
# gluster-libvirt lab: the guest image (a real Linux kernel and a busybox initramfs with a
# small agent) and the domain definition tests boot it from. Sourced by lab.sh after its
# helpers; not a command of its own. Everything comes from Debian's packages
# (linux-image-amd64, busybox-static); nothing is downloaded. See docs/lab.md "The guest".

readonly GUEST_DIR=$STATE_DIR/guest
readonly GUEST_KERNEL=$GUEST_DIR/vmlinuz
readonly GUEST_INITRD=$GUEST_DIR/initrd.gz
readonly GUEST_XML=$GUEST_DIR/domain.xml
# What the image was built from (kernel version, module list, /init): rebuilt when it changes.
readonly GUEST_STAMP=$GUEST_DIR/stamp
# Agent sockets and console logs of running guests: under the state dir, which both
# hypervisors see at the same path (hypervisor 2 bind-mounts only libvirt's own directories).
readonly GUEST_RUN_DIR=$GUEST_DIR/run
# domain.xml says @NAME@ where a guest's name goes (its <name>, socket and log paths).
readonly GUEST_NAME_PLACEHOLDER=@NAME@
# Drivers for the disks tests attach; their dependencies come from modprobe, in load order.
readonly GUEST_MODULES=(virtio_pci virtio_scsi sd_mod virtio_blk)

# The initramfs's /init: mounts, loads the drivers, then runs the agent on ttyS1 (the
# kernel console, with its messages, is ttyS0). The protocol is in docs/lab.md.
read -r -d '' GUEST_INIT <<'EOF' || true
#!/bin/sh
# gluster-libvirt lab guest /init (built by lab-guest.sh; protocol in docs/lab.md)
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
  # crct10dif-pclmul refuses without PCLMULQDQ ("No such device"): harmless, generic is next
  insmod "/lib/modules/$m" 2>/dev/null || echo "guest: insmod $m failed"
done </etc/modules.order
echo "guest: up in $(cut -d' ' -f1 /proc/uptime) s; agent on ttyS1"

AGENT=/dev/ttyS1

# serial_of NAME: the disk's serial as the kernel exposes it (virtio-blk: serial; SCSI: VPD
# page 0x80 after its 4-byte header), spaces trimmed; empty when it has none.
serial_of() {
  if [ -r "/sys/block/$1/serial" ]; then
    cat "/sys/block/$1/serial"
  elif [ -r "/sys/block/$1/device/vpd_pg80" ]; then
    dd if="/sys/block/$1/device/vpd_pg80" bs=1 skip=4 2>/dev/null | tr -d '\000'
  fi | sed 's/^ *//; s/ *$//'
}

size_of() { echo $(($(cat "/sys/block/$1/size") * 512)); }

disk_line() { echo "dev=$1 size=$(size_of "$1") ro=$(cat "/sys/block/$1/ro") serial=$(serial_of "$1")"; }

# check_range DEV OFFSET LENGTH: DEV is a disk and the range lies inside it.
check_range() {
  case $1 in "" | *[!a-z0-9]*) echo "err bad device name '$1'"; return 1 ;; esac
  [ -b "/dev/$1" ] && [ -e "/sys/block/$1" ] || { echo "err no disk $1"; return 1; }
  case $2$3 in "" | *[!0-9]*) echo "err offset and length must be decimal byte counts"; return 1 ;; esac
  [ -n "$2" ] && [ -n "$3" ] || { echo "err offset and length must be decimal byte counts"; return 1; }
  [ $(($2 + $3)) -le "$(size_of "$1")" ] || { echo "err range $2+$3 is past the end of $1 ($(size_of "$1") bytes)"; return 1; }
}

check_seconds() {
  case $1 in "" | *[!0-9]*) echo "err seconds must be a whole number"; return 1 ;; esac
}

# write_at DEV OFFSET: stdin onto DEV at byte OFFSET, flushed to the disk before returning.
write_at() {
  dd of="/dev/$1" bs=65536 iflag=fullblock oflag=seek_bytes seek="$2" conv=notrunc,fsync 2>/dev/null ||
    { echo "err write to $1 failed"; return 1; }
}

handle() {
  case $1 in
  ping) shift; echo "pong $*"; echo ok ;;
  list)
    for d in /sys/block/*; do
      [ -e "$d" ] && disk_line "${d#/sys/block/}"
    done
    echo ok ;;
  sha256)
    check_range "$2" "$3" "$4" || return 0
    # drop the device's cached pages: the answer is what the disk holds now
    blockdev --flushbufs "/dev/$2"
    h=$(dd if="/dev/$2" bs=65536 iflag=skip_bytes,count_bytes,fullblock skip="$3" count="$4" 2>/dev/null | sha256sum)
    echo "${h%% *}"; echo ok ;;
  write)
    check_range "$2" "$3" $((${#4} / 2)) || return 0
    case $4 in "" | *[!0-9a-fA-F]*) echo "err bytes must be hex digits"; return 0 ;; esac
    [ $((${#4} % 2)) -eq 0 ] || { echo "err odd number of hex digits"; return 0; }
    printf '%s' "$4" | xxd -r -p | write_at "$2" "$3" && echo ok ;;
  fill)
    check_range "$2" "$3" "$4" || return 0
    [ -n "$5" ] || { echo "err fill needs a word"; return 0; }
    yes "$5" | head -c "$4" | write_at "$2" "$3" && echo ok ;;
  sync) sync; echo ok ;;
  wait-gone)
    check_seconds "$3" || return 0
    i=$(($3 * 10))
    while [ -e "/sys/block/$2" ]; do
      [ $i -gt 0 ] || { echo "err $2 still present after $3 s"; return 0; }
      i=$((i - 1)); usleep 100000
    done
    echo ok ;;
  wait-present)
    check_seconds "$3" || return 0
    [ -n "$2" ] || { echo "err wait-present needs a serial"; return 0; }
    i=$(($3 * 10))
    while :; do
      for d in /sys/block/*; do
        [ -e "$d" ] && [ "$(serial_of "${d#/sys/block/}")" = "$2" ] && { disk_line "${d#/sys/block/}"; echo ok; return 0; }
      done
      [ $i -gt 0 ] || { echo "err no disk with serial $2 after $3 s"; return 0; }
      i=$((i - 1)); usleep 100000
    done ;;
  "") ;;
  *) echo "err unknown request '$1'" ;;
  esac
}

agent() {
  # raw: no echo of requests, no line editing, no \n -> \r\n on output
  stty -F "$AGENT" raw -echo || return 1
  exec <"$AGENT" >"$AGENT" 2>&1
  echo "hello gluster-libvirt-lab-agent 1"
  while read -r line; do
    # the request's words are its arguments, never globbed
    set -f
    # shellcheck disable=SC2086
    set -- $line
    set +f
    handle "$@"
  done
}

# PID 1 must not exit (the kernel panics): the agent is restarted if it ever does.
while :; do
  (agent) || echo "guest: the agent on $AGENT exited"
  sleep 1
done
EOF
readonly GUEST_INIT

# The newest kernel with its modules installed (linux-image-amd64 depends on it).
guest_kernel_version() {
  local f v best=""
  for f in /boot/vmlinuz-*; do
    [[ -e $f ]] || continue
    v=${f#/boot/vmlinuz-}
    [[ -s /lib/modules/$v/modules.dep ]] || continue
    if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -n 1) == "$v" ]]; then best=$v; fi
  done
  [[ -n $best ]] || return 1
  printf '%s\n' "$best"
}

# guest_module_files VERSION: the .ko files GUEST_MODULES need, dependencies first, once each.
guest_module_files() {
  local m
  for m in "${GUEST_MODULES[@]}"; do
    modprobe -S "$1" --show-depends "$m" || return 1
  done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

guest_domain_xml() {
  local run=$GUEST_RUN_DIR/$GUEST_NAME_PLACEHOLDER
  cat <<EOF
<domain type='qemu'>
  <name>$GUEST_NAME_PLACEHOLDER</name>
  <description>gluster-libvirt lab guest: Debian's kernel, a busybox initramfs with the lab's agent on ttyS1 (docs/lab.md)</description>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$GUEST_KERNEL</kernel>
    <initrd>$GUEST_INITRD</initrd>
    <cmdline>console=ttyS0 panic=-1</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <serial type='file'>
      <source path='$run.console.log'/>
      <target port='0'/>
    </serial>
    <serial type='unix'>
      <source mode='bind' path='$run.agent.sock'/>
      <target port='1'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# The stamp of the image today's packages and this file would build; fails without a kernel.
guest_wanted_stamp() {
  local version files
  version=$(guest_kernel_version) || return 1
  files=$(guest_module_files "$version") || return 1
  printf 'kernel %s\n%s\n' "$version" "$files" | cat - <(printf '%s\n' "$GUEST_INIT") <(guest_domain_xml) | sha256sum | cut -d' ' -f1
}

guest_ready() {
  local want
  want=$(guest_wanted_stamp 2>/dev/null) || return 1
  [[ -s $GUEST_KERNEL && -s $GUEST_INITRD && -s $GUEST_XML && -d $GUEST_RUN_DIR && $(cat "$GUEST_STAMP" 2>/dev/null) == "$want" ]]
}

# Builds <state>/guest/{vmlinuz,initrd.gz,domain.xml} unless they are already what today's
# kernel, module list and /init give (the stamp); each file is replaced atomically.
ensure_guest_image() {
  install -d -m 755 "$GUEST_DIR"
  # QEMU (as the QEMU user) opens the console logs; libvirt binds the agent sockets
  install -d -m 755 -o "$QEMU_UID" -g "$QEMU_GID" "$GUEST_RUN_DIR"
  guest_ready && return 0
  local version want files f tmp
  version=$(guest_kernel_version) || die_component guest "" "no kernel in /boot with modules in /lib/modules (is linux-image-amd64 installed?)"
  [[ -x /bin/busybox ]] || die_component guest "" "/bin/busybox is missing (is busybox-static installed?)"
  want=$(guest_wanted_stamp)
  files=$(guest_module_files "$version") || die_component guest "" "modprobe -S $version --show-depends ${GUEST_MODULES[*]} failed"
  log "building the guest image (kernel $version, busybox initramfs with the agent)"
  tmp=$(mktemp -d "$GUEST_DIR/build.XXXXXX")
  mkdir -p "$tmp/root/bin" "$tmp/root/etc" "$tmp/root/proc" "$tmp/root/sys" "$tmp/root/dev" "$tmp/root/lib/modules"
  cp /bin/busybox "$tmp/root/bin/busybox"
  local applet
  while read -r applet; do
    [[ -n $applet && $applet != busybox ]] && ln -s busybox "$tmp/root/bin/$applet"
  done < <(/bin/busybox --list)
  : >"$tmp/root/etc/modules.order"
  while read -r f; do
    [[ -n $f ]] || continue
    cp "$f" "$tmp/root/lib/modules/"
    printf '%s\n' "${f##*/}" >>"$tmp/root/etc/modules.order"
  done <<<"$files"
  printf '%s\n' "$GUEST_INIT" >"$tmp/root/init"
  chmod 755 "$tmp/root/init"
  (cd "$tmp/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet | gzip -6) >"$tmp/initrd.gz" ||
    { rm -rf "$tmp"; die_component guest "" "packing the initramfs failed"; }
  cp "/boot/vmlinuz-$version" "$tmp/vmlinuz"
  guest_domain_xml >"$tmp/domain.xml"
  chmod 644 "$tmp/vmlinuz" "$tmp/initrd.gz" "$tmp/domain.xml"
  for f in vmlinuz initrd.gz domain.xml; do mv -f "$tmp/$f" "$GUEST_DIR/$f"; done
  printf '%s\n' "$want" >"$GUEST_STAMP"
  rm -rf "$tmp"
}

# lab_guest_running: the lab's domains boot the guest (lab.sh ensure_domain): lab-stopped's
# definition, and lab-running as it runs, whose agent started in this boot.
lab_guest_running() {
  domain_boots_guest "$DOM_STOPPED" --inactive && domain_boots_guest "$DOM_RUNNING" && guest_agent_started "$DOM_RUNNING"
}

# check_guest: the image is built from today's kernel and /init, and the lab's domains boot it
# (VERBOSE=1: a line on stderr for each). Not part of check_lab: a lab without it serves every
# test but the guest tests, and a plain `up` builds it.
check_guest() {
  local ok=0
  if guest_ready; then
    [[ ${VERBOSE:-0} == 1 ]] && printf '  %-12s %-4s %s\n' guest OK "kernel $(guest_kernel_version), $GUEST_INITRD" >&2
  else
    [[ ${VERBOSE:-0} == 1 ]] && printf '  %-12s %-4s %s\n' guest DOWN "no guest image built from today's kernel and /init in $GUEST_DIR (run: npx gluster-libvirt lab up)" >&2
    ok=1
  fi
  if lab_guest_running; then
    [[ ${VERBOSE:-0} == 1 ]] && printf '  %-12s %-4s %s\n' lab-guest OK "$DOM_RUNNING runs the guest, its agent on $GUEST_RUN_DIR/$DOM_RUNNING.agent.sock; $DOM_STOPPED boots it when started" >&2
  else
    [[ ${VERBOSE:-0} == 1 ]] && printf '  %-12s %-4s %s\n' lab-guest DOWN "$DOM_RUNNING does not run the guest with its agent started, or $DOM_STOPPED's definition does not boot it (run: npx gluster-libvirt lab up; see its log for live-only disks that keep $DOM_RUNNING from restarting)" >&2
    ok=1
  fi
  return "$ok"
}

# The "guest" object of the lab JSON; "running" (lab-running's agent) when lab_guest_running.
guest_json() {
  printf '{"kernel":%s,"initrd":%s,"domainXml":%s,"namePlaceholder":%s,"runDir":%s,"kernelVersion":%s' \
    "$(json_str "$GUEST_KERNEL")" "$(json_str "$GUEST_INITRD")" "$(json_str "$GUEST_XML")" \
    "$(json_str "$GUEST_NAME_PLACEHOLDER")" "$(json_str "$GUEST_RUN_DIR")" "$(json_str "$(guest_kernel_version)")"
  if lab_guest_running; then
    printf ',"running":{"domain":%s,"agentSocket":%s,"consoleLog":%s}' "$(json_str "$DOM_RUNNING")" \
      "$(json_str "$GUEST_RUN_DIR/$DOM_RUNNING.agent.sock")" "$(json_str "$GUEST_RUN_DIR/$DOM_RUNNING.console.log")"
  fi
  printf '}'
}
