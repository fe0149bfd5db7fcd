"""`nsbridge link` and `nsbridge impair` (and Engine.link_set / Engine.impair,
which compose's x-nsbridge extension calls) on the real kernel: a link down
keeps the container's address and routes while nothing passes; reconcile
leaves it alone; tbf shapes what the container sends; netem is refused at
once where the kernel lacks it, changing nothing."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from nsbridge.kernel import shaping
from tests.integration.helpers import ip_of
from tests.integration.test_why import pings_again


def netns(sb, name: str) -> str:
    return f"{sb.name}-{name}"


def pings(sb, ctr: str, target: str) -> bool:
    return sb.cli("exec", ctr, "/usr/bin/ping", "-c", "1", "-W", "1", target).returncode == 0


def qdisc(sb, ctr: str, dev: str = "eth0", stats: bool = False) -> str:
    return subprocess.run(["tc", *(["-s"] if stats else []), "-n", netns(sb, ctr), "qdisc", "show", "dev", dev],
                          capture_output=True, text=True, check=True).stdout


def endpoint(sb, ctr: str) -> dict:
    c = json.loads(sb.cli("show", ctr, "--format", "json", check=True).stdout)["containers"][0]
    return c["endpoints"][0]


def lab(sb) -> None:
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)


def test_link_down_keeps_the_address_and_reconcile_leaves_it(sb):
    lab(sb)
    db = ip_of(sb, "db")
    routes = subprocess.run(["ip", "-n", netns(sb, "db"), "route"], capture_output=True, text=True).stdout
    assert pings(sb, "web", "db")
    p = sb.cli("link", "db", "skynet", "down")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert not pings(sb, "web", db)
    inside = json.loads(subprocess.run(["ip", "-n", netns(sb, "db"), "-j", "addr", "show", "dev", "eth0"],
                                       capture_output=True, text=True, check=True).stdout)[0]
    assert "NO-CARRIER" in inside["flags"] and "UP" in inside["flags"]  # a pulled cable: still up, no carrier
    assert [a["local"] for a in inside["addr_info"] if a["family"] == "inet"] == [db]
    now = subprocess.run(["ip", "-n", netns(sb, "db"), "route"], capture_output=True, text=True).stdout
    assert now.replace(" linkdown", "") == routes  # the same routes, flagged as over a link without carrier
    ep = endpoint(sb, "db")
    host = json.loads(sb.host_run("ip", "-j", "link", "show", "dev", ep["host_veth"], check=True).stdout)[0]
    assert "UP" not in host["flags"] and ep["link"] == "down"
    assert "LINK DOWN (nsbridge link)" in sb.cli("show", "db", check=True).stdout
    # reconcile does not fight it
    assert sb.cli("system", "reconcile", check=True).stdout.strip() == "nothing to do: the store and the kernel agree"
    assert not pings(sb, "web", db) and endpoint(sb, "db")["link"] == "down"
    sb.cli("link", "db", "skynet", "up", check=True)
    assert pings_again(sb, "web", db) and endpoint(sb, "db")["link"] == "up"
    # a stopped and started container comes back with a fresh endpoint, up
    sb.cli("link", "db", "skynet", "down", check=True)
    sb.cli("restart", "-t", "0", "db", check=True)
    assert pings_again(sb, "web", "db") and endpoint(sb, "db")["link"] == "up"


def test_rate_with_tbf_recorded_shown_and_cleared(sb):
    lab(sb)
    sb.cli("impair", "web", "skynet", "--rate", "10mbit", check=True)
    q = qdisc(sb, "web")
    assert re.match(r"qdisc tbf \d+: root", q) and "rate 10Mbit" in q, q
    assert endpoint(sb, "web")["impairment"] == "rate 10mbit"
    assert "impaired: rate 10mbit" in sb.cli("show", "web", check=True).stdout
    assert "qdisc tbf rate 10mbit" in sb.cli("show", "web", check=True).stdout
    # what web sends goes through it
    sent = int(qdisc(sb, "web", stats=True).split("Sent ")[1].split()[2])
    assert pings(sb, "web", "db")
    assert int(qdisc(sb, "web", stats=True).split("Sent ")[1].split()[2]) > sent
    assert sb.cli("system", "reconcile", check=True).stdout.strip() == "nothing to do: the store and the kernel agree"
    # a new impairment replaces the old one (grafted under the other root handle)
    sb.cli("impair", "web", "skynet", "--rate", "500kbit", check=True)
    q2 = qdisc(sb, "web")
    assert "rate 500Kbit" in q2 and q2.count("qdisc ") == 1 and q2.split()[2] != q.split()[2], (q, q2)
    sb.cli("impair", "web", "skynet", "--rate", "2mbit", check=True)
    assert "rate 2Mbit" in qdisc(sb, "web") and qdisc(sb, "web").count("qdisc ") == 1
    sb.cli("impair", "web", "skynet", "--clear", check=True)
    assert "tbf" not in qdisc(sb, "web") and endpoint(sb, "web")["impairment"] == ""


def picture(sb) -> object:
    """`show --format json` without rule counters: a bridge's own IGMP reports may
    count on a rule between two snapshots, with no command run."""
    def drop(x: object) -> object:
        if isinstance(x, dict):
            return {k: drop(v) for k, v in x.items() if k != "packets"}
        return [drop(v) for v in x] if isinstance(x, list) else x
    return drop(json.loads(sb.cli("show", "--format", "json", check=True).stdout))


def test_refusals_change_nothing(sb):
    lab(sb)
    sb.cli("impair", "web", "skynet", "--rate", "1mbit", check=True)
    before = (qdisc(sb, "web"), picture(sb))
    cases = [
        (("impair", "web", "skynet", "--rate", "fast"), "invalid rate 'fast': use tc's units, e.g. 10mbit, 500kbit, 1gbit"),
        (("impair", "web", "skynet", "--jitter", "5ms"), "--jitter needs --delay (netem varies a delay)"),
        (("impair", "web", "skynet", "--clear", "--rate", "1mbit"), "--clear takes no --rate, --delay, --jitter or --loss"),
        (("impair", "web", "skynet"), "impair needs --rate, --delay, --jitter or --loss (or --clear)"),
        (("impair", "web", "bridge", "--rate", "1mbit"), "container web is not connected to network bridge"),
        (("impair", "web", "host", "--rate", "1mbit"), "network host has no link of its own for web"),
        (("link", "nosuch", "skynet", "down"), "No such container: nosuch"),
        (("link", "web", "nonet", "down"), "network nonet not found"),
    ]
    if shaping.netem_kernel_config() is False:
        cases.append((("impair", "web", "skynet", "--delay", "50ms"), shaping.NO_NETEM))
    for args, msg in cases:
        p = sb.cli(*args)
        assert p.returncode == 1 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)
    assert (qdisc(sb, "web"), picture(sb)) == before
    sb.cli("stop", "-t", "0", "db", check=True)
    p = sb.cli("link", "db", "skynet", "down")
    assert p.returncode == 1 and "is not running" in p.stderr


def test_engine_api_for_compose(sb):
    """The labs helper's x-nsbridge extension calls these exact signatures."""
    lab(sb)
    with sb.engine() as e:
        e.link_set("db", "skynet", False)
        e.impair("web", "skynet", rate="2mbit")
    assert not pings(sb, "web", "db") and "rate 2Mbit" in qdisc(sb, "web")
    with sb.engine() as e:
        e.link_set("db", "skynet", True)
        e.impair("web", "skynet", clear=True)
    assert pings_again(sb, "web", "db") and "tbf" not in qdisc(sb, "web")


