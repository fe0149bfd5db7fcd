"""A bridge takes as many containers as can reach their gateway (issue 11,
item 11), and the one more is refused in one line with nothing left behind.

The cause: a broadcast entering through one veth port (ARP for the gateway)
is copied to every other port onto the sending CPU's input backlog
(net.core.netdev_max_backlog, 1000 by default, machine-wide), the gateway's
answer queued after the copies. Before the fix, `run` reported success for
containers 1001 to 1023 on one bridge, and from the 1002nd on their ARP for
the gateway stayed INCOMPLETE: no ping, no DNS. tools/bench.py fill shows the
same at full size (and with a raised backlog, a full 1023-port bridge).
"""
from __future__ import annotations

import json

import pytest

from nsbridge.drivers import bridge as drv
from nsbridge.engine.containers import RunSpec
from nsbridge.kernel import sysctl


def retry(sb, *args: str, tries: int = 3):
    for _ in range(tries):
        r = sb.cli(*args)
        if r.returncode == 0:
            break
    return r


@pytest.mark.slow
def test_a_full_bridge_refuses_the_container_that_would_not_reach_its_gateway(sb):
    limit = min(drv.MAX_PORTS, sysctl.netdev_max_backlog())
    e = sb.engine()
    try:
        e.network_create("fill")
        for i in range(limit):
            e.run(RunSpec(image="alpine", name=f"c{i}", networks=["fill"]))
    finally:
        e.close()
    gw = json.loads(sb.cli("network", "inspect", "fill", check=True).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    last = f"c{limit - 1}"
    # the last one admitted has its network: its gateway answers, a name resolves
    assert retry(sb, "exec", last, "ping", "-c1", "-W2", gw).returncode == 0
    out = retry(sb, "exec", last, "nslookup", "c0").stdout
    assert "Name:\tc0\nAddress: " in out, out
    # one more: refused (Docker's run exit code), one line, and nothing made
    before = sb.netns_names()
    r = sb.cli("run", "-d", "--name", "extra", "--network", "fill", "alpine")
    assert r.returncode == 125, r.stdout
    line = r.stderr.splitlines()[0]
    assert line.startswith(f"nsbridge: Error response from daemon: failed to create endpoint extra on network fill: "
                           f"the network has {limit} endpoints, its limit on this host: ")
    assert "netdev_max_backlog" in line or "1023 ports per bridge" in line
    assert sb.netns_names() == before
    assert len(sb.cli("ps", "-aq", check=True).stdout.split()) == limit
    # `network connect` of a running container is refused the same way; it keeps what it had
    sb.cli("run", "-d", "--name", "other", "alpine", check=True)
    r = sb.cli("network", "connect", "fill", "other")
    assert r.returncode == 1 and "failed to create endpoint other on network fill" in r.stderr
    nets = json.loads(sb.cli("inspect", "other", check=True).stdout)[0]["NetworkSettings"]["Networks"]
    assert list(nets) == ["bridge"]
    # room again once one leaves
    sb.cli("rm", "-f", "c0", check=True)
    sb.cli("run", "-d", "--name", "extra", "--network", "fill", "alpine", check=True)
    assert retry(sb, "exec", "extra", "ping", "-c1", "-W2", gw).returncode == 0
