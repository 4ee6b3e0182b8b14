#!/usr/bin/env bash
# Idempotent setup for the quick start: a usable system libLLVM (>= 18, which
# Dr.Jit 1.5's LLVM backend needs), a .venv and an editable install of rvs-mi.
# Fast when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# --- 1. system libLLVM ----------------------------------------------------
newest_llvm() {
    # Print the newest major version of libLLVM that the dynamic loader can find.
    { ldconfig -p 2>/dev/null | grep -oE 'libLLVM(-|\.so\.)[0-9]+' ;
      ls /usr/lib/*/libLLVM* /usr/lib/libLLVM* /usr/lib/llvm-*/lib/libLLVM* 2>/dev/null; } \
        | grep -oE 'libLLVM(-|\.so\.)[0-9]+' | grep -oE '[0-9]+$' | sort -n | tail -n 1
}

if [ -n "${DRJIT_LIBLLVM_PATH:-}" ]; then
    echo "setup: using DRJIT_LIBLLVM_PATH=$DRJIT_LIBLLVM_PATH"
else
    have=$(newest_llvm || true)
    if [ -z "$have" ] || [ "$have" -lt 18 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "setup: libLLVM ${have:-none} found, Dr.Jit needs >= 18: installing libllvm19"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm19 >/dev/null
        else
            echo "setup: error: Dr.Jit's LLVM backend needs libLLVM >= 18 (found: ${have:-none})." >&2
            echo "setup: install it (Debian: sudo apt-get install libllvm19) or set DRJIT_LIBLLVM_PATH." >&2
            exit 2
        fi
    fi
fi

# --- 2. virtual environment and editable install -----------------------------
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.rvs-mi-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: pip install -e '.[test]'"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi
