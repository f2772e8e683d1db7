# Sourced by the scripts: one shared target directory outside the clone (so CI runs and every
# checkout reuse the same build), and the tools installed by scripts/setup on PATH.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/director-target}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The shared directory must not fill the disk. CI builds each commit once: incremental state
# would only pile up, so it is off there. Elsewhere, incremental sessions untouched for six
# hours are removed: each crate, feature set and checkout path keeps its own, and a day of work
# piled up 48 GB of them (they are rebuilt when needed).
if [[ "${CI:-}" == true ]]; then
  export CARGO_INCREMENTAL=0
fi
find "$CARGO_TARGET_DIR"/*/incremental -mindepth 1 -maxdepth 1 -mmin +360 -exec rm -rf {} + 2>/dev/null || true
# Every build whose inputs changed links new test executables (tens to hundreds of MB each)
# beside the old ones, and every checkout at a new path (each CI clone) builds the workspace's
# libraries under new hashes: neither is used again. Of each name the two newest are kept (two,
# because crates' test targets share names: platform's and server's `files`), and anything
# touched in the last hour (another build or test run may be using it right now). Debian's awk
# is mawk, which has no `{16}` intervals: its pattern matches any run of hex digits.
deps="$CARGO_TARGET_DIR/debug/deps"
if [[ -d "$deps" ]]; then
  {
    find "$deps" -maxdepth 1 -type f -executable -regextype posix-extended -regex '.*/[A-Za-z0-9_]+-[0-9a-f]{16}' -printf '%T@ %f\n'
    find "$deps" -maxdepth 1 -type f -regextype posix-extended \
      -regex '.*/lib(server|app|platform|shell|orchestrator|frontend|model)-[0-9a-f]{16}\.(rlib|rmeta)' -printf '%T@ %f\n'
  } 2>/dev/null | sort -rn |
    awk -v recent="$(($(date +%s) - 3600))" '{ name = $2; sub(/-[0-9a-f]+(\.[a-z]+)?$/, "", name); ext = $2; sub(/^[^.]*/, "", ext); if (seen[name ext]++ >= 2 && $1 < recent) print $2 }' |
    while read -r stale; do rm -f "$deps/$stale"; done
fi
unset deps
