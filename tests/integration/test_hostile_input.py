"""Hostile and mistaken input (issue 6): every bad command gives a one-line error
and a non-zero exit, and leaves the store, the kernel (links, addresses, routes,
rules, namespaces), the state files and the processes exactly as they were.

One sandbox host serves the whole table (building it costs more than all the
cases); every case compares a full snapshot taken before and after it. Then:
no Python traceback ever reaches the user (a corrupt state, an unreadable
database), and without root or its capabilities the CLI says so in one line.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from nsbridge.sandbox import Sandbox

D = "Error response from daemon: "
R = "nsbridge: "  # what `run`/`create` put before an error, as `docker:` does
N65 = "n" * 65


# -- the world the cases run against ---------------------------------------------------------
def _first_char_groups(ids: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(i[0], []).append(i)
    return groups


class World:
    """lab (10.10.0.0/24) with web at 10.10.0.200 publishing 8080, skynet, a default-bridge
    container, and enough networks and containers that a 1-character ID prefix of each
    kind is ambiguous."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        sb.cli("network", "create", "--subnet", "10.10.0.0/24", "lab", check=True)
        sb.cli("network", "create", "skynet", check=True)
        self.web = sb.cli("run", "-d", "--name", "web", "--network", "lab", "--ip", "10.10.0.200", "-p", "8080:80",
                          "alpine", check=True).stdout.strip()
        sb.cli("run", "-d", "--name", "legacy", "alpine", check=True)
        self.lab = self.net_id("lab")
        # more networks until two IDs share their first character (16 + 1 at most, by pigeonhole)
        i = 0
        while True:
            ids = sb.cli("network", "ls", "-q", "--no-trunc", check=True).stdout.split()
            amb = {c: g for c, g in _first_char_groups(ids).items() if len(g) > 1}
            if amb:
                self.net_prefix, self.net_matches = min(amb.items())
                self.net_matches = len(self.net_matches)
                break
            sb.cli("network", "create", "--internal", f"amb{i}", check=True)
            i += 1
        # more containers (created, not started: no kernel objects) likewise
        i = 0
        while True:
            ids = sb.cli("ps", "-aq", "--no-trunc", check=True).stdout.split()
            amb = {c: g for c, g in _first_char_groups(ids).items() if len(g) > 1}
            if amb:
                self.ctr_prefix = min(amb)
                break
            sb.cli("create", "--name", f"amb{i}", "alpine", check=True)
            i += 1

    def net_id(self, name: str) -> str:
        return self.sb.cli("network", "inspect", "--format", "{{.Id}}", name, check=True).stdout.strip()


@pytest.fixture(scope="module")
def world():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: run the README's test command (sudo ./setup.sh test)")
    box = Sandbox()
    try:
        yield World(box)
    finally:
        leaks = box.destroy()
    assert not leaks, f"sandbox {box.name} leaked: {leaks}"


# -- what must not change --------------------------------------------------------------------
NOT_STATE = {"nsbridge.log", "state.db", "state.db-wal", "state.db-shm", "lock"}


def _link(line: str) -> str:
    """An `ip -o link` line without its operational state and carrier flags (a bridge
    loses or regains carrier by itself when ports come and go)."""
    line = re.sub(r" state \S+", "", line)
    return re.sub(r"<([^>]*)>", lambda m: "<" + ",".join(
        f for f in m.group(1).split(",") if f not in ("LOWER_UP", "NO-CARRIER", "M-DOWN")) + ">", line)


def snapshot(sb: Sandbox) -> dict:
    """Store rows, kernel objects of the sandbox host, state files and processes."""

    def host(*cmd: str) -> list[str]:
        return sorted(sb.host_run(*cmd, check=True).stdout.splitlines())

    db = sqlite3.connect(f"file:{sb.root}/state.db?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
    finally:
        db.close()
    files = {}
    for d, _, names in os.walk(sb.root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), sb.root)
            if rel in NOT_STATE or n.endswith(".log"):
                continue
            with open(os.path.join(d, n), "rb") as f:
                files[rel] = hashlib.sha256(f.read()).hexdigest()
    return {
        "store": rows,
        "netns": sb.netns_names(),
        # without what the kernel changes by itself (operational state, carrier)
        "links": [_link(x) for x in host("ip", "-o", "link", "show")],
        "addresses": host("ip", "-o", "addr", "show"),
        "routes": [x.replace(" linkdown", "") for x in host("ip", "route", "show", "table", "all")],
        # without the packet counters of the built-in chains' policies
        "rules": [re.sub(r" \[\d+:\d+\]$", "", x) for x in host("iptables-save") if not x.startswith("#")],
        "files": files,
        "processes": sorted(sb.processes()),
        # not compared: what the resolvers said, shown when a snapshot differs (a resolver
        # that stopped between two commands is restarted by the next one)
        "_resolver_logs": {
            n: open(os.path.join(sb.root, "dns", n)).read()[-600:]
            for n in (os.listdir(os.path.join(sb.root, "dns")) if os.path.isdir(os.path.join(sb.root, "dns")) else [])
            if n.endswith(".log")
        },
    }


