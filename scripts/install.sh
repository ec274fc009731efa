#!/usr/bin/env bash
# `make install`: the release binary and its systemd files, honouring PREFIX and DESTDIR.
#
#   make install                          # build release, install into / under /usr/local
#   make install DESTDIR=/tmp/stage       # stage the same layout (packaging, tests)
#   make install SKIP_BUILD=1 BINARY=.build/debug/dbaudit-gateway DESTDIR=...  # no build
#
# Layout (PREFIX=/usr/local by default; every path below is prefixed with DESTDIR):
#   $PREFIX/bin/dbaudit-gateway                         the binary (0755)
#   $UNITDIR/dbaudit-gateway.service                    the unit, its /usr/local paths
#                                                       rewritten to $PREFIX (0644)
#   $UNITDIR/dbaudit-gateway.socket                     the socket unit for socket
#                                                       activation, likewise (0644; installed,
#                                                       never enabled: see docs/operations.md)
#       UNITDIR defaults to $PREFIX/lib/systemd/system for PREFIX /usr/local or /usr (both on
#       systemd's unit search path; /usr/local/lib/systemd/system is the place for units an
#       administrator installs), else /etc/systemd/system.
#   /usr/lib/sysusers.d/dbaudit-gateway.conf            the dbaudit-gateway user (0644)
#   /usr/lib/tmpfiles.d/dbaudit-gateway.conf            /etc/dbaudit-gateway ownership (0644)
#   /usr/lib/sysctl.d/60-dbaudit-gateway.conf           net.ipv4.tcp_migrate_req = 1 (0644)
#   /etc/dbaudit-gateway/gateway.conf                   from gateway.conf.example, 0640, ONLY
#                                                       if absent: an operator's file is
#                                                       never overwritten
#   $PREFIX/share/doc/dbaudit-gateway/README.md, gateway.conf.example, docs/*.md
#
# Installing into the live system (no DESTDIR) also applies the sysusers, tmpfiles and
# sysctl snippets (creating the user, giving the configuration to its group, letting
# connections queued on a closing SO_REUSEPORT listener move to the next one) and reloads
# systemd when it is running. It never enables or starts the service or the socket.
#
# Environment: PREFIX, DESTDIR, UNITDIR, SYSUSERSDIR, TMPFILESDIR, SYSCTLDIR, SWIFT,
# SKIP_BUILD=1 (install BINARY as it is), BINARY (default: the release build's binary).
# Building needs what `scripts/install-deps.sh` installs (libssl-dev, libhiredis-dev, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NAME=dbaudit-gateway
PREFIX="${PREFIX:-/usr/local}"
PREFIX="${PREFIX%/}"
DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
SWIFT="${SWIFT:-swift}"
SKIP_BUILD="${SKIP_BUILD:-}"
BINARY="${BINARY:-}"
SYSCONFDIR=/etc
SYSUSERSDIR="${SYSUSERSDIR:-/usr/lib/sysusers.d}"
TMPFILESDIR="${TMPFILESDIR:-/usr/lib/tmpfiles.d}"
SYSCTLDIR="${SYSCTLDIR:-/usr/lib/sysctl.d}"
if [ -z "${UNITDIR:-}" ]; then
    case "$PREFIX" in
        /usr | /usr/local) UNITDIR="$PREFIX/lib/systemd/system" ;;
        *) UNITDIR=/etc/systemd/system ;;
    esac
fi
BINDIR="$PREFIX/bin"
DOCDIR="$PREFIX/share/doc/$NAME"
CONFDIR="$SYSCONFDIR/$NAME"