@pytest.mark.skipif(shaping.netem_kernel_config() is False,
                    reason="DID NOT RUN: this kernel has no netem (CONFIG_NET_SCH_NETEM): delay, jitter, loss untested")
def test_netem_delay_jitter_loss(sb):
    lab(sb)
    sb.cli("impair", "web", "skynet", "--delay", "50ms", "--jitter", "5ms", "--loss", "1%", "--rate", "10mbit", check=True)
    q = qdisc(sb, "web")
    assert "netem" in q and "delay 50ms" in q and "loss 1%" in q and "tbf" in q, q
    rtt = sb.cli("exec", "web", "/usr/bin/ping", "-c", "3", "-i", "0.2", "db").stdout
    assert "time=4" in rtt or "time=5" in rtt, rtt
    # netem to tbf and back: each a new root grafted in place of the old tree
    sb.cli("impair", "web", "skynet", "--rate", "1mbit", check=True)
    q = qdisc(sb, "web")
    assert "netem" not in q and "rate 1Mbit" in q, q
    sb.cli("impair", "web", "skynet", "--loss", "100%", check=True)
    assert "netem" in qdisc(sb, "web") and "tbf" not in qdisc(sb, "web")
    assert sb.cli("exec", "web", "/usr/bin/ping", "-c", "1", "-W", "1", "db").returncode != 0
    sb.cli("impair", "web", "skynet", "--clear", check=True)
    assert "netem" not in qdisc(sb, "web")


def test_compose_x_nsbridge_applies_through_the_engine(sb, tmp_path):
    """compose's x-nsbridge extension (services.S.x-nsbridge.impair/link) ends in
    Engine.impair / Engine.link_set: the kernel shows the shaping and the link state."""
    d = tmp_path / "lab"
    d.mkdir()
    f = d / "compose.yaml"
    f.write_text("services:\n  web:\n    image: alpine\n    networks: [lan]\n"
                 "    x-nsbridge:\n      impair: {lan: {rate: 2mbit}}\n      link: {lan: down}\n"
                 "  db:\n    image: alpine\n    networks: [lan]\nnetworks: {lan: {}}\n")
    sb.cli("compose", "-f", str(f), "-p", "lab", "up", "-d", check=True)
    web = json.loads(sb.cli("show", "lab-web-1", "--format", "json", check=True).stdout)["containers"][0]
    ep = web["endpoints"][0]
    assert ep["impairment"] == "rate 2mbit" and ep["link"] == "down", ep
    assert "rate 2Mbit" in qdisc(sb, "lab-web-1")
    assert not pings(sb, "lab-db-1", "lab-web-1")
    f.write_text(f.read_text().replace("link: {lan: down}", "link: {lan: up}").replace("      impair: {lan: {rate: 2mbit}}\n", ""))
    sb.cli("compose", "-f", str(f), "-p", "lab", "up", "-d", check=True)
    assert pings_again(sb, "lab-db-1", "lab-web-1") and "tbf" not in qdisc(sb, "lab-web-1")
    sb.cli("compose", "-f", str(f), "-p", "lab", "down", check=True)