def assert_unchanged(before: dict, after: dict) -> None:
    """Snapshots equal, or an error that shows what changed (a unified diff per part)."""
    import difflib

    diffs = []
    for key in before:
        if key.startswith("_"):
            continue
        if after[key] != before[key]:
            a = before[key] if isinstance(before[key], list) else json.dumps(before[key], indent=1).splitlines()
            b = after[key] if isinstance(after[key], list) else json.dumps(after[key], indent=1).splitlines()
            diffs.append(f"{key} changed:\n" + "\n".join(difflib.unified_diff(a, b, lineterm="", n=0)))
    if diffs:
        diffs.append("resolver logs after:\n" + "\n".join(f"{n}: {t}" for n, t in after.get("_resolver_logs", {}).items()))
    assert not diffs, "\n".join(diffs)


HINT = re.compile(r"^(|Run 'nsbridge (run|create) --help' for more information|See 'nsbridge [a-z ]+ --help'\.)$")


def error_lines(stderr: str) -> list[str]:
    """The error lines: Docker's fixed hint lines (a blank line and "Run 'nsbridge run
    --help' for more information" after a run error, "See '... --help'." after a usage
    error) are not errors and are left out."""
    return [x for x in stderr.splitlines() if not HINT.match(x)]


# -- the table ---------------------------------------------------------------------------------
# (id, argv, exit code, the error lines; "{web}", "{lab}", "{np}", "{nn}", "{cp}" are filled in)
CASES = [
    # names
    ("net-name-empty", ["network", "create", ""], 1, [D + "network name must not be empty"]),
    ("net-name-65", ["network", "create", N65], 1, [D + f"invalid network name {'n' * 20}...: longer than 64 characters"]),
    ("net-name-slash", ["network", "create", "bad/name"], 1,
     [D + "invalid network name (bad/name): only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"]),
    ("net-name-space", ["network", "create", "bad name"], 1,
     [D + "invalid network name (bad name): only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"]),
    ("net-name-newline", ["network", "create", "ab\n"], 1,
     [D + "invalid network name (ab\\n): only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"]),
    ("net-name-bridge", ["network", "create", "bridge"], 1, [D + "operation is not permitted on predefined bridge network"]),
    ("net-name-host", ["network", "create", "host"], 1, [D + "operation is not permitted on predefined host network"]),
    ("net-name-none", ["network", "create", "none"], 1, [D + "operation is not permitted on predefined none network"]),
    ("net-name-taken", ["network", "create", "lab"], 1, [D + "network with name lab already exists"]),
    ("ctr-name-one-char", ["run", "-d", "--name", "x", "alpine"], 125,
     [R + D + "Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"]),
    ("ctr-name-bang", ["run", "-d", "--name", "bad!name", "alpine"], 125,
     [R + D + "Invalid container name (bad!name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"]),
    ("ctr-name-newline", ["run", "-d", "--name", "cd\n", "alpine"], 125,
     [R + D + "Invalid container name (cd\\n), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"]),
    ("ctr-name-65", ["run", "-d", "--name", N65, "alpine"], 125,
     [R + D + f"Invalid container name ({'n' * 20}...): longer than 64 characters"]),
    ("ctr-name-taken", ["run", "-d", "--name", "web", "alpine"], 125,
     [R + D + 'Conflict. The container name "/web" is already in use by container "{web}". '
      "You have to remove (or rename) that container to be able to reuse that name."]),
    ("rename-bad", ["rename", "web", "bad/name"], 1,
     [D + "Invalid container name (bad/name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"]),
    # subnets
    ("subnet-not-cidr", ["network", "create", "--subnet", "notacidr", "x1"], 1,
     [D + "Invalid subnet notacidr : invalid CIDR address: notacidr"]),
    ("subnet-prefix-33", ["network", "create", "--subnet", "10.0.0.0/33", "x1"], 1,
     [D + "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"]),
    ("subnet-netmask-form", ["network", "create", "--subnet", "10.0.0.0/255.0.0.0", "x1"], 1,
     [D + "Invalid subnet 10.0.0.0/255.0.0.0 : invalid CIDR address: 10.0.0.0/255.0.0.0"]),
    ("subnet-host-bits", ["network", "create", "--subnet", "10.20.0.1/24", "x1"], 1,
     [D + "invalid subnet 10.20.0.1/24: host bits are set (did you mean 10.20.0.0/24?)"]),
    ("subnet-overlap", ["network", "create", "--subnet", "10.10.0.128/25", "x1"], 1,
     [D + "Pool overlaps with other one on this address space"]),
    ("subnet-overlap-default", ["network", "create", "--subnet", "172.17.5.0/24", "x1"], 1,
     [D + "Pool overlaps with other one on this address space"]),
    ("subnet-31", ["network", "create", "--subnet", "10.20.0.0/31", "x1"], 1,
     [D + "invalid subnet 10.20.0.0/31: too small to hold a gateway and one container (use /30 or larger)"]),
    ("subnet-32", ["network", "create", "--subnet", "10.20.0.0/32", "x1"], 1,
     [D + "invalid subnet 10.20.0.0/32: too small to hold a gateway and one container (use /30 or larger)"]),
    ("subnet-loopback", ["network", "create", "--subnet", "127.0.0.0/24", "x1"], 1,
     [D + "invalid subnet 127.0.0.0/24: it overlaps the loopback range 127.0.0.0/8"]),
    ("subnet-multicast", ["network", "create", "--subnet", "224.1.0.0/16", "x1"], 1,
     [D + "invalid subnet 224.1.0.0/16: it overlaps the multicast range 224.0.0.0/4"]),
    ("subnet-link-local", ["network", "create", "--subnet", "169.254.0.0/16", "x1"], 1,
     [D + "invalid subnet 169.254.0.0/16: it overlaps the link-local range 169.254.0.0/16"]),
    ("subnet-two", ["network", "create", "--subnet", "10.1.0.0/24", "--subnet", "10.2.0.0/24", "x1"], 1,
     [D + "bridge driver doesn't support multiple subnets"]),
    ("subnet-two-overlapping", ["network", "create", "--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24", "x1"], 1,
     ["multiple overlapping subnet configuration is not supported"]),
    # --aux-address
    ("aux-outside", ["network", "create", "--subnet", "10.30.0.0/24", "--aux-address", "r=10.31.0.5", "x1"], 1,
     ["no matching subnet for aux-address 10.31.0.5"]),
    ("aux-no-subnet", ["network", "create", "--aux-address", "r=10.31.0.5", "x1"], 1,
     ["no matching subnet for aux-address 10.31.0.5"]),
    ("aux-text", ["network", "create", "--subnet", "10.30.0.0/24", "--aux-address", "r=abc", "x1"], 1,
     ['ParseAddr("abc"): unable to parse IP']),
    ("aux-is-gateway", ["network", "create", "--subnet", "10.30.0.0/24", "--aux-address", "r=10.30.0.1", "x1"], 1,
     [D + "failed to allocate secondary ip address (r:10.30.0.1): Address already in use"]),
    # gateways and ip-ranges
    ("gateway-outside", ["network", "create", "--subnet", "10.30.0.0/24", "--gateway", "10.31.0.1", "x1"], 1,
     ["no matching subnet for gateway 10.31.0.1"]),
    ("gateway-no-subnet", ["network", "create", "--gateway", "10.31.0.1", "x1"], 1,
     ["every ip-range or gateway must have a corresponding subnet"]),
    ("gateway-broadcast", ["network", "create", "--subnet", "10.30.0.0/24", "--gateway", "10.30.0.255", "x1"], 1,
     [D + "invalid gateway 10.30.0.255: it is the network or broadcast address of 10.30.0.0/24"]),
    ("gateway-text", ["network", "create", "--subnet", "10.30.0.0/24", "--gateway", "abc", "x1"], 1,
     [D + "invalid gateway: abc"]),
    ("range-outside", ["network", "create", "--subnet", "10.40.0.0/24", "--ip-range", "10.41.0.0/25", "x1"], 1,
     ["no matching subnet for range 10.41.0.0/25"]),
    ("range-bigger", ["network", "create", "--subnet", "10.60.0.0/24", "--ip-range", "10.60.0.0/23", "x1"], 1,
     ["no matching subnet for range 10.60.0.0/23"]),
    ("range-host-bits", ["network", "create", "--subnet", "10.40.0.0/24", "--ip-range", "10.40.0.1/25", "x1"], 1,
     [D + "invalid ip-range 10.40.0.1/25: not a CIDR without host bits"]),
    # --ip
    ("ip-outside", ["run", "-d", "--network", "lab", "--ip", "10.99.0.5", "alpine"], 125,
     [R + D + "Invalid address 10.99.0.5: It does not belong to any of this network's subnets"]),
    ("ip-taken", ["run", "-d", "--network", "lab", "--ip", "10.10.0.200", "alpine"], 125,
     [R + D + "Address already in use"]),
    ("ip-gateway", ["run", "-d", "--network", "lab", "--ip", "10.10.0.1", "alpine"], 125,
     [R + D + "Address already in use"]),
    ("ip-broadcast", ["run", "-d", "--network", "lab", "--ip", "10.10.0.255", "alpine"], 125,
     [R + D + "Invalid address 10.10.0.255: it is the network or broadcast address of 10.10.0.0/24"]),
    ("ip-text", ["run", "-d", "--network", "lab", "--ip", "notanip", "alpine"], 125,
     [R + D + "invalid IP address: notanip"]),
    ("ip-two-networks", ["run", "-d", "--network", "lab", "--network", "skynet", "--ip", "10.10.0.9", "alpine"], 125,
     [R + "conflicting options: --ip is an address on one network, and 2 were given with --network "
      "(give each its own: --network name=NET,ip=IP)"]),
    ("ip-default-bridge", ["run", "-d", "--ip", "172.17.0.50", "alpine"], 125,
     [R + D + "user specified IP address is supported on user defined networks only"]),
    ("connect-ip-outside", ["network", "connect", "--ip", "10.99.0.5", "lab", "legacy"], 1,
     [D + "Invalid address 10.99.0.5: It does not belong to any of this network's subnets"]),
    ("connect-ip-taken", ["network", "connect", "--ip", "10.10.0.200", "lab", "legacy"], 1,
     [D + "Address already in use"]),
    # ports
    ("port-container-0", ["run", "-d", "-p", "80:0", "alpine"], 125, [R + "invalid containerPort: 0"]),
    ("port-65536", ["run", "-d", "-p", "65536:80", "alpine"], 125, [R + "invalid hostPort: 65536"]),
    ("port-text", ["run", "-d", "-p", "abc", "alpine"], 125, [R + "invalid containerPort: abc"]),
    ("port-reversed-host", ["run", "-d", "-p", "8090-8089:80-81", "alpine"], 125, [R + "invalid hostPort: 8090-8089"]),
    ("port-reversed-container", ["run", "-d", "-p", "8080:81-80", "alpine"], 125, [R + "invalid containerPort: 81-80"]),
    ("port-ranges-differ", ["run", "-d", "-p", "8100-8102:80-81", "alpine"], 125,
     [R + "invalid ranges specified for container and host Ports: 80-81 and 8100-8102"]),
    ("port-open-range", ["run", "-d", "-p", "80-", "alpine"], 125, [R + "invalid containerPort: 80-"]),
    ("port-multicast-ip", ["run", "-d", "-p", "224.0.0.1:8088:82", "alpine"], 125,
     [R + "invalid IP address 224.0.0.1: a multicast address is not a host address to publish on"]),
    ("port-proto", ["run", "-d", "-p", "8200:80/sctpx", "alpine"], 125, [R + "invalid proto: sctpx"]),
    ("port-allocated", ["run", "-d", "--name", "portdup", "-p", "8080:80", "alpine"], 125,
     [re.compile(re.escape(R + D + "driver failed programming external connectivity on endpoint portdup (")
                 + "[0-9a-f]{64}" + re.escape("): Bind for 0.0.0.0:8080 failed: port is already allocated"))]),
    # -o options
    ("opt-unknown", ["network", "create", "-o", "foo=bar", "x1"], 1,
     [D + "unknown network option foo (known: com.docker.network.bridge.name, com.docker.network.bridge.enable_icc, "
      "com.docker.network.bridge.enable_ip_masquerade, com.docker.network.bridge.host_binding_ipv4, "
      "com.docker.network.driver.mtu)"]),
    ("opt-no-value", ["network", "create", "-o", "com.docker.network.driver.mtu", "x1"], 1,
     [D + "invalid option 'com.docker.network.driver.mtu': expected KEY=VALUE"]),
    ("mtu-text", ["network", "create", "-o", "com.docker.network.driver.mtu=abc", "x1"], 1,
     [D + 'failed to parse com.docker.network.driver.mtu value: abc (strconv.Atoi: parsing "abc": invalid syntax)']),
    ("mtu-67", ["network", "create", "-o", "com.docker.network.driver.mtu=67", "x1"], 1,
     [D + "invalid com.docker.network.driver.mtu value: 67 (the MTU must be between 68 and 65535)"]),
    ("mtu-10", ["network", "create", "-o", "com.docker.network.driver.mtu=10", "x1"], 1,
     [D + "invalid com.docker.network.driver.mtu value: 10 (the MTU must be between 68 and 65535)"]),
    ("icc-maybe", ["network", "create", "-o", "com.docker.network.bridge.enable_icc=maybe", "x1"], 1,
     [D + 'failed to parse com.docker.network.bridge.enable_icc value: maybe '
      '(strconv.ParseBool: parsing "maybe": invalid syntax)']),
    ("bridge-name-bad", ["network", "create", "-o", "com.docker.network.bridge.name=brx\n", "x1"], 1,
     [D + "invalid com.docker.network.bridge.name value: brx\\n (an interface name of 1-15 characters [a-zA-Z0-9_.-])"]),
    ("bridge-name-taken", ["network", "create", "-o", "com.docker.network.bridge.name=lo", "x1"], 1,
     [D + "bridge name lo is already in use by another interface"]),
    ("driver-unknown", ["network", "create", "-d", "nosuchdriver", "x1"], 1, [D + 'plugin "nosuchdriver" not found']),
    ("driver-host", ["network", "create", "-d", "host", "x1"], 1, [D + 'only one instance of "host" network is allowed']),
    ("label-no-key", ["network", "create", "--label", "=x", "x1"], 1, [D + "invalid label '=x': expected KEY=VALUE"]),
    # default networks
    ("rm-bridge", ["network", "rm", "bridge"], 1, [D + "bridge is a pre-defined network and cannot be removed"]),
    ("rm-host-none", ["network", "rm", "host", "none"], 1,
     [D + "host is a pre-defined network and cannot be removed", D + "none is a pre-defined network and cannot be removed"]),
    ("connect-host", ["network", "connect", "host", "web"], 1,
     [D + "container cannot be disconnected from host network or connected to host network"]),
    ("connect-none", ["network", "connect", "none", "web"], 1,
     [D + "container cannot be connected to multiple networks with one of the networks in private (none) mode"]),
    ("disconnect-host", ["network", "disconnect", "host", "web"], 1,
     [D + "container cannot be disconnected from host network or connected to host network"]),
    ("alias-default-bridge", ["run", "-d", "--network-alias", "foo", "alpine"], 125,
     [R + "network-scoped aliases are only supported for user-defined networks"]),
    ("alias-bridge-by-name", ["run", "-d", "--network", "bridge", "--network-alias", "foo", "alpine"], 125,
     [R + "network-scoped aliases are only supported for user-defined networks"]),
    ("connect-alias-default-bridge", ["network", "connect", "--alias", "foo", "bridge", "web"], 1,
     [D + "network-scoped aliases are only supported for user-defined networks"]),
    ("connect-link-default-bridge", ["network", "connect", "--link", "web:w", "bridge", "legacy"], 1,
     [D + "links are only supported for user-defined networks"]),
    # --mac-address
    ("mac-bad", ["run", "-d", "--mac-address", "02:42:ac:11", "alpine"], 125,
     [R + "02:42:ac:11 is not a valid mac address"]),
    ("mac-multicast", ["run", "-d", "--mac-address", "01:00:5e:00:00:01", "alpine"], 125,
     [R + D + "invalid MAC address 01:00:5e:00:00:01: a multicast address cannot be an interface's address"]),
    ("mac-host-mode", ["run", "-d", "--network", "host", "--mac-address", "02:00:00:00:00:01", "alpine"], 125,
     [R + D + "conflicting options: mac-address and the network mode"]),
    ("run-none-and-net", ["run", "-d", "--network", "none", "--network", "lab", "alpine"], 125,
     [R + D + "container cannot be connected to multiple networks with one of the networks in private (none) mode"]),
    # unknown objects
    ("rm-nosuch", ["rm", "nosuch"], 1, [D + "No such container: nosuch"]),
    ("rm-nosuch-and-running", ["rm", "nosuch", "web"], 1,
     [D + "No such container: nosuch", D + "You cannot remove a running container {web}. "
      "Stop the container before attempting removal or force remove"]),
    ("net-rm-nosuch", ["network", "rm", "nosuch"], 1, [D + "network nosuch not found"]),
    ("net-rm-newline", ["network", "rm", "ab\nc"], 1, [D + "network ab\\nc not found"]),
    ("net-rm-in-use", ["network", "rm", "lab"], 1,
     [D + "error while removing network: network lab id {lab} has active endpoints"]),
    ("connect-nosuch-net", ["network", "connect", "nosuch", "web"], 1, [D + "network nosuch not found"]),
    ("connect-nosuch-ctr", ["network", "connect", "lab", "nosuch"], 1, [D + "No such container: nosuch"]),
    ("connect-twice", ["network", "connect", "lab", "web"], 1,
     [D + "endpoint with name web already exists in network lab"]),
    ("disconnect-not-connected", ["network", "disconnect", "skynet", "web"], 1,
     [D + "container {web} is not connected to network skynet"]),
    ("run-nosuch-net", ["run", "-d", "--network", "nosuch", "alpine"], 125, [R + D + "network nosuch not found"]),
    ("run-nosuch-container-mode", ["run", "-d", "--network", "container:nosuch", "alpine"], 125,
     [R + D + "No such container: nosuch"]),
    ("run-link-nosuch", ["run", "-d", "--link", "nosuch", "alpine"], 125,
     [R + D + "could not get container for nosuch: No such container: nosuch"]),
    ("exec-nosuch", ["exec", "nosuch", "true"], 1, [D + "No such container: nosuch"]),
    ("stop-nosuch", ["stop", "nosuch"], 1, [D + "No such container: nosuch"]),
    ("start-nosuch", ["start", "nosuch"], 1, [D + "No such container: nosuch"]),
    ("logs-nosuch", ["logs", "nosuch"], 1, [D + "No such container: nosuch"]),
    ("port-nosuch", ["port", "nosuch"], 1, [D + "No such container: nosuch"]),
    ("inspect-nosuch", ["inspect", "nosuch"], 1, ["Error: No such object: nosuch"]),
    ("net-inspect-nosuch", ["network", "inspect", "nosuch"], 1, [D + "network nosuch not found"]),
    # ambiguous ID prefixes
    ("net-prefix-rm", ["network", "rm", "{np}"], 1,
     [D + "network {np} is ambiguous ({nn} matches found based on ID prefix)"]),
    ("net-prefix-inspect", ["network", "inspect", "{np}"], 1,
     [D + "network {np} is ambiguous ({nn} matches found based on ID prefix)"]),
    ("net-prefix-connect", ["network", "connect", "{np}", "web"], 1,
     [D + "network {np} is ambiguous ({nn} matches found based on ID prefix)"]),
    ("net-prefix-run", ["run", "-d", "--network", "{np}", "alpine"], 125,
     [R + D + "network {np} is ambiguous ({nn} matches found based on ID prefix)"]),
    ("ctr-prefix-rm", ["rm", "-f", "{cp}"], 1, [D + "Multiple IDs found with provided prefix: {cp}"]),
    ("ctr-prefix-stop", ["stop", "{cp}"], 1, [D + "Multiple IDs found with provided prefix: {cp}"]),
    ("ctr-prefix-connect", ["network", "connect", "skynet", "{cp}"], 1,
     [D + "Multiple IDs found with provided prefix: {cp}"]),
    ("ctr-prefix-exec", ["exec", "{cp}", "true"], 1, [D + "Multiple IDs found with provided prefix: {cp}"]),
    # --format
    ("format-unclosed", ["network", "ls", "--format", "{{.Name"], 1,
     ["Template parsing error: template: :1: unclosed action"]),
    ("format-ps-unclosed", ["ps", "--format", "{{.Names"], 1,
     ["Template parsing error: template: :1: unclosed action"]),
    ("format-no-function", ["network", "inspect", "--format", "{{.Name | nofunc}}", "lab"], 1,
     ['Template parsing error: template: :1: function "nofunc" not defined']),
    ("format-nested-deep", ["network", "inspect", "--format", "{{if 1}}" * 1000 + "{{end}}" * 1000, "lab"], 1,
     ["Template parsing error: template: :1: max expression depth exceeded"]),
    ("format-parens-deep", ["network", "inspect", "--format", "{{print " + "(print " * 200 + "1" + ")" * 200 + "}}",
                            "lab"], 1, ["Template parsing error: template: :1: max expression depth exceeded"]),
    ("format-output-huge", ["network", "inspect", "--format", '{{pad "x" 999999999 0}}', "lab"], 1,
     ['template: :1:2: executing "" at <pad "x" 999999999 0>: exceeded maximum template output (16 MiB)']),
    ("format-range-huge", ["network", "inspect", "--format", "{{range 1000000000}}{{end}}", "lab"], 1,
     ["template: : exceeded maximum template steps (1000000)"]),
    ("format-exec-error", ["ps", "--format", "{{index .Names 1 2}}"], 1,
     ['template: :1:2: executing "" at <index .Names 1 2>: error calling index: can\'t index item of type int']),
    # flags and arguments
    ("flag-unknown", ["network", "create", "--foo", "x1"], 125, ["unknown flag: --foo"]),
    ("flag-unknown-run", ["run", "--bogus", "alpine"], 125, ["unknown flag: --bogus"]),
    ("flag-abbreviated", ["network", "rm", "--forc", "lab"], 125, ["unknown flag: --forc"]),
    ("flag-bad-int", ["stop", "-t", "abc", "web"], 1, ["argument -t/--time/--timeout: invalid int value: 'abc'"]),
    ("flag-no-value-run", ["run", "-d", "-p"], 125, ["argument -p/--publish: expected one argument"]),
    ("flag-no-value-container-run", ["container", "run", "-d", "--network"], 125,
     ["argument --network/--net: expected one argument"]),
    ("args-missing-name", ["network", "create"], 1, ['"nsbridge network create" requires exactly 1 argument.']),
    ("args-extra", ["network", "create", "a1", "b1"], 1, ['"nsbridge network create" requires exactly 1 argument.']),
    ("args-missing-container", ["network", "connect", "lab"], 1,
     ['"nsbridge network connect" requires exactly 2 arguments.']),
    ("args-run-nothing", ["run"], 125, ['"run" requires at least 1 argument.']),
    ("args-exec-no-command", ["exec", "web"], 1, ['"exec" requires at least 2 arguments.']),
    # other run options
    ("hostname-long", ["run", "-d", "-h", "h" * 65, "alpine"], 125, [R + D + f"invalid hostname format: {'h' * 65}"]),
    ("hostname-space", ["run", "-d", "-h", "a b", "alpine"], 125, [R + D + "invalid hostname format: a b"]),
    ("dns-not-ip", ["run", "-d", "--dns", "notanip", "alpine"], 125,
     [R + 'invalid argument "notanip" for "--dns" flag: notanip is not an ip address']),
    ("dns-injection", ["run", "-d", "--dns", "1.1.1.1\nnameserver 6.6.6.6", "alpine"], 125,
     [R + 'invalid argument "1.1.1.1\\nnameserver 6.6.6.6" for "--dns" flag: '
      "1.1.1.1\\nnameserver 6.6.6.6 is not an ip address"]),
    ("dns-search-bad", ["run", "-d", "--dns-search", "a b", "alpine"], 125,
     [R + 'invalid argument "a b" for "--dns-search" flag: a b is not a valid domain']),
    ("add-host-bad", ["run", "-d", "--add-host", "foo", "alpine"], 125,
     [R + 'invalid argument "foo" for "--add-host" flag: bad format for add-host: "foo"']),
    ("add-host-newline", ["run", "-d", "--add-host", "a\n6.6.6.6 evil:10.1.2.3", "alpine"], 125,
     [R + 'invalid argument "a\\n6.6.6.6 evil:10.1.2.3" for "--add-host" flag: '
      'bad format for add-host: "a\\n6.6.6.6 evil:10.1.2.3"']),
    ("restart-bogus", ["run", "-d", "--restart", "bogus", "alpine"], 125, [R + D + "invalid restart policy 'bogus'"]),
    ("command-missing", ["run", "-d", "--", "nosuchcommand"], 127, None),
    ("filter-unknown", ["network", "ls", "--filter", "bogus=1"], 1, [D + "Invalid filter 'bogus'"]),
    ("filter-no-value", ["network", "ls", "--filter", "label"], 1,
     ['invalid argument "label" for "-f, --filter" flag: bad format of filter (expected name=value)']),
    ("filter-type-bad", ["network", "ls", "--filter", "type=weird"], 1, [D + "Invalid filter: 'type'='weird'"]),
    ("env-no-name", ["run", "-d", "-e", "=x", "alpine"], 125,
     [R + 'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x']),
    ("exec-env-no-name", ["exec", "-e", "=x", "web", "true"], 1,
     ['invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x']),
]


