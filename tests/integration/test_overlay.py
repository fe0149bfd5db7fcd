"""The overlay driver across three sandbox hosts on an underlay, with a real
etcd (Debian's etcd-server) on it: what a user types (`network create -d
overlay`, `run --network`), and what the kernel and the store then hold."""
from __future__ import annotations

import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from nsbridge.cluster import layout
from nsbridge.kernel import ns, overlay
from tests.integration.cluster_lab import ETCD_ADDR, in_ns, lab, wait_for  # noqa: F401

STORE_AWAY = f"Error response from daemon: cannot reach the cluster store at etcd://{ETCD_ADDR}:2379: "


def joined(lab, ttl: int = 5) -> list:
    for sb in lab.hosts:
        lab.join(sb, ttl=ttl)
    return lab.hosts


def inspect(sb, ref: str) -> dict:
    return json.loads(sb.cli("inspect", ref, check=True).stdout)[0]


def net_inspect(sb, ref: str) -> dict:
    return json.loads(sb.cli("network", "inspect", ref, check=True).stdout)[0]


def ip_on(sb, ctr: str, net: str = "ov") -> str:
    return inspect(sb, ctr)["NetworkSettings"]["Networks"][net]["IPAddress"]


def overlay_ns(sb, net_id: str) -> str:
    return overlay.netns_name(sb.name, net_id)


def programmed(sb, net_id: str) -> set:
    path = ns.netns_path(overlay_ns(sb, net_id))
    return overlay.programmed(path) if ns.netns_exists(overlay_ns(sb, net_id)) else set()


def our_keys(lab) -> list[str]:
    return sorted(lab.etcd_keys(layout.PREFIX))


def resolves(sb, ctr: str, name: str) -> str:
    """The address CTR's 127.0.0.11 gives NAME ('' when none)."""
    p = sb.cli("exec", ctr, "nslookup", name)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("Address") and "127.0.0.11" not in ln]
    return lines[-1].split()[-1] if p.returncode == 0 and lines else ""


