#!/bin/sh
# Instructions per BearerCredential.parse (~800-byte JWT value, token String included):
# the file compiled with -O beside a driver, counted by callgrind at N and 2N parses so
# start-up cancels out. Usage: bench/micro/bearer-parse.sh [N]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-1000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
swiftc -O -wmo -parse-as-library -package-name micro "$here/bearer-parse.swift" "$root/Sources/GatewayAuth/BearerCredential.swift" \
    -o "$tmp/bearer-parse"
count() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/out.$1" "$tmp/bearer-parse" "$1" 2>&1 >/dev/null |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
once=$(count "$n")
twice=$(count $((2 * n)))
echo "instructions per parse: $(((twice - once) / n))"