case "$PREFIX" in
    /*) ;;
    *) echo "install: PREFIX must be an absolute path (got '$PREFIX')" >&2; exit 2 ;;
esac

# A relative BINARY is relative to where make (or this script) was started.
if [ -n "$BINARY" ] && [ "${BINARY#/}" = "$BINARY" ]; then
    BINARY="$PWD/$BINARY"
fi

if [ "$SKIP_BUILD" != "1" ]; then
    echo "install: building release (swift build -c release)"
    (cd "$ROOT" && "$SWIFT" build -c release)
    if [ -z "$BINARY" ]; then
        BINARY="$(cd "$ROOT" && "$SWIFT" build -c release --show-bin-path)/$NAME"
    fi
fi
BINARY="${BINARY:-$ROOT/.build/release/$NAME}"
if [ ! -x "$BINARY" ]; then
    echo "install: $BINARY is not an executable file (build it, or set BINARY=)" >&2
    exit 1
fi

stage() { printf '%s%s' "$DESTDIR" "$1"; }

install -d -m 0755 "$(stage "$BINDIR")" "$(stage "$UNITDIR")" "$(stage "$SYSUSERSDIR")" \
    "$(stage "$TMPFILESDIR")" "$(stage "$SYSCTLDIR")" "$(stage "$DOCDIR")"
install -m 0755 "$BINARY" "$(stage "$BINDIR/$NAME")"
echo "install: $(stage "$BINDIR/$NAME")"

# The units name the binary and documentation under /usr/local; point them at PREFIX.
unit_tmp="$(mktemp)"
trap 'rm -f "$unit_tmp"' EXIT
for unit in "$NAME.service" "$NAME.socket"; do
    sed -e "s#/usr/local/bin/$NAME#$BINDIR/$NAME#g" \
        -e "s#/usr/local/share/doc/$NAME#$DOCDIR#g" \
        "$ROOT/systemd/$unit" >"$unit_tmp"
    install -m 0644 "$unit_tmp" "$(stage "$UNITDIR/$unit")"
    echo "install: $(stage "$UNITDIR/$unit")"
done
install -m 0644 "$ROOT/systemd/$NAME.sysusers.conf" "$(stage "$SYSUSERSDIR/$NAME.conf")"
install -m 0644 "$ROOT/systemd/$NAME.tmpfiles.conf" "$(stage "$TMPFILESDIR/$NAME.conf")"
echo "install: $(stage "$SYSUSERSDIR/$NAME.conf"), $(stage "$TMPFILESDIR/$NAME.conf")"
install -m 0644 "$ROOT/systemd/$NAME.sysctl.conf" "$(stage "$SYSCTLDIR/60-$NAME.conf")"
echo "install: $(stage "$SYSCTLDIR/60-$NAME.conf")"

install -m 0644 "$ROOT/README.md" "$(stage "$DOCDIR/README.md")"
install -m 0644 "$ROOT/gateway.conf.example" "$(stage "$DOCDIR/gateway.conf.example")"
install -d -m 0755 "$(stage "$DOCDIR/docs")"
for page in "$ROOT"/docs/*.md; do
    install -m 0644 "$page" "$(stage "$DOCDIR/docs/$(basename "$page")")"
done

# The configuration: created once, never replaced (an upgrade keeps the operator's file;
# compare it with $DOCDIR/gateway.conf.example for new keys).
if [ ! -d "$(stage "$CONFDIR")" ]; then
    install -d -m 0750 "$(stage "$CONFDIR")"
fi
if [ -e "$(stage "$CONFDIR/gateway.conf")" ]; then
    echo "install: $(stage "$CONFDIR/gateway.conf") exists; kept as it is"
else
    install -m 0640 "$ROOT/gateway.conf.example" "$(stage "$CONFDIR/gateway.conf")"
    echo "install: $(stage "$CONFDIR/gateway.conf") (from gateway.conf.example: edit it before starting)"
fi

if [ -z "$DESTDIR" ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$SYSUSERSDIR/$NAME.conf"
    fi
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create "$TMPFILESDIR/$NAME.conf"
    fi
    # Kernels before 5.14 have no tcp_migrate_req, and a container may not write
    # /proc/sys: neither stops the install (the gateway steers new connections itself).
    if command -v sysctl >/dev/null 2>&1; then
        sysctl -q -p "$SYSCTLDIR/60-$NAME.conf" ||
            echo "install: could not apply $SYSCTLDIR/60-$NAME.conf now (it applies at next boot where supported)" >&2
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    cat <<EOF
install: done. Next:
  make the API-key pepper (once; docs/operations.md, "The API-key pepper"):
    openssl rand -hex 32 | install -m 0640 -o root -g $NAME /dev/stdin $CONFDIR/api-key-pepper
  edit $CONFDIR/gateway.conf ([upstream] url, [redis]), then
  $BINDIR/$NAME check-config --config $CONFDIR/gateway.conf
  systemctl enable --now $NAME
  (or, for restarts that never refuse a connection, socket activation:
   systemctl enable --now $NAME.socket $NAME; docs/operations.md, "Upgrading")
EOF
fi
