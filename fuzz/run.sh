#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for SECONDS (default 30),
# starting from the committed seeds in fuzz/seeds/<target>/. Fails on the
# first crash and prints the crashing input as hex.
#
#   bash fuzz/run.sh 30
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked).
set -euo pipefail

seconds="${1:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

# Nightly if installed; otherwise stable with RUSTC_BOOTSTRAP (cargo-fuzz's
# sanitizer flags need -Z options).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz() { cargo +nightly fuzz "$@"; }
else
    fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi

targets=$(cargo fuzz list)
fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

status=0
for t in $targets; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t/"
    mkdir -p "$corpus" "$artifacts"
    echo "== fuzz $t for ${seconds}s"
    # The seeds are read-only input; new inputs go to the scratch corpus.
    if ! fuzz run "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$seconds" -artifact_prefix="$artifacts" -print_final_stats=1 \
        >"$work/$t.log" 2>&1; then
        status=1
        tail -n 40 "$work/$t.log" >&2
        for f in "$artifacts"*; do
            [ -f "$f" ] || continue
            echo "CRASH in $t: $(basename "$f")" >&2
            echo "input (hex): $(od -An -v -tx1 "$f" | tr -d ' \n')" >&2
            mkdir -p "$here/artifacts/$t"
            cp "$f" "$here/artifacts/$t/"
        done
        echo "FAIL $t" >&2
    else
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$work/$t.log" || true
        echo "ok $t"
    fi
done
exit "$status"
