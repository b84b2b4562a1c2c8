#!/usr/bin/env bash
# The Ansible side of scripts/bench-scale.ts, from Debian's packages only: ansible
# (2.14 core with the community collections, community.libvirt among them) on the
# controller, python3-libvirt and python3-lxml for community.libvirt's modules on the
# managed host (the lab runs both on this machine). Nothing is installed if all are there.
set -euo pipefail
pkgs=(ansible python3-libvirt python3-lxml)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-ansible: installing ${missing[*]}" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
