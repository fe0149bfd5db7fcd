"""DNS benchmark (issue 4): the embedded resolver of a user bridge, queried from
inside a container at 127.0.0.11 as on Docker, next to dnsmasq and aardvark-dns
serving the same names from the same host in the same run; and one resolver
serving a thousand containers.

  sudo .venv/bin/python tools/bench.py dns [--queries 5000] [--runs 11] [--clients 4] [--scale 1000] [--check]

Everything runs in a sandbox host of its own, removed at the end:
- nsbridge: `network create` of a user bridge starts its resolver; five containers
  on it (a client and four named targets), each with 127.0.0.11:53 held inside it
  by that resolver.
- dnsmasq (Debian's dnsmasq-base): on 10.53.0.1, another address of the same host
  (on its loopback), the same names in a hosts file, no upstream.
- aardvark-dns (Debian's, as netavark runs it: `aardvark-dns --config DIR -p 53
  run`, one config file per network named after it, first line the listen address,
  then `ID IPV4 IPV6 NAMES` per container, the client included since aardvark answers
  by the querier's address) on 10.53.0.2. Its /etc/resolv.conf is the sandbox's
  empty one (a private mount namespace), so it can never forward anywhere.

The client is Python (stdlib), run in the client container by `nsbridge exec`; it
sends one query at a time (closed loop) for N queries or a time bound, with a 0.5 s
timeout per query counted as lost, and answers that are not NOERROR with one address
counted as bad. "1 client" is one such process; "4 clients" is four at once, started
together. Each (server, load) is run R times, interleaved, the servers' order rotated
per run. The first table shows each one's run with the median qps; ratios are taken
per run (servers measured back to back, so other work on the machine weighs on them
alike) and their median is shown. Targets (issue 4): 1 client >= 10k qps with p50
<= 100 us; 4 clients >= 0.8x dnsmasq and >= 1.2x aardvark-dns; no loss.

At scale (`--scale N`, 0 to skip): N idle containers on one more network, made through
the engine in one session; then the resolver's memory (VmRSS) and descriptors, the
time an engine call takes to restart it after a SIGKILL until it holds 127.0.0.11 in
all N again, and one client's qps from the last container made.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import print_table

from nsbridge.sandbox import Sandbox

AARDVARK = "/usr/lib/podman/aardvark-dns"
DNSMASQ_ADDR, AARDVARK_ADDR = "10.53.0.1", "10.53.0.2"
TARGETS = ("t1", "t2", "t3", "t4")

CLIENT = r"""
import json, socket, struct, sys, time
server, n, start_at, bound = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
names = sys.argv[5:]
def body(name):
    out = struct.pack(">HHHHH", 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0" + struct.pack(">HH", 1, 1)
bodies = [body(x) for x in names]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((server, 53))
s.settimeout(0.5)
def one(i, lat):
    q = (i & 0xFFFF).to_bytes(2, "big") + bodies[i % len(bodies)]
    t = time.perf_counter_ns()
    s.send(q)
    while True:
        try:
            r = s.recv(1500)
        except socket.timeout:
            return "lost"
        if r[:2] == q[:2]:
            break  # anything else is a late reply to a query already counted lost
    lat.append(time.perf_counter_ns() - t)
    flags, qd, an = struct.unpack(">HHH", r[2:8])
    return "ok" if flags & 0x800F == 0x8000 and an == 1 else "bad"
warm = []
for i in range(200):
    one(i, warm)
while time.time() < start_at:
    time.sleep(0.0005)
lat, lost, bad = [], 0, 0
t0 = time.perf_counter()
deadline = t0 + bound
for i in range(n):
    r = one(i, lat)
    if r == "lost":
        lost += 1
    elif r == "bad":
        bad += 1
    if (i & 255) == 0 and time.perf_counter() > deadline:
        break
t1 = time.perf_counter()
wall0 = time.time() - (t1 - t0)
print(json.dumps({"sent": i + 1, "lost": lost, "bad": bad, "t0": wall0, "t1": wall0 + (t1 - t0),
                  "lat_us": [round(x / 1000, 1) for x in lat]}))
"""


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Bench:
    def __init__(self, sb: Sandbox, args: argparse.Namespace) -> None:
        self.sb, self.a = sb, args
        self.procs: list[subprocess.Popen] = []
        self.aardvark_pidfile = ""

    # -- set-up ------------------------------------------------------------------------
    def setup(self) -> dict[str, str]:
        sb = self.sb
        sb.cli("network", "create", "dnsbench", check=True)
        for name in ("client", *TARGETS):
            sb.cli("run", "-d", "--name", name, "--network", "dnsbench", "alpine", check=True)
        members = {}
        for c in json.loads(sb.cli("network", "inspect", "dnsbench", check=True).stdout)[0]["Containers"].items():
            cid, m = c
            members[m["Name"]] = (cid, m["IPv4Address"].split("/")[0])
        self.expected = {n: members[n][1] for n in TARGETS}
        # another address of the same host for each of the others (on its loopback: this
        # kernel may have no dummy driver; containers reach it through their gateway)
        for addr in (DNSMASQ_ADDR, AARDVARK_ADDR):
            sb.host_run("ip", "addr", "add", f"{addr}/32", "dev", "lo", check=True)
        work = os.path.join(sb.root, "bench-dns")
        os.makedirs(work, exist_ok=True)
        # dnsmasq: the same names from a hosts file, nothing upstream
        hosts = os.path.join(work, "hosts")
        with open(hosts, "w") as f:
            for n in TARGETS:
                f.write(f"{members[n][1]}\t{n}\n")
        p = subprocess.Popen(
            ["ip", "netns", "exec", sb.name, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", f"--listen-address={DNSMASQ_ADDR}",
             "--bind-interfaces", "--port=53", "--user=root", "--group=root", "--pid-file", "--cache-size=1000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        # aardvark-dns, configured the way netavark does
        conf = os.path.join(work, "aardvark")
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "dnsbench"), "w") as f:
            f.write(f"{AARDVARK_ADDR}\n")
            for name, (cid, ip) in sorted(members.items()):
                f.write(f"{cid} {ip}  {name},{cid[:12]}\n")
        self.aardvark_pidfile = os.path.join(conf, "aardvark.pid")
        if os.path.exists(AARDVARK):
            empty = os.path.join(sb.root, "host-resolv.conf")
            # `ip netns exec` gives it a mount namespace of its own: the bind stays there.
            r = subprocess.run(
                ["ip", "netns", "exec", sb.name, "sh", "-c",
                 'mount --bind "$0" /etc/resolv.conf && exec "$@"', empty,
                 AARDVARK, "--config", conf, "-p", "53", "run"],
                capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                print(f"bench dns: aardvark-dns did not start: {r.stderr.strip()}", file=sys.stderr)
        servers = {"nsbridge": "127.0.0.11", "dnsmasq": DNSMASQ_ADDR}
        if self.aardvark_pid():
            servers["aardvark-dns"] = AARDVARK_ADDR
        self.wait_ready(servers)
        return servers

    def aardvark_pid(self) -> int:
        try:
            with open(self.aardvark_pidfile) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def wait_ready(self, servers: dict[str, str], client: str = "client") -> None:
        """Every server answers every name with the right address before timing starts."""
        check = (
            "import socket,struct,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(0.3)\n"
            "for n in sys.argv[2:]:\n"
            " q=b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'+bytes([len(n)])+n.encode()+b'\\x00\\x00\\x01\\x00\\x01'\n"
            " s.sendto(q,(sys.argv[1],53))\n"
            " r=s.recv(512)\n"
            " print(n, socket.inet_ntoa(r[-4:]) if r[7] else '-')\n"
        )
        for name, addr in servers.items():
            got: dict[str, str] = {}
            for _ in range(100):
                p = self.sb.cli("exec", client, "python3", "-c", check, addr, *TARGETS)
                got = dict(line.split() for line in p.stdout.splitlines())
                if got == self.expected:
                    break
                time.sleep(0.05)
            if got != self.expected:
                raise RuntimeError(f"{name} on {addr} answers {got or 'nothing'}, expected {self.expected}")

    def teardown(self) -> None:
        pid = self.aardvark_pid()
        if pid:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    # -- measuring ---------------------------------------------------------------------
    def measure(self, addr: str, clients: int, client: str = "client") -> dict:
        start_at = time.time() + 0.6 + 0.15 * clients  # after every exec has warmed up
        argv = self.sb.argv("exec", client, "python3", "-c", CLIENT, addr, str(self.a.queries),
                            str(start_at), str(self.a.bound), *TARGETS)
        procs = [subprocess.Popen(argv, env=self.sb.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(clients)]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=self.a.bound + 30)
            if p.returncode != 0:
                raise RuntimeError(f"client failed ({p.returncode}): {err.strip()}")
            outs.append(json.loads(out))
        lat = sorted(x for o in outs for x in o["lat_us"])
        ok = len(lat) - sum(o["bad"] for o in outs)
        span = max(o["t1"] for o in outs) - min(o["t0"] for o in outs)
        return {
            "qps": len(lat) / span if span > 0 else 0.0,
            "p50": lat[len(lat) // 2] if lat else float("nan"),
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
            "sent": sum(o["sent"] for o in outs),
            "lost": sum(o["lost"] for o in outs),
            "bad": sum(o["bad"] for o in outs),
            "ok": ok,
        }


    def at_scale(self, n: int) -> dict:
        """One resolver serving N containers (they can resolve the four targets: each
        is also on dnsbench, after its own network)."""
        from nsbridge.engine.containers import RunSpec

        sb = self.sb
        t = time.perf_counter()
        with sb.engine() as e, e.session():
            e.network_create("dnsscale")
            for i in range(n):
                e.run(RunSpec(name=f"s{i}", networks=["dnsscale", "dnsbench"] if i == n - 1 else ["dnsscale"]))
        made = time.perf_counter() - t
        last = f"s{n - 1}"
        pid = int(sb.cli("network", "inspect", "--format", "{{.NsbridgeResolver.Pid}}", "dnsscale",
                         check=True).stdout)
        os.kill(pid, 9)
        while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
            time.sleep(0.005)
        with sb.engine() as e:
            t = time.perf_counter()
            e.ensure_ready()  # what any command does when it finds a resolver dead
            restart = time.perf_counter() - t
            r = e.store.resolvers()[e.network("dnsscale").id]
        pid = r[0]
        held = self.status("dnsscale")
        self.wait_ready({"nsbridge": "127.0.0.11"}, client=last)
        m = self.measure("127.0.0.11", 1, client=last)
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        return {"containers": n, "made_s": made, "restart_s": restart, "held": held, "rss_mb": rss / 1024,
                "fds": len(os.listdir(f"/proc/{pid}/fd")), **m}

    def status(self, net: str) -> str:
        from nsbridge.dns import embedded
        from nsbridge.kernel import ns

        nid = json.loads(self.sb.cli("network", "inspect", net, check=True).stdout)[0]["Id"]
        with ns.in_netns(ns.netns_path(self.sb.name)):  # where the resolver's control socket is
            return embedded.request(embedded.control_address(nid), "status")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py dns", description=__doc__.split("\n\n")[0])
    # Many short runs rather than a few long ones: on a shared 2-CPU machine the spread
    # between runs is large, and the median of per-run ratios settles with their number.
    ap.add_argument("--queries", type=int, default=5000, help="queries per client per run (default 5000)")
    ap.add_argument("--runs", type=int, default=11, help="runs per server and load (default 11; medians shown)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients in the second load")
    ap.add_argument("--bound", type=float, default=20.0, help="seconds a client may run at most")
    ap.add_argument("--scale", type=int, default=1000, help="containers served by one resolver (0: skip)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    a = ap.parse_args(argv)
    if shutil.which("dnsmasq") is None:
        print("bench dns: dnsmasq (dnsmasq-base) is not installed: `sudo ./setup.sh bench`", file=sys.stderr)
        return 1
    loads = [("1 client", 1), (f"{a.clients} clients", a.clients)]
    scale = None
    with Sandbox() as sb:
        b = Bench(sb, a)
        try:
            servers = b.setup()
            print(f"bench dns: load average before: {' '.join(open('/proc/loadavg').read().split()[:3])} "
                  f"on {os.cpu_count()} CPUs (other work on the machine shows in the spread of the runs)")
            print(f"bench dns: sandbox {sb.name}; servers: "
                  + ", ".join(f"{k} on {v}" for k, v in servers.items())
                  + f"; {a.queries} queries per client, {a.runs} runs, from a container by `nsbridge exec`")
            if "aardvark-dns" not in servers:
                print(f"bench dns: {AARDVARK} missing or not started: aardvark-dns left out")
            results: dict[tuple[str, str], list[dict]] = {}
            order = list(servers.items())
            for run in range(a.runs):
                for load, n in loads:
                    # rotated per run: no server always measured first (or right after another)
                    for name, addr in order[run % len(order):] + order[: run % len(order)]:
                        results.setdefault((name, load), []).append(b.measure(addr, n))
            scale = b.at_scale(a.scale) if a.scale > 0 else None
        finally:
            b.teardown()
    med: dict[tuple[str, str], dict] = {}
    rows = []
    for (name, load), runs in results.items():
        qs = [r["qps"] for r in runs]
        m = sorted(runs, key=lambda r: r["qps"])[len(runs) // 2]
        med[(name, load)] = m
        rows.append([name, load, round(m["qps"]), round(m["p50"]), round(m["p99"]),
                     sum(r["lost"] for r in runs), sum(r["bad"] for r in runs), sum(r["sent"] for r in runs),
                     "[" + ", ".join(str(round(q)) for q in qs) + "]"])
    print_table("4. DNS from inside a container (median run by qps)",
                ["server", "load", "qps", "p50 us", "p99 us", "lost", "bad", "queries", "qps runs"], rows)
    # Ratios per run (each run measures every server back to back, so a load that other
    # work puts on the machine meanwhile weighs on all of them alike), median over runs.
    def ratio(load: str, other: str) -> tuple[float, list[float]]:
        rs = [o["qps"] / t["qps"] for o, t in zip(results[("nsbridge", load)], results[(other, load)]) if t["qps"]]
        return (statistics.median(rs) if rs else float("nan")), rs

    ratio_rows, verdict = [], []
    ratios: dict[tuple[str, str], float] = {}
    for load, _n in loads:
        row: list[object] = [load, round(med[("nsbridge", load)]["qps"])]
        for other in ("dnsmasq", "aardvark-dns"):
            if (other, load) in med:
                r, rs = ratio(load, other)
                ratios[(load, other)] = r
                row += [round(med[(other, load)]["qps"]), f"{r:.2f}x", "[" + ", ".join(f"{x:.2f}" for x in rs) + "]"]
            else:
                row += ["-", "-", "-"]
        ratio_rows.append(row)
    print_table("4. DNS: nsbridge's resolver as ratios (per run, median; same run)",
                ["load", "nsbridge qps", "dnsmasq qps", "vs dnsmasq", "per run", "aardvark qps", "vs aardvark",
                 "per run"], ratio_rows)
    one, many = med[("nsbridge", loads[0][0])], med[("nsbridge", loads[1][0])]
    verdict.append(("1 client >= 10k qps", one["qps"] >= 10000, f"{one['qps']:.0f}"))
    verdict.append(("1 client p50 <= 100 us", one["p50"] <= 100, f"{one['p50']:.0f} us"))
    if (loads[1][0], "dnsmasq") in ratios:
        r = ratios[(loads[1][0], "dnsmasq")]
        verdict.append((f"{a.clients} clients >= 0.8x dnsmasq", r >= 0.8, f"{r:.2f}x"))
    if (loads[1][0], "aardvark-dns") in ratios:
        r = ratios[(loads[1][0], "aardvark-dns")]
        verdict.append((f"{a.clients} clients >= 1.2x aardvark-dns", r >= 1.2, f"{r:.2f}x"))
    if scale is not None:
        print_table(f"4. DNS: one resolver serving {scale['containers']} containers",
                    ["containers", "made in s", "restart s", "held after restart", "resolver RSS MB", "fds",
                     "qps (1 client, last container)", "p50 us", "lost"],
                    [[scale["containers"], round(scale["made_s"], 1), round(scale["restart_s"], 2), scale["held"],
                      round(scale["rss_mb"], 1), scale["fds"], round(scale["qps"]), round(scale["p50"]),
                      scale["lost"] + scale["bad"]]])
        verdict.append((f"{scale['containers']} containers: all held after a restart",
                        scale["held"] == f"held {scale['containers']} missing 0", scale["held"]))
    lost = sum(r["lost"] + r["bad"] for (name, _), runs in results.items() if name == "nsbridge" for r in runs)
    verdict.append(("no lost or bad answers (nsbridge)", lost == 0, str(lost)))
    print_table("4. DNS: targets (issue 4)", ["target", "met", "measured"],
                [[t, "yes" if ok else "NO", v] for t, ok, v in verdict])
    return 1 if a.check and not all(ok for _, ok, _ in verdict) else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main(sys.argv[1:]))
