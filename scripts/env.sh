# Sourced by the scripts: one shared target directory outside the clone (so CI runs and every
# checkout reuse the same build), and the tools installed by scripts/setup on PATH.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/director-target}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
