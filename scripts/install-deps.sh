#!/usr/bin/env bash
# Installs what building, testing and running the gateway need on Debian 12, and nothing
# that is already there (idempotent). Used by `make demo`, `make test` and `make bench`.
# Extra Debian packages for a target can be named as arguments.
set -euo pipefail

# systemd: systemd-analyze, systemd-sysusers and systemd-tmpfiles for the unit's tests
# (Tests/e2e/test_systemd.py); strace: the test that checks the binary against the unit's
# system-call filter; testssl.sh: the TLS listener's scan in Tests/e2e/test_tls.py;
# chromium and chromium-driver: the real browser of the OAuth login and consent test
# (Tests/e2e/test_oauth_browser.py) and of the settings pages (test_settings_pages.py),
# driven through /usr/bin/chromedriver, so nothing is downloaded at test time; librsvg2-bin:
# rsvg-convert renders the soak's latency plot to PNG (Tests/e2e/test_soak.py, make soak).
# Only `make test` (INSTALL_TEST_DEPS=1) needs them: `make demo` and `make build` do not.
packages=(libssl-dev libhiredis-dev pkg-config redis-server curl ca-certificates python3 python3-venv "$@")
if [ "${INSTALL_TEST_DEPS:-0}" = 1 ]; then
    packages+=(systemd strace testssl.sh chromium chromium-driver librsvg2-bin)
    # The Node SDK's tests (Tests/e2e/test_sdk_node.py): tsc checks its types; node and npm
    # come with the machine (Node 20), else Debian's.
    packages+=(node-typescript)
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi
fi
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} > 0)); then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "install-deps: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "install-deps: no Swift toolchain on PATH; install Swift 6.1 or newer (swift.org) and retry" >&2
    exit 1
fi
