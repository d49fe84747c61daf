#!/usr/bin/env bash
# The one test command (named in README.md, called by .ci/run).
#
# On a fresh Debian 12 machine (as root) it installs what the tests need — apt packages
# (kcat, python3-venv), the Python clients into .venv — then builds the release binary,
# runs every Rust test in the workspace and the pytest suite in tests/ against
# target/release/riptide. Each install step is skipped when already satisfied, so a
# second run goes straight to the tests. Exits non-zero on any failure.
#
# Environment:
#   PYTEST_ARGS   extra arguments for pytest (e.g. "-k kcat -x")
#   SKIP_CARGO_TEST=1   skip `cargo test` (the pytest suite still runs)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
venv="$root/.venv"
requirements="$root/tests/requirements.txt"
start_s=$SECONDS

step() { printf '\n==> %s\n' "$*"; }

# --- apt packages -----------------------------------------------------------------
apt_missing=()
command -v kcat >/dev/null 2>&1 || apt_missing+=(kcat)
# A venv needs ensurepip; Debian's python3 only has it with python3-venv.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_missing+=(python3 python3-venv)
fi
if ((${#apt_missing[@]})); then
    step "apt-get install ${apt_missing[*]}"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi

# --- Python venv --------------------------------------------------------------------
# The stamp holds the requirements' hash: pip runs only when they change.
stamp="$venv/.riptide-requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    step "python venv at .venv"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi

# --- Rust ---------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 1
}
step "cargo build --release"
cargo build --release --workspace

# Every suite runs even when an earlier one fails (so one run shows every failure);
# the exit code is non-zero if any failed.
failed=()
if [[ "${SKIP_CARGO_TEST:-0}" != 1 ]]; then
    if cargo nextest --version >/dev/null 2>&1; then
        step "cargo nextest run --workspace --release"
        cargo nextest run --workspace --release --no-fail-fast --no-tests=warn || failed+=("cargo nextest")
        # nextest does not run doctests.
        step "cargo test --workspace --release --doc"
        cargo test --workspace --release --doc || failed+=("cargo test --doc")
    else
        step "cargo test --workspace --release"
        cargo test --workspace --release --no-fail-fast || failed+=("cargo test")
    fi
fi

# --- Integration tests with third-party clients ----------------------------------
step "pytest tests/ (broker: target/release/riptide; $((SECONDS - start_s))s so far)"
export RIPTIDE_BIN="$root/target/release/riptide"
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest tests/ ${PYTEST_ARGS:-} || failed+=("pytest")

if ((${#failed[@]})); then
    printf '\n==> FAILED: %s (%ds)\n' "${failed[*]}" $((SECONDS - start_s)) >&2
    exit 1
fi
printf '\n==> all tests passed (%ds)\n' $((SECONDS - start_s)) >&2
