"""What keeps a published port's cost flat however many the host has (issue 11):
the store's index of held host ports, and the firewall batches (no ruleset read
for a few known rules; deletions by position once it is read). No root: the
firewall's iptables-save and iptables-restore are replaced by a recorder."""
from __future__ import annotations

import sqlite3

from nsbridge.errors import KernelError
from nsbridge.kernel import firewall
from nsbridge.kernel.firewall import Firewall, Rule
from nsbridge.model import Container, PortBinding, now_iso
from nsbridge.state.store import Store


def ctr(cid: str, state: str, *ports: tuple[str, str, int]) -> Container:
    c = Container(id=cid * 64, name=f"c-{cid}", created=now_iso(), state=state)
    c.ports = [PortBinding(80, proto, ip, port) for proto, ip, port in ports]
    return c


def test_held_ports_are_read_by_span_with_their_holders_state(tmp_path):
    st = Store(str(tmp_path / "state.db"))
    with st.tx():
        st.put_container(ctr("a", "running", ("tcp", "", 8080), ("udp", "127.0.0.1", 8080), ("tcp", "", 32768)))
        st.put_container(ctr("b", "exited", ("tcp", "", 8081)))
        st.put_container(ctr("c", "running"))
    assert st.held_ports("", "tcp", 8080, 8081) == [(True, "", 8080), (False, "", 8081)]
    assert st.held_ports("", "udp", 1, 65535) == [(True, "127.0.0.1", 8080)]
    assert st.held_ports("a" * 64, "tcp", 1, 65535) == [(False, "", 8081)]  # the container's own are not held
    assert st.held_ports("", "tcp", 9000, 9999) == []
    # the index follows the container's record: changed ports, a new state, removal
    with st.tx():
        st.put_container(ctr("b", "running", ("tcp", "", 9000)))
        st.delete_container("a" * 64)
    assert st.held_ports("", "tcp", 1, 65535) == [(True, "", 9000)]
    plan = " ".join(r[3] for r in st.db.execute(
        "EXPLAIN QUERY PLAN SELECT host_ip FROM ports WHERE proto = 'tcp' AND host_port BETWEEN 1 AND 2"))
    assert "USING INDEX ports_port" in plan
    st.close()


def test_a_state_root_older_than_the_index_is_filled_once(tmp_path):
    path = str(tmp_path / "state.db")
    st = Store(path)
    with st.tx():
        st.put_container(ctr("a", "running", ("tcp", "", 8080)))
    st.close()
    db = sqlite3.connect(path)  # as an older nsbridge left it: no ports table, no mark
    db.execute("DROP TABLE ports")
    db.execute("DELETE FROM meta WHERE key = 'ports_indexed'")
    db.commit()
    db.close()
    st = Store(path)
    assert st.held_ports("", "tcp", 8080, 8080) == [(True, "", 8080)]
    assert st.get_meta("ports_indexed") == "1"
    st.close()


class Recorder(Firewall):
    """A Firewall whose kernel is a list of (table, chain, spec) and a log of batches."""

    def __init__(self, rules: list[tuple[str, str, str]], fail_first: bool = False) -> None:
        self.rules = rules
        self.saves = 0
        self.batches: list[str] = []
        self.fail_first = fail_first

    def save(self) -> str:
        self.saves += 1
        out = []
        for table in ("filter", "nat"):
            out += [f"*{table}", ":NSBRIDGE - [0:0]"]
            out += [f"-A {c} {s}" for t, c, s in self.rules if t == table]
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def restore(self, batch: str) -> None:
        self.batches.append(batch)
        if self.fail_first:
            self.fail_first = False
            raise KernelError("iptables-restore failed: line 2 failed")


def dnat(port: int) -> Rule:
    return firewall.port_rules("docker0", "172.17.0.2", 80, "tcp", "", port)[0]


def test_a_published_port_is_one_dnat_and_one_accept_its_masquerades_are_the_networks():
    assert [r.chain for r in firewall.port_rules("docker0", "172.17.0.2", 80, "tcp", "", 8080)] == ["NSBRIDGE"] * 2
    net = [r.spec for r in firewall.network_rules("br-x", "10.1.0.0/24", icc=True, masquerade=False, internal=False)
           if "MASQUERADE" in r.spec]
    assert net == ["-s 127.0.0.0/8 -o br-x -j MASQUERADE", "-s 10.1.0.0/24 -o br-x -m conntrack --ctstate DNAT -j MASQUERADE"]
    internal = firewall.network_rules("br-y", "10.2.0.0/24", icc=True, masquerade=True, internal=True)
    assert not [r for r in internal if "MASQUERADE" in r.spec]  # nothing is published on an internal network


def test_known_rules_go_without_reading_the_ruleset_and_are_redone_checked_if_the_kernel_disagrees():
    fw = Recorder([("nat", "NSBRIDGE", dnat(1).spec)])
    fw.apply(add=[dnat(2)], delete=[dnat(1)], known=True)
    assert fw.saves == 0 and fw.batches == [f"*nat\n-D NSBRIDGE {dnat(1).spec}\n-A NSBRIDGE {dnat(2).spec}\nCOMMIT\n"]
    fw = Recorder([("nat", "NSBRIDGE", dnat(1).spec)], fail_first=True)  # say dnat(3) was removed by hand
    fw.apply(delete=[dnat(3), dnat(1)], known=True)
    assert fw.saves == 1 and fw.batches[-1] == "*nat\n-D NSBRIDGE 1\nCOMMIT\n"


def test_many_deletions_go_by_position_from_the_last_up():
    """iptables-nft compares `-D CHAIN SPEC` with every rule before its match:
    5,000 of them behind 1,000 others took 141 s. By position: none compared."""
    kernel = [("nat", "NSBRIDGE", dnat(p).spec) for p in range(1, 1001)]
    kernel.insert(500, ("nat", "NSBRIDGE", dnat(7).spec))  # a duplicate: the first one goes, as -D SPEC would
    fw = Recorder(kernel)
    gone = [dnat(p) for p in range(990, 1001)] + [dnat(7)] * 2 + [dnat(2000)] * 5  # 2000 is not there
    assert len(gone) > firewall.BULK_DELETE
    fw.apply(delete=gone, known=True)
    assert fw.saves == 1 and len(fw.batches) == 1
    lines = fw.batches[0].splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    numbers = [int(x.split()[-1]) for x in lines[1:-1]]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == 13
    assert set(numbers) == {7, 501} | set(range(991, 1002))  # positions 1-based; 501 is the inserted duplicate
