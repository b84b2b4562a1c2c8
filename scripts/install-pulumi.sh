#!/usr/bin/env bash
# Makes the Pulumi CLI, its Node.js language host and the dynamic-provider shim
# available in ~/.pulumi/bin (where the official installer puts them), offline:
# the CLI and language host are built from the Go module proxy at the version of
# the @pulumi/pulumi npm dependency. Adequate binaries already there are reused.
# One line per step; the Go output in .logs/pulumi-cli.log and .logs/pulumi-langhost.log.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
root=$here
source "$here/scripts/progress.sh"
bin="${PULUMI_HOME:-$HOME/.pulumi}/bin"
version=$(node -p "require('$here/package.json').dependencies['@pulumi/pulumi'].replace(/^[^0-9]*/, '')")
die() { note "$*"; exit 1; }
fallback_langhost=v3.68.0

mkdir -p "$bin"
export PATH="$bin:$PATH"

have_cli() { command -v pulumi >/dev/null && [ "$(pulumi version 2>/dev/null)" = "v$version" ]; }
have_langhost() { [ -x "$bin/pulumi-language-nodejs" ]; }

build_cli() {
  mkdir "$work/cli" && cd "$work/cli"
  go mod init pulumi-cli-build
  go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$version" \
    || { echo "cannot fetch github.com/pulumi/pulumi/pkg/v3@v$version from the Go module proxy (see above)"; return 1; }
  go build -trimpath -o "$bin/pulumi" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

build_langhost() {
  mkdir "$work/lh" && cd "$work/lh"
  go mod init pulumi-langhost-build
  # The host has its own module without release tags; take it at the CLI tag's commit
  # (a throwaway module cache makes the proxy answer with the tag's origin).
  local commit pkg
  commit=$(GOMODCACHE="$work/modcache" go list -m -json "github.com/pulumi/pulumi/pkg/v3@v$version" \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(!j.Origin)process.exit(1);console.log(j.Origin.Hash)})') || commit=
  chmod -R u+w "$work/modcache" 2>/dev/null || true
  if [ -n "$commit" ] && go get "github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3@$commit" \
      "github.com/pulumi/pulumi/pkg/v3@v$version" "github.com/pulumi/pulumi/sdk/v3@v$version"; then
    pkg=github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
  else
    # Some module proxies serve no version of that module at all. Until v3.68.0 the
    # host lived inside sdk/v3 itself; that build speaks the same LanguageRuntime
    # protocol and runs today's SDK programs (up, preview, refresh, destroy).
    echo "the module proxy has no pulumi-language-nodejs for v$version; using the one in sdk/v3@$fallback_langhost"
    touch "$work/fallback"
    rm -f go.mod go.sum && go mod init pulumi-langhost-build
    pkg=github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs
    go get "$pkg@$fallback_langhost" || { echo "cannot fetch the Node.js language host from the Go module proxy (see above)"; return 1; }
  fi
  go build -trimpath -o "$bin/pulumi-language-nodejs" -ldflags "-s -w" "$pkg"
}

if have_cli && have_langhost; then
  note "Pulumi CLI v$version: already in $bin"
else
  command -v go >/dev/null || die "Go is needed to build the Pulumi CLI offline (install Debian's golang-go or Go from go.dev), then re-run."
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  export GOFLAGS=-mod=mod
  if ! have_cli; then
    STEP_HINT="several minutes the first time: downloads ~1.7 GB of Go modules, compiles ~1500 packages" \
      run_step pulumi-cli "Pulumi CLI v$version: building from the Go module proxy into $bin" build_cli
  fi
  if ! have_langhost; then
    run_step pulumi-langhost "Pulumi's Node.js language host: building into $bin" build_langhost
    [ -e "$work/fallback" ] && note "the module proxy has no pulumi-language-nodejs for v$version: built the one in sdk/v3@$fallback_langhost (same protocol)"
  fi
fi

# The dynamic-provider shim ships in the npm package; the engine finds it on PATH.
# It is a tiny launcher that resolves @pulumi/pulumi from the project it runs in.
shim="$here/node_modules/@pulumi/pulumi/pulumi-resource-pulumi-nodejs"
if [ -f "$shim" ]; then
  install -m 0755 "$shim" "$bin/pulumi-resource-pulumi-nodejs"
else
  note "$shim not found yet (run npm install); the shim is linked on the next run."
fi
have_cli || die "pulumi in $bin does not report v$version: $(pulumi version 2>&1 | head -n 1)"