def fill(text, w: World):
    if isinstance(text, re.Pattern):
        return text
    for key, value in (("{web}", w.web), ("{lab}", w.lab), ("{np}", w.net_prefix), ("{nn}", str(w.net_matches)),
                       ("{cp}", w.ctr_prefix)):
        text = text.replace(key, value)
    return text


def test_the_table_is_large():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv,code,lines", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(world, argv, code, lines):
    sb = world.sb
    argv = [fill(a, world) for a in argv]
    before = snapshot(sb)
    r = sb.cli(*argv)
    after = snapshot(sb)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    got = error_lines(r.stderr)
    assert r.returncode == code, (r.returncode, r.stderr)
    if lines is None:  # the text is another test's business; one line all the same
        assert len(got) == 1, r.stderr
    else:
        want = [fill(x, world) for x in lines]
        assert len(got) == len(want), r.stderr
        for g, w in zip(got, want):
            assert w.fullmatch(g) if isinstance(w, re.Pattern) else g == w, (g, w)
    assert r.stdout.strip() in ("", "[]"), r.stdout
    assert_unchanged(before, after)


# -- no traceback ever reaches the user ---------------------------------------------------------
def one_internal_error(r: subprocess.CompletedProcess, root: str) -> str:
    """stderr is one line that names the log; the log holds the traceback."""
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    log = os.path.join(root, "nsbridge.log")
    assert lines[0].startswith("nsbridge: internal error: ") and lines[0].endswith(f"(details in {log})"), lines[0]
    with open(log) as f:
        text = f.read()
    assert "Traceback (most recent call last)" in text
    return lines[0]


