#!/usr/bin/env bash
# Packs the package (from an up-to-date `npm run build`) into
# dist/pulumi-gluster-libvirt.tgz: the file examples depend on
# (`file:../../dist/pulumi-gluster-libvirt.tgz`), exactly as a user's project would.
# Prints the tarball's absolute path.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
version=$(node -p 'require("./package.json").version')
# a private directory: concurrent packs never see each other's half-written tarball
tmp=$(mktemp -d "$root/dist/.pack-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" >/dev/null
mv -f "$tmp/pulumi-gluster-libvirt-$version.tgz" "$root/dist/pulumi-gluster-libvirt.tgz"
echo "$root/dist/pulumi-gluster-libvirt.tgz"
