"""`nsbridge show` against the real kernel: what it prints is what `ip`,
`bridge` and `iptables` see (and each command it names runs and shows it),
a change made behind nsbridge's back shows up as a problem, and the HTML page
is rendered in a real headless browser with every container and network drawn."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest

from tests.integration.helpers import ip_of


def lab(sb) -> None:
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("network", "create", "--internal", "-o", "com.docker.network.bridge.enable_icc=false", "vault", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "-p", "8080:80", "nginx", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)
    sb.cli("network", "connect", "vault", "db", check=True)
    sb.cli("run", "-d", "--name", "old", "alpine", check=True)
    sb.cli("run", "-d", "--name", "alone", "--network", "none", "alpine", check=True)
    sb.cli("run", "--name", "gone", "alpine", "true", check=True)  # exited


def show_json(sb, *args: str) -> dict:
    return json.loads(sb.cli("show", "--format", "json", *args, check=True).stdout)


def ip_json(sb, netns: str, *args: str) -> list:
    return json.loads(subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=True).stdout)


def commands(obj) -> list[str]:
    """Every by-hand command in a show --format json document."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "cmd" and isinstance(v, str) and v:
                out.append(v)
            elif k == "cmds" and isinstance(v, dict):
                out += [c for c in v.values() if c]
            else:
                out += commands(v)
    elif isinstance(obj, list):
        for v in obj:
            out += commands(v)
    return out


def test_show_is_what_the_kernel_has(sb):
    lab(sb)
    pic = show_json(sb)
    cs = {c["name"]: c for c in pic["containers"]}
    nets = {n["name"]: n for n in pic["networks"]}
    assert set(cs) == {"web", "db", "old", "alone", "gone"} and set(nets) == {"bridge", "host", "none", "skynet", "vault"}
    # web's interfaces, as `ip -n NS -j addr` lists them
    web = cs["web"]
    kernel = ip_json(sb, web["netns"], "addr")
    assert sorted((i["ifname"], i["ifindex"]) for i in kernel) == sorted((i["name"], i["index"]) for i in web["interfaces"])
    eth0 = next(i for i in web["interfaces"] if i["name"] == "eth0")
    k_eth0 = next(i for i in kernel if i["ifname"] == "eth0")
    assert eth0["addresses"] == [f"{a['local']}/{a['prefixlen']}" for a in k_eth0["addr_info"] if a["family"] == "inet"]
    assert eth0["mac"] == k_eth0["address"] == "02:42:" + ":".join(f"{int(x):02x}" for x in ip_of(sb, "web").split("."))
    # its peer: the host link whose index is eth0's link index, a port of skynet's bridge
    host_links = {li["ifindex"]: li for li in ip_json(sb, sb.name, "-d", "link")}
    peer = host_links[k_eth0["link_index"]]
    assert eth0["peer"] == f"{peer['ifname']}@if{peer['ifindex']} on {peer['master']}"
    sky = nets["skynet"]
    assert sky["device"]["name"] == peer["master"] and sky["device"]["addresses"] == [f"{sky['gateway']}/16"]
    port = next(p for p in sky["ports"] if p["name"] == peer["ifname"])
    assert port["peer"] == "web:eth0" and port["hairpin"] is True  # web publishes a port: hairpin on
    assert port["hairpin"] == (peer["linkinfo"]["info_slave_data"]["hairpin"] is True)
    # rules: every rule naming the bridge, with the kernel's counters; web's DNAT under web
    saved = sb.host_run("iptables-save", check=True).stdout
    bridge = sky["device"]["name"]
    named = {ln for ln in saved.splitlines() if ln.startswith("-A ") and bridge in ln.split()}
    assert named <= {r["rule"] for r in sky["rules"]}
    assert any("--to-destination " + ip_of(sb, "web") + ":80" in r["rule"] for r in web["published"])
    vault = nets["vault"]
    assert vault["internal"] and not vault["icc"] and vault["resolver"]["state"] == "running"
    assert [c["name"] for c in pic["containers"] if c["name"] == "gone"] and cs["gone"]["interfaces"] == []
    assert cs["alone"]["mode"] == "none" and [i["name"] for i in cs["alone"]["interfaces"]] == ["lo"]
    assert pic["problems"] == [] and all(not c["problems"] for c in pic["containers"])
    # each command shown by hand runs, and shows the thing it is next to
    for cmd in commands(pic):
        if "|" in cmd:
            continue
        p = subprocess.run(shlex.split(cmd), capture_output=True, text=True, env=sb.env, timeout=30)
        assert p.returncode == 0, f"{cmd}: {p.stderr}"
        if cmd.startswith(("ip ", "bridge ")) and " dev " in cmd:
            assert cmd.rsplit(" dev ", 1)[1].split()[0] in p.stdout, cmd


