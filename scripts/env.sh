# Sourced by the scripts: one shared target directory outside the clone (so CI runs and every
# checkout reuse the same build), and the tools installed by scripts/setup on PATH.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/director-target}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The shared directory must not fill the disk. CI builds each commit once: incremental state
# would only pile up, so it is off there. Elsewhere, incremental sessions untouched for two
# days are removed (they are many gigabytes, and rebuilt when needed).
if [[ "${CI:-}" == true ]]; then
  export CARGO_INCREMENTAL=0
fi
find "$CARGO_TARGET_DIR"/*/incremental -mindepth 1 -maxdepth 1 -mtime +2 -exec rm -rf {} + 2>/dev/null || true
# Every build whose inputs changed links new test executables (hundreds of MB each) beside the
# old ones, which are never used again: only the newest of each name is kept.
deps="$CARGO_TARGET_DIR/debug/deps"
if [[ -d "$deps" ]]; then
  find "$deps" -maxdepth 1 -type f -executable -regextype posix-extended -regex '.*/[A-Za-z0-9_]+-[0-9a-f]{16}' \
    -printf '%T@ %f\n' 2>/dev/null | sort -rn |
    awk '{ name = $2; sub(/-[0-9a-f]{16}$/, "", name); if (seen[name]++) print $2 }' |
    while read -r stale; do rm -f "$deps/$stale"; done
fi
unset deps
