#!/usr/bin/env bash
# Installs what building riskd needs beyond the Rust toolchain, when it is missing:
# rdkafka builds librdkafka from source (C and C++ compilers, make, perl) and links
# OpenSSL (found with pkg-config) for TLS to brokers; the API TLS tests make a
# throwaway certificate with the openssl CLI. Debian/Ubuntu via apt-get (with sudo when
# not root); elsewhere it names what to install and fails.
set -euo pipefail

missing=()
for tool in cc c++ make perl pkg-config openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if command -v pkg-config >/dev/null 2>&1 && ! pkg-config --exists openssl; then
  missing+=("openssl headers")
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "build dependencies missing: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: install a C/C++ toolchain, make, perl, pkg-config, the openssl CLI and the OpenSSL development headers" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "error: not root and no sudo; run as root: apt-get install gcc g++ make perl pkg-config openssl libssl-dev" >&2
    exit 1
  fi
  as_root=(sudo)
fi
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  gcc g++ make perl pkg-config openssl libssl-dev
