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
