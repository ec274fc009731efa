#!/bin/sh
# Instructions per operation of one hot function: bench/micro/NAME.swift (a driver whose
# `// sources:` line names the package files it needs) compiled with -O, counted by
# callgrind at N and 2N operations so start-up cancels out.
# Usage: bench/micro/run.sh NAME [N]   (NAME: bearer-parse, exact-token, rate-limit-headers)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name=$1
n=${2:-1000}
sources=$(sed -n 's|^// sources: *||p' "$here/$name.swift")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086 # one path per word
swiftc -O -wmo -parse-as-library -package-name micro "$here/$name.swift" $(for s in $sources; do echo "$root/$s"; done) \
    -o "$tmp/$name"
count() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/out.$1" "$tmp/$name" "$1" 2>&1 >/dev/null |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
once=$(count "$n")
twice=$(count $((2 * n)))
echo "$name: $(((twice - once) / n)) instructions per operation"