def test_containers_on_three_hosts_by_address_name_and_alias(lab):
    h1, h2, h3 = joined(lab)
    net_id = h1.cli("network", "create", "-d", "overlay", "--attachable", "ov", check=True).stdout.strip()
    # every host lists it, scope global, without having used it yet
    for sb in lab.hosts:
        row = [ln.split() for ln in sb.cli("network", "ls", check=True).stdout.splitlines() if " ov " in ln]
        assert row == [[net_id[:12], "ov", "overlay", "global"]], sb.cli("network", "ls").stdout
    h1.cli("run", "-d", "--name", "c1", "--network", "ov", "busybox", check=True)
    h2.cli("run", "-d", "--name", "web", "--network", "ov", "--network-alias", "site", "nginx", check=True)
    h3.cli("run", "-d", "--name", "c3", "--network", "ov", "busybox", check=True)
    ips = {ip_on(h1, "c1"), ip_on(h2, "web"), ip_on(h3, "c3")}
    assert len(ips) == 3 and all(ip.startswith("10.0.0.") for ip in ips), ips
    # Docker's overlay fields: the VXLAN ID, and the hosts with an endpoint on it
    n = net_inspect(h3, "ov")
    assert (n["Scope"], n["Driver"], n["Attachable"]) == ("global", "overlay", True)
    assert n["Options"]["com.docker.network.driver.overlay.vxlanid_list"] == "256"
    assert n["IPAM"]["Config"] == [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]
    assert [p["IP"] for p in n["Peers"]] == [lab.addr(sb) for sb in lab.hosts]
    assert list(n["Containers"]) == [inspect(h3, "c3")["Id"]], "a host lists its own containers"
    # kernel objects as Docker's: a namespace with br0 + vxlan0 (VNI, port 4789, local = advertise, learning off)
    info = overlay.vxlan_info(ns.netns_path(overlay_ns(h1, net_id)))
    assert (info["vni"], info["port"], info["local"], info["learning"]) == (256, 4789, lab.addr(h1), 0)
    assert info["mtu"] == 1450
    eth0 = h1.cli("exec", "c1", "ip", "-o", "link", "show", "eth0", check=True).stdout
    assert "mtu 1450" in eth0
    # static FDB and neighbour entries for the two other hosts' containers, and nothing learnt
    c1_ip, web_ip, c3_ip = ip_on(h1, "c1"), ip_on(h2, "web"), ip_on(h3, "c3")
    want = {overlay.Peer(web_ip, inspect(h2, "web")["NetworkSettings"]["Networks"]["ov"]["MacAddress"], lab.addr(h2)),
            overlay.Peer(c3_ip, inspect(h3, "c3")["NetworkSettings"]["Networks"]["ov"]["MacAddress"], lab.addr(h3))}
    wait_for(lambda: programmed(h1, net_id) == want, 15, "host 1's FDB/neighbour entries")
    fdb = in_ns(overlay_ns(h1, net_id), "bridge", "fdb", "show", "dev", "vxlan0").stdout
    for peer in want:  # (iproute2 may print `link-netnsid N` before `self`)
        assert re.search(rf"^{peer.mac} dst {re.escape(peer.vtep)} .*self permanent$", fdb, re.M), fdb
    # by address, by name, by alias, across hosts; and the packets are VXLAN on the underlay
    dump = subprocess.Popen(["ip", "netns", "exec", lab.underlay.netns, "tcpdump", "-l", "-n", "-c", "4", "-i", "ul0",
                             "udp", "port", "4789"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        for target in (c3_ip, "c3", "web", "site"):
            p = h1.cli("exec", "c1", "ping", "-c", "1", "-W", "3", target)
            assert p.returncode == 0, (target, p.stdout, p.stderr)
        out, err = dump.communicate(timeout=20)
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    assert "VXLAN" in out and "vni 256" in out, out + err
    assert any(f"IP {lab.addr(h1)}." in ln and f"> {lab.addr(h3)}.4789" in ln for ln in out.splitlines()), out
    # TCP by name: the nginx stand-in on host 2, from host 1 and host 3 (busybox wget -T crashes: not used)
    for sb, ctr in ((h1, "c1"), (h3, "c3")):
        p = sb.cli("exec", ctr, "wget", "-q", "-O", "-", "http://site/")
        assert p.returncode == 0 and "nginx" in p.stdout.lower(), (p.stdout, p.stderr)
    # egress through docker_gwbridge: a second interface, the default route, masqueraded out of the host
    route = h1.cli("exec", "c1", "ip", "route", check=True).stdout
    gw = net_inspect(h1, "docker_gwbridge")
    assert gw["Scope"] == "local" and gw["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert f"default via {gw['IPAM']['Config'][0]['Gateway']} dev eth1" in route, route
    assert h1.cli("exec", "c1", "ping", "-c", "1", "-W", "3", ETCD_ADDR).returncode == 0
    # network rm is refused while any host has an endpoint (here: from a host with none left)
    h3.cli("rm", "-f", "c3", check=True)
    wait_for(lambda: c3_ip not in {p.ip for p in programmed(h1, net_id)}, 15, "c3 to leave host 1's tables")
    assert not ns.netns_exists(overlay_ns(h3, net_id)), "the namespace goes with the host's last container"
    p = h3.cli("network", "rm", "ov")
    assert (p.returncode, p.stderr) == (
        1, f"Error response from daemon: error while removing network: network ov id {net_id} has active endpoints\n")
    h1.cli("rm", "-f", "c1", check=True)
    h2.cli("rm", "-f", "web", check=True)
    h3.cli("network", "rm", "ov", check=True)
    assert [k for k in our_keys(lab) if not k.startswith(layout.HOSTS)] == []
    assert " ov " not in h1.cli("network", "ls", check=True).stdout


def test_sixty_concurrent_runs_on_three_hosts_get_sixty_addresses(lab):
    h1, h2, h3 = joined(lab)
    net_id = h1.cli("network", "create", "-d", "overlay", "ov", check=True).stdout.strip()

    def run(arg):
        sb, i = arg
        return sb.cli("run", "-d", "--name", f"c{i}", "--network", "ov", "busybox", timeout=300)

    jobs = [(sb, f"{j}-{i}") for i in range(20) for j, sb in enumerate(lab.hosts)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        done = list(pool.map(run, jobs))
    assert [p.stderr for p in done if p.returncode != 0] == []
    eps = [layout.ClusterEndpoint.from_json(v) for k, v in lab.etcd_keys(layout.endpoints_prefix(net_id)).items()]
    assert len(eps) == 60 and len({e.ip for e in eps}) == 60
    assert {e.vtep for e in eps} == {lab.addr(sb) for sb in lab.hosts}
    seen = {ip_on(sb, f"c{j}-{i}") for sb, name in jobs for j, i in [name.split("-")]}
    assert seen == {e.ip for e in eps}
    # every host programs the 40 endpoints of the two others
    for sb in lab.hosts:
        wait_for(lambda: len(programmed(sb, net_id)) == 40, 30, f"{sb.name} to program 40 peers")
    assert h1.cli("exec", "c0-0", "ping", "-c", "1", "-W", "3", "c2-19").returncode == 0


def test_without_etcd_traffic_flows_and_store_commands_fail_in_one_line(lab):
    h1, h2, h3 = joined(lab)
    net_id = h1.cli("network", "create", "-d", "overlay", "ov", check=True).stdout.strip()
    h1.cli("run", "-d", "--name", "c1", "--network", "ov", "busybox", check=True)
    h2.cli("run", "-d", "--name", "c2", "--network", "ov", "busybox", check=True)
    c2_ip = ip_on(h2, "c2")
    wait_for(lambda: resolves(h1, "c1", "c2") == c2_ip, 15, "host 1's resolver to learn c2")
    lab.etcd.stop()
    # traffic between existing containers keeps flowing, by address and by name
    for target in (c2_ip, "c2"):
        assert h1.cli("exec", "c1", "ping", "-c", "1", "-W", "3", target).returncode == 0, target
    before = {sb.name: (sorted(sb.netns_names()), sb.cli("ps", "-aq").stdout) for sb in lab.hosts}
    cases = [(h1, ("network", "create", "-d", "overlay", "ov2")),
             (h1, ("run", "-d", "--name", "c3", "--network", "ov", "busybox")),
             (h3, ("run", "-d", "--name", "c3", "--network", "ov", "busybox")),
             (h3, ("network", "inspect", "ov"))]
    for sb, args in cases:
        p = sb.cli(*args)
        # one line (`run` adds Docker's "Run '... --help'" after it, as Docker does)
        lines = p.stderr.splitlines()
        assert p.returncode != 0 and lines[0].removeprefix("nsbridge: ").startswith(STORE_AWAY), (args, p.stderr)
        assert lines[1:] in ([], ["", "Run 'nsbridge run --help' for more information"]), (args, p.stderr)
    # nothing half-made: no container, no namespace (container's or overlay's), no docker_gwbridge on host 3
    assert {sb.name: (sorted(sb.netns_names()), sb.cli("ps", "-aq").stdout) for sb in lab.hosts} == before
    assert not ns.netns_exists(overlay_ns(h3, net_id))
    assert "docker_gwbridge" not in h3.cli("network", "ls", check=True).stdout
    # network ls says what it can: this host's copy, and why no more
    p = h1.cli("network", "ls")
    assert p.returncode == 0 and " ov " in p.stdout and STORE_AWAY[len("Error response from daemon: "):] in p.stderr
    # a container can still go (its keys are removed by its host's watcher once the store is back)
    h2.cli("rm", "-f", "c2", check=True)
    lab.etcd.start()
    wait_for(lambda: not lab.etcd_keys(layout.endpoints_prefix(net_id)).keys() - {
        layout.endpoint_key(net_id, inspect(h1, "c1")["NetworkSettings"]["Networks"]["ov"]["EndpointID"])},
        40, "host 2's watcher to remove c2's keys")
    h3.cli("run", "-d", "--name", "c3", "--network", "ov", "busybox", check=True)
    assert h3.cli("exec", "c3", "ping", "-c", "1", "-W", "3", "c1").returncode == 0


def test_a_cut_off_hosts_endpoints_expire_and_come_back(lab):
    h1, h2, h3 = joined(lab, ttl=3)
    net_id = h1.cli("network", "create", "-d", "overlay", "ov", check=True).stdout.strip()
    h1.cli("run", "-d", "--name", "c1", "--network", "ov", "busybox", check=True)
    h3.cli("run", "-d", "--name", "c3", "--network", "ov", "busybox", check=True)
    c3_ip = ip_on(h3, "c3")
    wait_for(lambda: c3_ip in {p.ip for p in programmed(h1, net_id)} and resolves(h1, "c1", "c3") == c3_ip, 15,
             "host 1 to learn c3")
    lab.underlay.cut(h3.name)
    # after the lease's TTL: gone from the store, from host 1's FDB/neighbour tables and its resolver
    wait_for(lambda: not programmed(h1, net_id), 30, "c3 to expire on host 1")
    names = [layout.ClusterEndpoint.from_json(v).name for v in lab.etcd_keys(layout.endpoints_prefix(net_id)).values()]
    assert names == ["c1"]
    assert resolves(h1, "c1", "c3") == ""
    assert [p["IP"] for p in net_inspect(h1, "ov")["Peers"]] == [lab.addr(h1)]
    lab.underlay.heal(h3.name)
    # host 3's watcher takes a new lease and puts its endpoint back; host 1 programs it again
    wait_for(lambda: c3_ip in {p.ip for p in programmed(h1, net_id)}, 40, "c3 to come back on host 1")
    wait_for(lambda: resolves(h1, "c1", "c3") == c3_ip, 15, "host 1's resolver to answer c3 again")
    assert h1.cli("exec", "c1", "ping", "-c", "1", "-W", "3", "c3").returncode == 0


def test_system_reset_on_every_host_leaves_nothing_of_ours(lab):
    h1, h2, h3 = joined(lab)
    net_id = h2.cli("network", "create", "-d", "overlay", "ov", check=True).stdout.strip()
    for i, sb in enumerate(lab.hosts):
        sb.cli("run", "-d", "--name", f"c{i}", "--network", "ov", "-p", f"808{i}:80", "nginx", check=True)
    # -p of an overlay container goes through docker_gwbridge: host 2 reaches host 1's published port
    fetch = "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    p = in_ns(h2.name, "python3", "-c", fetch, f"http://{lab.addr(h1)}:8080/")
    assert p.returncode == 0 and "nginx" in p.stdout.lower(), p.stderr
    try:
        wait_for(lambda: all(len(programmed(sb, net_id)) == 2 for sb in lab.hosts), 15, "every host's peers")
    except AssertionError:
        raise AssertionError({sb.name: (programmed(sb, net_id), open(sb.root + "/cluster-watcher.log").read()) for sb in lab.hosts})
    h1_addr = lab.addr(h1)
    h1.cli("system", "reset", "-f", check=True)
    # host 1's endpoints leave the others' tables at once (its lease is revoked)
    for sb in (h2, h3):
        wait_for(lambda: h1_addr not in {p.vtep for p in programmed(sb, net_id)}, 15, f"{sb.name} to drop host 1")
        fdb = in_ns(overlay_ns(sb, net_id), "bridge", "fdb", "show", "dev", "vxlan0").stdout
        assert f"dst {h1_addr}" not in fdb, fdb
    assert not ns.netns_exists(overlay_ns(h1, net_id)) and not ns.netns_exists(h1.name)
    h2.cli("system", "reset", "-f", check=True)
    h3.cli("system", "reset", "-f", check=True)
    assert our_keys(lab) == []
    left = [n for n in ns.list_netns() if n.startswith(tuple(sb.name for sb in lab.hosts))]
    assert left == []
    vx = subprocess.run(["ip", "-o", "link", "show", "type", "vxlan"], capture_output=True, text=True).stdout
    assert f"vx-000100-{net_id[:5]}" not in vx


@pytest.mark.parametrize("lab", [2], indirect=True)
def test_failed_runs_leave_nothing_and_connect_stop_start_reconcile(lab):
    h1, h2 = joined(lab)
    net_id = h1.cli("network", "create", "-d", "overlay", "ov", check=True).stdout.strip()
    h1.cli("run", "-d", "--name", "web", "--network", "ov", "nginx", check=True)
    keys = our_keys(lab)
    # a run failing at any overlay step on a host with no container there yet: no namespace, no key, no container
    for step in ("overlay.netns", "overlay.peers", "overlay.address", "endpoint.veth", "overlay.announce",
                 "container.files"):
        p = subprocess.run(h2.argv("run", "-d", "--name", "box", "--network", "ov", "busybox"),
                           env=dict(h2.env, NSBRIDGE_TEST_FAIL_AT=step), capture_output=True, text=True, timeout=120)
        assert p.returncode != 0 and f"injected failure at step {step}" in p.stderr, (step, p.stderr)
        assert our_keys(lab) == keys, step
        assert not ns.netns_exists(overlay_ns(h2, net_id)) and h2.cli("ps", "-aq").stdout == "", step
    # connect / disconnect a running container of a local network, across hosts
    h2.cli("network", "create", "loc", check=True)
    h2.cli("run", "-d", "--name", "box", "--network", "loc", "busybox", check=True)
    h2.cli("network", "connect", "ov", "box", check=True)
    assert h2.cli("exec", "box", "wget", "-q", "-O", "-", "http://web/").returncode == 0
    h2.cli("network", "disconnect", "ov", "box", check=True)
    assert not ns.netns_exists(overlay_ns(h2, net_id)) and our_keys(lab) == keys
    # stop and start: the endpoint leaves the store and comes back (same address when free)
    web_ip = ip_on(h1, "web")
    h1.cli("stop", "web", check=True)
    assert not lab.etcd_keys(layout.endpoints_prefix(net_id)) and not ns.netns_exists(overlay_ns(h1, net_id))
    h1.cli("start", "web", check=True)
    assert ip_on(h1, "web") == web_ip
    h2.cli("run", "-d", "--name", "c2", "--network", "ov", "busybox", check=True)
    assert h2.cli("exec", "c2", "wget", "-q", "-O", "-", "http://web/").returncode == 0
    # reconcile: store and kernel agree (an overlay veth lives in its network's namespace, not the host's)
    for sb in lab.hosts:
        assert sb.cli("system", "reconcile", check=True).stdout == "nothing to do: the store and the kernel agree\n"
    # leaving the store: this host's copy of the cluster's network goes with it (and its resolver)
    h2.cli("rm", "-f", "c2", check=True)
    h2.cli("system", "leave", check=True)
    assert " ov " not in h2.cli("network", "ls", check=True).stdout
    assert not [p for p in h2.processes() if net_id[:12] in p], "no resolver left for it"
