#!/usr/bin/env bash
# The Dockerfile's build stage, run on this machine: no container engine
# runs here, so CI runs the same cargo build the image runs (the command is
# taken from deploy/Dockerfile itself, so the two cannot drift apart) and
# then checks what the image's runtime stage relies on: each binary is
# statically linked (tabby-cni runs on the host, whatever its libc) and
# starts (tabby-node --help, routectl --help, tabby-cni VERSION).
#
# Needs musl-gcc (Debian musl-tools, from scripts/install-deps) and the
# Rust musl target (added here with rustup, as the Dockerfile does).
set -euo pipefail
cd "$(dirname "$0")/.."

target="$(uname -m)-unknown-linux-musl"
command -v musl-gcc >/dev/null || { echo "check-image-build: musl-gcc missing (apt-get install musl-tools)" >&2; exit 1; }
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# The one `cargo build` line of the Dockerfile's build stage.
build=$(sed -n 's/^ *&& \(cargo build .*\) \\$/\1/p' deploy/Dockerfile)
[ "$(printf '%s\n' "$build" | grep -c .)" = 1 ] || { echo "check-image-build: expected one cargo build line in deploy/Dockerfile, found: $build" >&2; exit 1; }
echo "+ $build"
eval "$build"

out="${CARGO_TARGET_DIR:-target}/$target/release"
for bin in $(sed -n 's/^ *&& for bin in \(.*\); do cp .*/\1/p' deploy/Dockerfile); do
  path="$out/$bin"
  [ -x "$path" ] || { echo "check-image-build: $path was not built" >&2; exit 1; }
  linkage=$(ldd "$path" 2>&1 || true)
  case "$linkage" in
    *"not a dynamic executable"*|*"statically linked"*) ;;
    *) echo "check-image-build: $bin is dynamically linked: $linkage" >&2; exit 1 ;;
  esac
  echo "$bin: static ($(du -h "$path" | cut -f1))"
done
"$out/tabby-node" --help | grep -q NODENAME
"$out/routectl" --help | grep -q peers
version=$(CNI_COMMAND=VERSION "$out/tabby-cni" </dev/null)
case "$version" in
  *'"supportedVersions"'*'"1.1.0"'*) echo "tabby-cni VERSION: $version" ;;
  *) echo "check-image-build: tabby-cni VERSION answered: $version" >&2; exit 1 ;;
esac
echo "check-image-build: the image's binaries build, are static and run"
