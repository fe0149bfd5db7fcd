#!/usr/bin/env bash
# The README's two commands on a fresh, minimal Debian, as a new user would type them.
#
#   sudo tools/fresh-debian.sh [--keep] [--demo-only]
#
# Makes a minimal Debian 12 (`debootstrap --variant=minbase bookworm`: no sudo, no git,
# no Python) in a directory under /var/tmp, clones this repository's committed HEAD into
# its /root (mode 0700, as root's own checkout would be), and runs inside it, as root,
# `./setup.sh` and then `./setup.sh test`. Prints a report and exits non-zero if either
# failed. Everything runs in a private mount namespace: the kernel filesystems bound in
# (/proc, /sys, /dev), the tmpfs on /run (where the engine registers namespaces under
# /run/netns and keeps its runtime files) and every namespace mount the tests make vanish
# with it, so nothing of it reaches the machine's own mount table. Processes still running
# inside at the end are killed (by pid, found by their root directory), and the directory
# is removed, unless --keep.
#
# Environment: SUITE (default bookworm), MIRROR (default: the machine's Debian mirror,
# else http://deb.debian.org/debian), LOG (default /tmp/nsbridge-fresh-debian.log).
# The machine's proxy and pip settings (http_proxy..., PIP_*) are passed in, and its CA
# bundle too when PIP_CERT names one, so the chroot reaches the same registries.
# cgroups are not needed: nsbridge uses none.
set -euo pipefail

keep=0
demo_only=0
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    --demo-only) demo_only=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--keep] [--demo-only]" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-debian.sh: run as root" >&2
  exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
suite="${SUITE:-bookworm}"
log="${LOG:-/tmp/nsbridge-fresh-debian.log}"
mirror="${MIRROR:-}"
if [ -z "$mirror" ]; then
  # the first active Debian archive of the machine's own sources (deb822 `URIs:` or one-line `deb`)
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
            | sed -nE 's,^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^[:space:]]+/debian)/?([[:space:]].*)?$,\3,p' \
            | head -n1 || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

say() { printf '\n== fresh-debian: %s\n' "$*" | tee -a "$log"; }
: >"$log"

work="$(mktemp -d /var/tmp/nsbridge-fresh.XXXXXX)"
root="$work/root"

kill_inside() {
  # processes whose root directory is the chroot: ours, started by the commands below
  local pids=() p r
  for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2>/dev/null || true)"
    if [ "$r" = "$root" ] || [[ "$r" == "$root/"* ]]; then pids+=("${p#/proc/}"); fi
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    echo "fresh-debian: killing ${#pids[@]} process(es) left inside: ${pids[*]}" | tee -a "$log"
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  fi
}

cleanup() {
  kill_inside
  if [ "$keep" = 1 ]; then
    echo "fresh-debian: kept $work" | tee -a "$log"
    return
  fi
  if grep -q " $work" /proc/self/mounts; then
    # cannot happen (the mounts lived in a private namespace), but never delete through a mount
    echo "fresh-debian: $work still has mounts; not removed" | tee -a "$log"
    return
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

say "debootstrap --variant=minbase $suite from $mirror into $root"
t0=$SECONDS
debootstrap --variant=minbase "$suite" "$root" "$mirror" >>"$log" 2>&1
say "minimal $suite made in $((SECONDS - t0)) s; it has: $(chroot "$root" sh -c 'for p in sudo git python3; do command -v $p >/dev/null && printf "%s " $p; done; true')(none of sudo, git, python3 is expected)"

# The project as a fresh clone of the committed HEAD (what a user clones), root's only.
rev="$(git -C "$here" rev-parse HEAD)"
git clone -q --no-hardlinks "$here" "$root/root/nsbridge"
git -C "$root/root/nsbridge" checkout -q "$rev"
chmod 700 "$root/root" "$root/root/nsbridge"
say "cloned $(git -C "$here" rev-parse --short HEAD) into /root/nsbridge (mode 0700)"

cp /etc/resolv.conf "$root/etc/resolv.conf"
passenv=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM="${TERM:-xterm}")
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
         PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK; do
  if [ -n "${!v:-}" ]; then passenv+=("$v=${!v}"); fi
done
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  mkdir -p "$root/etc/nsbridge-fresh"
  cp "$PIP_CERT" "$root/etc/nsbridge-fresh/ca.crt"
  passenv+=(PIP_CERT=/etc/nsbridge-fresh/ca.crt)
fi

steps='./setup.sh'
if [ "$demo_only" = 0 ]; then steps='./setup.sh && ./setup.sh test'; fi
inner='
set -e
R="$1"; shift
mount --bind "$R" "$R"   # / of the chroot a mount point, as a real root is: containers make it a slave
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
exec chroot "$R" /usr/bin/env -i "$@"
'
say "as root inside: cd /root/nsbridge && $steps"
t1=$SECONDS
set +e
unshare --mount --propagation private -- bash -c "$inner" inner "$root" "${passenv[@]}" \
  /bin/bash -c "cd /root/nsbridge && t=\$SECONDS && ./setup.sh; rc=\$?; echo \"== fresh-debian: setup.sh exit \$rc after \$((SECONDS - t)) s\"; [ \$rc = 0 ] || exit \$rc; [ $demo_only = 1 ] && exit 0; t=\$SECONDS; ./setup.sh test; rc=\$?; echo \"== fresh-debian: setup.sh test exit \$rc after \$((SECONDS - t)) s\"; exit \$rc" \
  2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
set -e

say "report ($((SECONDS - t1)) s inside; full log: $log)"
grep -E '^== fresh-debian: setup.sh|^(FAILED|ERROR) |^=+ .*(passed|failed|error).* =+$' "$log" | tail -n 40 || true
if [ "$rc" = 0 ]; then
  echo "fresh-debian: both commands passed on a minimal $suite"
else
  echo "fresh-debian: FAILED (exit $rc)"
fi
exit "$rc"