def test_show_text_one_container_and_one_network(sb):
    lab(sb)
    out = sb.cli("show", "db", check=True).stdout
    assert "container db  running" in out and "network skynet" in out and "network vault" in out
    assert "container web" not in out and "network bridge" not in out
    assert re.search(r"endpoint vault: eth1 \S+ \S+ <-> veth\w+", out)
    assert "$ ip -n " in out and "no problems: the kernel has what the store says" in out
    out = sb.cli("show", "skynet", check=True).stdout
    assert "container web" in out and "container db" in out and "container old" not in out
    assert "-A NSBRIDGE-ISOLATION-STAGE-2" in out and "pkts" in out
    p = sb.cli("show", "nosuch")
    assert p.returncode == 1 and p.stderr.strip() == "Error response from daemon: No such container or network: nosuch"


def test_show_sees_what_was_changed_behind_its_back(sb):
    """The store says nothing changed; the kernel says otherwise: show reads the kernel."""
    lab(sb)
    web = next(c for c in show_json(sb, "web")["containers"])
    veth = web["endpoints"][0]["host_veth"]
    sb.host_run("ip", "link", "set", veth, "down", check=True)
    subprocess.run(["ip", "-n", next(c for c in show_json(sb, "db")["containers"])["netns"], "link", "del", "eth1"],
                   check=True)
    pic = show_json(sb)
    problems = [p for c in pic["containers"] for p in c["problems"]]
    assert f"container web: {veth} (host end of eth0, network skynet) is down, and not by `nsbridge link`" in problems
    assert "container db: eth1 (network vault) is missing from its namespace" in problems
    assert "problems (the kernel and the store disagree):" in sb.cli("show", check=True).stdout


# -- the HTML page in a real browser ----------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(sb, *args: str) -> subprocess.CompletedProcess:
    """Headless chromium in the sandbox host's namespace: it has no route out,
    so whatever the browser might try to fetch goes nowhere."""
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(exe):
        pytest.skip("DID NOT RUN: chromium is not installed (`sudo ./setup.sh test` installs it)")
    profile = tempfile.mkdtemp(prefix="nsbridge-chromium-")
    try:
        p = sb.host_run(exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if p.returncode != 0 and not p.stdout:
        pytest.skip(f"DID NOT RUN: chromium could not start ({p.returncode}): {p.stderr.strip()[-300:]}")
    return p


def test_html_page_renders_every_container_and_network(sb, tmp_path):
    lab(sb)
    page = tmp_path / "lab.html"
    sb.cli("show", "--format", "html", "-o", str(page), check=True)
    dom = chromium(sb, "--dump-dom", page.as_uri()).stdout
    m = re.search(r'<pre id="rendered">(.*?)</pre>', dom, re.S)
    assert m, "the page's check script did not run in the browser"
    drawn = set(m.group(1).split())
    names = sb.cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    nets = sb.cli("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    assert len(names) == 5 and len(nets) == 5
    assert {f"container:{n}" for n in names} <= drawn, drawn
    assert {f"network:{n}" for n in nets} <= drawn, drawn
    assert {"endpoint:web:eth0", "endpoint:db:eth0", "endpoint:db:eth1", "endpoint:old:eth0"} <= drawn
    # and a picture comes out of it
    shot = tmp_path / "lab.png"
    chromium(sb, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_dot_names_every_object(sb):
    lab(sb)
    out = sb.cli("show", "--format", "dot", check=True).stdout
    for name in ("web", "db", "old", "alone", "gone"):
        assert f'"ctr:{name}"' in out
    for name in ("bridge", "host", "none", "skynet", "vault"):
        assert f'"net:{name}"' in out
    veth = show_json(sb, "web")["containers"][0]["endpoints"][0]["host_veth"]
    assert f'"veth:{veth}" -- "ctr:web"' in out