def copy_of_state(sb: Sandbox, tmp_path) -> tuple[str, dict]:
    """A copy of the sandbox's state root (the sandbox itself stays sound for its teardown),
    and an environment that points the CLI at it. The copy is another engine (another state
    root), so it gets a sandbox host of its own (`reset_copy` removes it)."""
    copy = str(tmp_path / "state-copy")
    sb.cli("network", "ls", check=True)  # nothing writing while we copy (the -wal and -shm files come along)
    shutil.copytree(sb.root, copy, ignore=shutil.ignore_patterns("*.log", "lock"))
    os.chmod(copy, 0o700)
    return copy, dict(sb.env, NSBRIDGE_ROOT=copy, NSBRIDGE_HOST_NETNS=sb.name + "c")


def reset_copy(sb: Sandbox, env: dict) -> None:
    """The copy's own sandbox host goes, found by its mark (its state is broken on purpose)."""
    r = subprocess.run(sb.argv("system", "reset", "-f"), env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(f"/run/netns/{env['NSBRIDGE_HOST_NETNS']}")


def test_corrupt_state_gives_one_line_and_a_logged_traceback(sb, tmp_path):
    sb.cli("network", "create", "skynet", check=True)
    copy, env = copy_of_state(sb, tmp_path)
    db = sqlite3.connect(os.path.join(copy, "state.db"))
    with db:
        db.execute("UPDATE networks SET data = '{\"id\": broken' WHERE name = 'skynet'")
    db.close()
    try:
        for argv in (["network", "ls"], ["network", "inspect", "skynet"], ["network", "rm", "skynet"]):
            r = subprocess.run(sb.argv(*argv), env=env, capture_output=True, text=True, timeout=60)
            line = one_internal_error(r, copy)
            assert "JSONDecodeError" in line, line
        # --debug is how a developer gets the traceback on the terminal instead
        r = subprocess.run(sb.argv("--debug", "network", "ls"), env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "Traceback (most recent call last)" in r.stderr
    finally:
        reset_copy(sb, env)


def test_unreadable_database_gives_one_line_saying_what_to_run(sb, tmp_path):
    """Not a database any more: every command says so in one line, with the command that
    starts afresh (test_state_root.py shows that command working from the kernel's marks)."""
    sb.cli("network", "create", "skynet", check=True)
    copy, env = copy_of_state(sb, tmp_path)
    for name in ("state.db-wal", "state.db-shm"):
        if os.path.exists(os.path.join(copy, name)):
            os.unlink(os.path.join(copy, name))
    with open(os.path.join(copy, "state.db"), "r+b") as f:
        f.write(os.urandom(4096))  # not a database any more
    try:
        for argv in (["network", "ls"], ["ps", "-a"], ["network", "create", "other"]):
            r = subprocess.run(sb.argv(*argv), env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 1 and r.stderr.splitlines() == [
                f"Error: the state database {copy}/state.db is damaged (file is not a database): "
                f"`nsbridge --host-netns {sb.name}c --root {copy} system reset -f` removes everything nsbridge made "
                "there, by the marks on the kernel's objects, and starts afresh"], r.stderr
    finally:
        reset_copy(sb, env)


# -- without root ---------------------------------------------------------------------------------
def _reachable_by_others(path: str) -> bool:
    """Can a user other than root reach PATH (every directory above it searchable, PATH
    itself readable)? A clone in root's 0700 home, or a Python under it, is not."""
    path = os.path.realpath(path)
    parts = path.split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i]) or "/"
        if not os.stat(d).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


def _python_for_others() -> str:
    """This Python if others can run it, else the system's (the CLI needs >= 3.11)."""
    for exe in (sys.executable, shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or ""):
        if exe and _reachable_by_others(exe):
            probe = subprocess.run([exe, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                                   capture_output=True, text=True)
            if probe.stdout.strip() == "True":
                return os.path.realpath(exe)
    pytest.fail("no Python >= 3.11 that a user other than root can run: install Debian's python3")


def as_user(sb: Sandbox, *argv: str) -> subprocess.CompletedProcess:
    """`nsbridge ARGV` run by nobody: the real CLI, from wherever the checkout sits. A
    checkout others cannot enter (a clone in root's 0700 home) is copied, package only,
    to a directory they can read; nothing else of it is needed to be refused."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__import__("nsbridge").__file__)))
    copy = None
    if not _reachable_by_others(os.path.join(pkg, "nsbridge", "cli", "main.py")):
        copy = tempfile.mkdtemp(prefix="nsbridge-as-user-")
        os.chmod(copy, 0o755)
        shutil.copytree(os.path.join(pkg, "nsbridge"), os.path.join(copy, "nsbridge"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        for d, _dirs, files in os.walk(copy):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        pkg = copy
    try:
        return subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", _python_for_others(), "-m", "nsbridge",
             *argv],
            env=dict(sb.env, PYTHONPATH=pkg, PYTHONDONTWRITEBYTECODE="1"), capture_output=True, text=True,
            timeout=60, cwd="/")
    finally:
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)


def without_caps(sb: Sandbox, *argv: str) -> subprocess.CompletedProcess:
    """uid 0 but without CAP_NET_ADMIN (as in a container started without it)."""
    return subprocess.run(["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", *sb.argv(*argv)],
                          env=sb.env, capture_output=True, text=True, timeout=60)


NEEDS_ROOT = "nsbridge: permission denied: nsbridge needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run it with sudo"


def test_without_root_or_net_admin_one_line(sb):
    sb.cli("network", "create", "skynet", check=True)
    before = snapshot(sb)
    for argv in (["network", "ls"], ["network", "create", "x1"], ["run", "-d", "alpine"], ["ps"]):
        probe = as_user(sb, "--version")
        if probe.returncode != 0:
            pytest.fail(f"python or nsbridge is not readable by nobody: {probe.stderr.strip()}")
        r = as_user(sb, *argv)
        assert (r.returncode, r.stderr.splitlines()) == (1, [NEEDS_ROOT]), r.stderr
        r = without_caps(sb, *argv)
        assert (r.returncode, r.stderr.splitlines()) == (1, [NEEDS_ROOT]), r.stderr
    assert_unchanged(before, snapshot(sb))


# -- the state is root's only ------------------------------------------------------------------------
def modes(root: str) -> dict[str, str]:
    out = {}
    for rel in (".", "containers", "dns", "state.db", "state.db-wal", "state.db-shm", "lock", "nsbridge.log"):
        path = os.path.join(root, rel)
        if os.path.exists(path):
            out[rel] = oct(os.stat(path).st_mode & 0o7777)
    return out


ROOT_ONLY = {".": "0o700", "containers": "0o700", "dns": "0o700", "state.db": "0o600", "state.db-wal": "0o600",
             "state.db-shm": "0o600", "lock": "0o600", "nsbridge.log": "0o600"}


def test_state_root_database_and_lock_are_root_only(sb):
    """Created root-only; too open (but root's) is fixed at the next start with one warning
    line, as dockerd fixes its root; another owner, or a symlinked lock or database, is
    refused: that owner could loosen it again or swap it under us, and the state says what
    runs as root."""
    sb.cli("network", "create", "skynet", check=True)
    root = sb.root
    assert modes(root) == ROOT_ONLY
    # too open: fixed, said once
    os.chmod(root, 0o755)
    os.chmod(os.path.join(root, "containers"), 0o777)
    os.chmod(os.path.join(root, "state.db"), 0o644)
    os.chmod(os.path.join(root, "lock"), 0o666)
    r = sb.cli("network", "ls")
    assert r.returncode == 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("WARNING: permissions of the state were too open, now root-only: ")
    for what in (f"{root} 0755 -> 0700", "containers 0777 -> 0700", "state.db 0644 -> 0600", "lock 0666 -> 0600"):
        assert what in lines[0], lines[0]
    assert modes(root) == ROOT_ONLY
    assert sb.cli("network", "ls", check=True).stderr == ""
    # owned by someone else: refused, nothing touched
    before = snapshot(sb)
    os.chown(root, 65534, 65534)
    try:
        for argv in (["network", "ls"], ["network", "create", "x1"]):
            r = sb.cli(*argv)
            assert (r.returncode, r.stderr.splitlines()) == (1, [
                f"Error: state root {root} is owned by uid 65534, not by root: refusing to use it "
                f"(chown -R root:root {root})"]), r.stderr
    finally:
        os.chown(root, 0, 0)
    lock = os.path.join(root, "lock")
    os.chown(lock, 65534, 65534)
    try:
        r = sb.cli("network", "create", "x1")
        assert (r.returncode, r.stderr.splitlines()) == (1, [
            f"Error: {lock} is owned by uid 65534: refusing to use it (remove it or make it root's)"]), r.stderr
    finally:
        os.chown(lock, 0, 0)
    os.rename(lock, lock + ".real")
    os.symlink(lock + ".real", lock)
    try:
        r = sb.cli("network", "create", "x1")
        assert (r.returncode, r.stderr.splitlines()) == (1, [
            f"Error: {lock} is a symlink: refusing to use it (remove it or make it root's)"]), r.stderr
    finally:
        os.unlink(lock)
        os.rename(lock + ".real", lock)
    assert_unchanged(before, snapshot(sb))
    sb.cli("network", "create", "x1", check=True)


def test_a_name_that_looks_like_an_ambiguous_id_prefix_is_still_a_name(world):
    """Names are looked up before ID prefixes (Docker's order): `run --name ab` works
    even while `ab` is an ambiguous prefix of two IDs, and `ab` then means that name."""
    sb = world.sb
    for i in range(200):
        ids = sb.cli("ps", "-aq", "--no-trunc", check=True).stdout.split()
        groups: dict[str, int] = {}
        for x in ids:
            groups[x[:2]] = groups.get(x[:2], 0) + 1
        amb = sorted(p for p, n in groups.items() if n > 1)
        if amb:
            break
        sb.cli("create", "--name", f"pfx{i}", "alpine", check=True)
    prefix = amb[0]
    r = sb.cli("stop", prefix)
    assert (r.returncode, r.stderr.strip()) == (1, D + f"Multiple IDs found with provided prefix: {prefix}")
    cid = sb.cli("create", "--name", prefix, "alpine", check=True).stdout.strip()
    assert sb.cli("inspect", "--format", "{{.Id}}", prefix, check=True).stdout.strip() == cid
    sb.cli("rename", prefix, prefix + "-renamed", check=True)
    sb.cli("rename", prefix + "-renamed", prefix, check=True)
    assert sb.cli("rm", prefix, check=True).stdout.strip() == prefix
