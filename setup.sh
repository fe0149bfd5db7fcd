#!/usr/bin/env bash
# nsbridge set-up, idempotent, for a fresh Debian 12+/Ubuntu 22.04+ machine, as root (sudo, or a root shell).
#   sudo ./setup.sh          install what is missing, then run the tutorials' walkthrough demo in a sandbox host
#   sudo ./setup.sh test     install what is missing (and the test tools), then run the whole test suite
# tools/fresh-debian.sh runs both on a minimal Debian 12 made by debootstrap.
# Installs: system packages (iproute2, iptables, iputils-ping, ...), a venv in .venv with the package,
# and /usr/local/bin/nsbridge so that `sudo nsbridge ...` works.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
mode="${1:-demo}"
shift || true

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (sudo ./setup.sh $mode)" >&2
  exit 1
fi

say() { printf '\n== %s\n' "$*"; }

# System packages: the kernel tools nsbridge drives, and what the tests and benchmarks use
# (dnsutils for nslookup/dig inside containers, net-tools for the tutorials' `ifconfig docker0`,
# iperf3, dnsmasq-base and aardvark-dns for benchmarks; tcpdump brings libpcap, which compiles
# `nsbridge trace`'s filters, and reads its pcap files).
pkgs=(iproute2 iptables iputils-ping procps kmod dnsutils net-tools iperf3 dnsmasq-base psmisc busybox tcpdump)
optional=()  # installed where the release has them (Ubuntu 22.04 has no aardvark-dns)
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  # etcd-server: the cluster store of the overlay tests (started by the tests themselves, inside
  # namespaces they create; where a release lacks it, those tests say they did not run).
  # (tcpdump, above, also shows the VXLAN packets on the tests' underlay.)
  optional+=(aardvark-dns etcd-server)
fi
if [ "$mode" = test ]; then
  # a real headless browser renders `show --format html` in the tests (large: tests only; run in a
  # sandbox host's namespace; where the release has no chromium package the test says it did not run)
  optional+=(chromium)
fi
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
wanted=()
for p in "${optional[@]}"; do installed "$p" || wanted+=("$p"); done
if [ "${#missing[@]}" -gt 0 ] || [ "${#wanted[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # No service may start on this machine because of us: Debian's etcd-server would start an etcd
  # on localhost:2379. A policy-rc.d that says "no" for the install, unless the machine has one.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# set by nsbridge setup.sh for one apt-get install\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  for p in "${wanted[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then missing+=("$p"); else echo "setup.sh: $p is not in this release: skipped (what needs it says so)"; fi
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --quiet etcd.service 2>/dev/null || true  # nor at the next boot
  fi
fi
if trap -p EXIT | grep -q policy-rc.d; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
modprobe br_netfilter 2>/dev/null || true

# `setup.sh bench docker|all`: Debian's Docker daemon (docker.io) for the side-by-side benchmark, which runs
# it in network namespaces of its own (tools/docker_netns.py). Installing it must never start it in the
# machine's own namespace: a policy-rc.d that refuses every start guards the install (Debian's invoke-rc.d
# and deb-systemd-invoke obey it), and on a systemd machine its units are disabled, so that neither a
# boot nor a `docker` command (socket activation) starts it there later.
if [ "$mode" = bench ] && { [ "${1:-}" = docker ] || [ "${1:-}" = all ]; } && ! command -v dockerd >/dev/null 2>&1; then
  apt-cache show docker.io >/dev/null 2>&1 || apt-get update -qq
  if apt-cache show docker.io >/dev/null 2>&1; then
    say "installing docker.io (not started: the benchmark runs its daemon in namespaces of its own)"
    prc=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$prc" ]; then saved="$(mktemp)"; cp -p "$prc" "$saved"; fi
    restore_prc() { if [ -n "$saved" ]; then mv -f "$saved" "$prc"; else rm -f "$prc"; fi; }
    trap restore_prc EXIT
    printf '#!/bin/sh\n# setup.sh: no service may start while docker.io installs\nexit 101\n' >"$prc"
    chmod 755 "$prc"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    restore_prc
    trap - EXIT
    if [ -d /run/systemd/system ]; then systemctl disable --now docker.socket docker.service >/dev/null 2>&1 || true; fi
  else
    echo "setup.sh: docker.io is not in this release: bench docker measures nsbridge alone"
  fi
fi

# The Python package in a venv (re-installed when pyproject.toml changed).
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
extras="[tools]"  # scapy, for `nsbridge trace`
if [ "$mode" = test ] || [ "$mode" = bench ]; then extras="[test]"; fi
stamp="$venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing nsbridge$extras into $venv"
  # compat mode: a plain .pth path entry; the default editable finder adds ~8 ms to every start
  "$venv/bin/pip" install -q --disable-pip-version-check -e ".$extras" --config-settings editable_mode=compat
  # bytecode now: CLI start-up must not compile every module each run (PYTHONDONTWRITEBYTECODE may be set)
  "$venv/bin/python" -m compileall -q nsbridge >/dev/null
  touch "$stamp"
fi
# The command itself, in place of pip's script: Python starts with SIGINT blocked (coreutils' env),
# so a Ctrl-C while it is still starting waits until nsbridge can answer it quietly with exit 130
# (nsbridge/__init__.py unblocks it), instead of a KeyboardInterrupt traceback from the middle of an import.
launcher="#!/usr/bin/env -S --block-signal=INT $venv/bin/python3
from nsbridge.cli.main import main
raise SystemExit(main())"
if [ "$(cat "$venv/bin/nsbridge" 2>/dev/null)" != "$launcher" ]; then
  printf '%s\n' "$launcher" > "$venv/bin/nsbridge.new" && chmod 755 "$venv/bin/nsbridge.new" && mv "$venv/bin/nsbridge.new" "$venv/bin/nsbridge"
fi
ln -sf "$venv/bin/nsbridge" /usr/local/bin/nsbridge

case "$mode" in
  demo)
    say "the tutorials' walkthrough, in a sandbox host (the machine's own network is not touched)"
    exec "$venv/bin/python" "$here/tools/demo.py" "$@"
    ;;
  test)
    say "test suite"
    set +e
    "$venv/bin/python" -m pytest -q -ra "$@" tests
    rc=$?
    set -e
    exit $rc
    ;;
  bench)
    exec "$venv/bin/python" "$here/tools/bench.py" "$@"
    ;;
  install)
    echo "installed: $(command -v nsbridge)"
    ;;
  *)
    echo "usage: sudo ./setup.sh [demo|test|bench|install]" >&2
    exit 2
    ;;
esac
