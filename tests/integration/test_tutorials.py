"""The five tutorials (docs/tutorials.md), replayed as typed with
`nsbridge` in place of `docker`, in a sandbox host: what each shows, and what
the student does next (HTTP to the published port, a database's port by
container name, a service on the host through host.docker.internal).

Commands are given as the tutorial's shell lines and split like a shell
would (`docker(sb, "docker run -itd --name=web nginx")`); interactive ones
(`-it`) run on a pseudo-terminal driven by pexpect.
"""
from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import time

import pexpect
import pytest

from nsbridge.engine.process import PATH
from nsbridge.sandbox import Sandbox

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def docker(sb: Sandbox, line: str, ok: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a tutorial's `docker ...` line with nsbridge."""
    argv = shlex.split(line)
    assert argv[0] == "docker", line
    p = sb.cli(*argv[1:], **kw)
    if ok:
        assert p.returncode == 0, f"{line}: exit {p.returncode}: {p.stderr}"
    return p


def spawn(sb: Sandbox, line: str, timeout: float = 15) -> pexpect.spawn:
    """A tutorial's interactive `docker ...` line on a pseudo-terminal."""
    argv = shlex.split(line)
    assert argv[0] == "docker", line
    full = sb.argv(*argv[1:])
    return pexpect.spawn(full[0], full[1:], env=sb.env, encoding="utf-8", timeout=timeout, dimensions=(24, 120))


def finish(p: pexpect.spawn, timeout: float = 15) -> int:
    p.expect(pexpect.EOF, timeout=timeout)
    p.close()
    return p.exitstatus if p.exitstatus is not None else 128 + (p.signalstatus or 0)


def bash_prompt(cid: str) -> str:
    """Debian's root prompt in a container: root@<short id>:/#."""
    return re.escape(f"root@{cid[:12]}:/# ")


def ping_and_interrupt(p: pexpect.spawn, target: str, seen: str, prompt: str) -> str:
    """Type `ping TARGET` at a shell, wait for SEEN, press Ctrl-C, return the
    transcript up to the next prompt (ping runs until interrupted, as typed)."""
    p.sendline(f"ping {target}")
    p.expect(seen, timeout=10)
    out = p.before + p.after
    time.sleep(0.2)
    p.sendcontrol("c")
    p.expect(prompt, timeout=10)
    return out + p.before


def host_get(sb: Sandbox, url: str) -> str:
    """HTTP GET from the sandbox host itself (the student's browser or curl)."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    return sb.host_run(sys.executable, "-c", code, check=True).stdout


@contextlib.contextmanager
def host_server(sb: Sandbox, port: int, tmp_path, kind: str = "http"):
    """A service on the (sandbox) host: the tutorial's Spring Boot on :8080 or
    MongoDB on :27017. Started and killed here."""
    if kind == "http":
        (tmp_path / "index.html").write_text("spring boot on the host\n")
        cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0", "--directory", str(tmp_path)]
    else:
        from tests.integration.helpers import TCP_SERVER

        cmd = [sys.executable, "-c", TCP_SERVER, str(port)]
    p = subprocess.Popen(["ip", "netns", "exec", sb.name, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sb.host_run("ss", "-ltnH", f"sport = :{port}").stdout.strip():
            assert p.poll() is None and time.monotonic() < deadline, "host server did not start"
            time.sleep(0.05)
        yield
    finally:
        p.kill()
        p.wait()


def wait_listening(sb: Sandbox, name: str, port: int) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = sb.cli("exec", name, "ss", "-ltn").stdout
        if f":{port} " in out:
            return out
        time.sleep(0.05)
    raise AssertionError(f"{name} does not listen on {port}")


# -- 1: user-defined bridge skynet (docker-handbook) ------------------------------------
def test_tutorial1_user_defined_bridge_skynet(sb):
    ls = docker(sb, "docker network ls").stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [r.split()[1:] for r in ls[1:]] == [["bridge", "bridge", "local"], ["host", "host", "local"], ["none", "null", "local"]]

    out = docker(sb, "docker container run --rm --detach --name hello-dock --publish 8080:80 fhsinchy/hello-dock").stdout
    assert HEX64.match(out.strip())
    assert docker(sb, "docker network inspect --format='{{range .Containers}}{{.Name}}{{end}}' bridge").stdout == "hello-dock\n"

    # what the student does next: open the page (from the host at the container's
    # address here; at localhost:8080 in test_published_ports_from_the_host)
    wait_listening(sb, "hello-dock", 80)
    page = host_get(sb, "http://172.17.0.2/")
    assert "Hello, Dock!" in page and "<b>hello-dock</b>" in page

    assert HEX64.match(docker(sb, "docker network create skynet").stdout.strip())
    names = [r.split()[1] for r in docker(sb, "docker network ls").stdout.splitlines()[1:]]
    assert names == ["bridge", "host", "none", "skynet"]

    docker(sb, "docker network connect skynet hello-dock")
    assert docker(sb, "docker network inspect --format='{{range .Containers}} {{.Name}} {{end}}' skynet").stdout == " hello-dock \n"
    assert docker(sb, "docker network inspect --format='{{range .Containers}} {{.Name}} {{end}}' bridge").stdout == " hello-dock \n"

    # lands you into alpine linux shell; ping hello-dock by name (busybox's ping)
    p = spawn(sb, "docker container run --network skynet --rm --name alpine-box -it alpine sh")
    p.expect("/ # ")
    out = ping_and_interrupt(p, "hello-dock", r"seq=2 ttl=64", "/ # ")
    assert "PING hello-dock (172.18.0.2): 56 data bytes" in out
    assert re.search(r"64 bytes from 172\.18\.0\.2: seq=0 ttl=64 time=[0-9.]+ ms", out)
    assert "--- hello-dock ping statistics ---" in out and " 0% packet loss" in out
    # and the page, by name, from the shell
    p.sendline("wget -qO- http://hello-dock/")
    p.expect("/ # ")
    assert "<b>hello-dock</b>" in p.before
    p.sendline("exit")
    assert finish(p) == 0
    assert "alpine-box" not in docker(sb, "docker ps -a").stdout  # --rm

    docker(sb, "docker network disconnect skynet hello-dock")
    assert docker(sb, "docker network inspect --format='{{range .Containers}} {{.Name}} {{end}}' skynet").stdout == "\n"
    docker(sb, "docker network rm skynet")
    docker(sb, "docker stop hello-dock")
    assert docker(sb, "docker ps -a -q").stdout == ""  # --rm: gone when stopped


# -- 2: default bridge vs my_bridge ----------------------------------------------------------
def test_tutorial2_default_vs_user_bridge(sb):
    docker(sb, "docker network ls")
    assert HEX64.match(docker(sb, "docker run -itd --name=web nginx").stdout.strip())
    bridge = json.loads(docker(sb, "docker network inspect bridge").stdout)[0]
    assert bridge["Options"]["com.docker.network.bridge.name"] == "docker0"
    assert [c["Name"] for c in bridge["Containers"].values()] == ["web"]
    assert list(bridge["Containers"].values())[0]["IPv4Address"] == "172.17.0.2/16"
    gw = sb.host_run("ip", "-4", "-o", "addr", "show", "docker0", check=True).stdout
    assert "172.17.0.1/16" in gw  # docker0 facts: gateway 172.17.0.1, a /16

    docker(sb, "docker network create my_bridge")
    docker(sb, "docker run -d --net=my_bridge --name=db redis")
    nets = json.loads(docker(sb, "docker inspect --format='{{json .NetworkSettings.Networks}}' db").stdout)
    assert list(nets) == ["my_bridge"] and nets["my_bridge"]["IPAddress"] == "172.18.0.2"

    # web (172.17.0.2) and db are on different bridges: db's pings are dropped
    db_id = docker(sb, "docker inspect --format={{.Id}} db").stdout.strip()
    p = spawn(sb, "docker container exec -it db bash")
    p.expect(bash_prompt(db_id))
    p.sendline("ping 172.17.0.2")
    p.expect(re.escape("PING 172.17.0.2 (172.17.0.2) 56(84) bytes of data."))
    time.sleep(2.2)
    p.sendcontrol("c")
    p.expect(bash_prompt(db_id))
    assert "100% packet loss" in p.before
    p.sendline("exit")
    assert finish(p) == 1  # bash exits with ping's status, as in Docker

    docker(sb, "docker network connect my_bridge web")
    split = docker(sb, """docker inspect --format='{{range .NetworkSettings.Networks}}{{split .IPAddress ","}}{{end}}' web""")
    assert split.stdout == "[172.17.0.2][172.18.0.3]\n"

    # db's shell reaches web by name now
    p = spawn(sb, "docker container exec -it db bash")
    p.expect(bash_prompt(db_id))
    out = ping_and_interrupt(p, "web", r"icmp_seq=2 ttl=64", bash_prompt(db_id))
    assert "PING web (172.18.0.3) 56(84) bytes of data." in out
    assert "64 bytes from web.my_bridge (172.18.0.3): icmp_seq=1 ttl=64" in out
    # the student's next step: web's page and redis's port, by name
    p.sendline("busybox wget -qO- http://web/ | grep -o 'container <b>[a-z]*</b>'")
    p.expect(bash_prompt(db_id))
    assert "container <b>web</b>" in p.before
    p.sendline("exit")
    assert finish(p) == 0
    assert sb.cli("exec", "web", "busybox", "nc", "db", "6379").stdout.startswith("redis stand-in (nsbridge) in container db")


# -- 3: host.docker.internal, container IPs, favorites-net -----------------------------------
def test_tutorial3_host_docker_internal_and_networks(sb, tmp_path):
    docker(sb, "docker run -d --name mongodb mongo")
    info = json.loads(docker(sb, "docker container inspect mongodb").stdout)[0]
    mongo_ip = info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert mongo_ip == "172.17.0.2"
    wait_listening(sb, "mongodb", 27017)
    assert "27017" in docker(sb, "docker exec mongodb ss -ltn").stdout

    docker(sb, "docker run --rm -d -p 3000:3000 --name favorites favorites-node")
    # mongodb://172.17.0.2:27017/swfavorites: the container's IP works
    r = sb.cli("exec", "favorites", "busybox", "nc", mongo_ip, "27017")
    assert r.returncode == 0 and "in container mongodb" in r.stdout

    # the host's Spring Boot on :8080 and MongoDB on :27017, through host.docker.internal
    with host_server(sb, 8080, tmp_path), host_server(sb, 27017, tmp_path, kind="tcp"):
        r = sb.cli("exec", "favorites", "busybox", "wget", "-qO-", "http://host.docker.internal:8080/")
        assert r.returncode == 0 and r.stdout == "spring boot on the host\n", r.stderr
        assert sb.cli("exec", "favorites", "busybox", "nc", "host.docker.internal", "27017").stdout.startswith("hello from")

        # networks are never created implicitly
        docker(sb, "docker rm -f mongodb")
        r = docker(sb, "docker run -d --name mongodb --network favorites-net mongo", ok=False)
        assert r.returncode == 125 and "network favorites-net not found" in r.stderr
        assert docker(sb, "docker ps -a -q").stdout.count("\n") == 1  # nothing left behind
        docker(sb, "docker network create favorites-net")
        docker(sb, "docker run -d --name mongodb --network favorites-net mongo")
        docker(sb, "docker network connect favorites-net favorites")

        # mongodb://mongodb:27017/swfavorites: by name on the shared network
        wait_listening(sb, "mongodb", 27017)
        r = sb.cli("exec", "favorites", "busybox", "nc", "mongodb", "27017")
        assert r.returncode == 0 and "in container mongodb" in r.stdout, r.stderr
        # and on a user network, host.docker.internal comes from the resolver
        r = sb.cli("exec", "mongodb", "busybox", "wget", "-qO-", "http://host.docker.internal:8080/")
        assert r.returncode == 0 and r.stdout == "spring boot on the host\n", r.stderr

    # grafana reaches prometheus at http://prometheus:9090/ (not localhost:9090)
    docker(sb, "docker run -d --name prometheus --network favorites-net prom/prometheus")
    docker(sb, "docker run -d --name grafana --network favorites-net grafana/grafana")
    wait_listening(sb, "prometheus", 9090)
    r = sb.cli("exec", "grafana", "busybox", "wget", "-qO-", "http://prometheus:9090/")
    assert "<title>Prometheus</title>" in r.stdout and "<b>prometheus</b>" in r.stdout
    assert sb.cli("exec", "grafana", "busybox", "wget", "-qO-", "http://localhost:9090/").returncode != 0

    r = docker(sb, "docker network rm favorites-net", ok=False)
    assert r.returncode == 1 and "has active endpoints" in r.stderr
    docker(sb, "docker stop favorites")
    docker(sb, "docker rm -f mongodb prometheus grafana")
    docker(sb, "docker network prune -f")
    assert "favorites-net" not in docker(sb, "docker network ls").stdout


def test_published_ports_from_the_host(sb):
    """Tutorials 1 and 3: the student opens localhost:8080 (hello-dock) and
    localhost:3000 (favorites) on the host."""
    docker(sb, "docker container run --rm --detach --name hello-dock --publish 8080:80 fhsinchy/hello-dock")
    docker(sb, "docker run --rm -d -p 3000:3000 --name favorites favorites-node")
    assert "0.0.0.0:8080->80/tcp" in docker(sb, "docker ps").stdout
    wait_listening(sb, "hello-dock", 80)
    wait_listening(sb, "favorites", 3000)
    page = host_get(sb, "http://localhost:8080/")
    assert "Hello, Dock!" in page and "<b>hello-dock</b>" in page
    assert "<b>favorites</b>" in host_get(sb, "http://localhost:3000/")
    # and from another container, through the host's published port (hairpin)
    docker(sb, "docker run -d --name client busybox")
    assert "<b>hello-dock</b>" in docker(sb, "docker exec client wget -qO- http://172.17.0.1:8080/").stdout
    docker(sb, "docker stop hello-dock favorites")
    docker(sb, "docker rm -f client")


# -- 4: connect / disconnect, my-net-test ----------------------------------------------------
TUTORIAL4_BRIDGE_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": "docker0",
    "com.docker.network.driver.mtu": "1500",
}


def test_tutorial4_connect_disconnect_my_net_test(sb):
    eid = docker(sb, "docker run -itd --name=eottabom ubuntu").stdout.strip()
    assert HEX64.match(eid)
    bridge = json.loads(docker(sb, "docker network inspect bridge").stdout)[0]
    assert bridge["Name"] == "bridge" and bridge["Driver"] == "bridge" and bridge["Scope"] == "local"
    assert bridge["IPAM"]["Config"][0]["Subnet"] == "172.17.0.0/16"
    assert bridge["Containers"][eid]["Name"] == "eottabom"
    assert bridge["Containers"][eid]["MacAddress"] == "02:42:ac:11:00:02"
    assert bridge["Containers"][eid]["IPv4Address"] == "172.17.0.2/16"
    assert bridge["Containers"][eid]["IPv6Address"] == ""
    assert bridge["Options"] == TUTORIAL4_BRIDGE_OPTIONS
    # "the bridge can be seen with ifconfig: docker0 by default" (net-tools, from setup.sh)
    ifc = sb.host_run("ifconfig", "docker0", check=True).stdout
    assert ifc.startswith("docker0: flags=") and re.search(r"inet 172\.17\.0\.1\s+netmask 255\.255\.0\.0", ifc)
    # -itd with no command: a running container a student can enter
    p = spawn(sb, "docker exec -it eottabom bash")
    p.expect(bash_prompt(eid))
    p.sendline("exit")
    assert finish(p) == 0

    docker(sb, "docker network disconnect bridge eottabom")
    bridge = json.loads(docker(sb, "docker network inspect bridge").stdout)[0]
    assert bridge["Containers"] == {} and bridge["Options"] == TUTORIAL4_BRIDGE_OPTIONS

    assert HEX64.match(docker(sb, "docker network create -d bridge my-net-test").stdout.strip())
    assert "my-net-test" in docker(sb, "docker network ls").stdout
    did = docker(sb, "docker run -d --net=my-net-test --name db-test training/postgres").stdout.strip()
    net = json.loads(docker(sb, "docker inspect my-net-test").stdout)[0]  # a network, found by name
    assert net["Name"] == "my-net-test" and net["Driver"] == "bridge"
    assert net["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
    assert net["Containers"][did]["Name"] == "db-test"
    assert net["Containers"][did]["MacAddress"] == "02:42:ac:12:00:02"
    assert net["Containers"][did]["IPv4Address"] == "172.18.0.2/16"

    docker(sb, "docker run -d --name web-test training/webapp python app.py")
    nets = json.loads(docker(sb, "docker inspect --format='{{json .NetworkSettings.Networks}}'  web-test").stdout)
    assert list(nets) == ["bridge"]
    assert (nets["bridge"]["Gateway"], nets["bridge"]["IPAddress"], nets["bridge"]["IPPrefixLen"]) == ("172.17.0.1", "172.17.0.2", 16)
    assert nets["bridge"]["MacAddress"] == "02:42:ac:11:00:02"
    ips = docker(sb, "docker inspect --format='{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web-test")
    assert ips.stdout == "172.17.0.2\n"

    # from db-test's shell: web-test is unreachable, by address and by name
    p = spawn(sb, "docker container exec -it db-test bash")
    p.expect(bash_prompt(did))
    p.sendline("ping 172.17.0.2")
    p.expect(re.escape("PING 172.17.0.2 (172.17.0.2) 56(84) bytes of data."))
    time.sleep(2.2)
    p.sendcontrol("c")
    p.expect(bash_prompt(did))
    assert re.search(r"\d+ packets transmitted, 0 received, 100% packet loss", p.before)
    p.sendline("ping -c1 -W1 web-test; echo rc=$?")
    p.expect(r"rc=(\d+)")
    assert p.match.group(1) != "0"
    p.expect(bash_prompt(did))
    p.sendline("exit")
    assert finish(p) == 0

    docker(sb, "docker network connect my-net-test web-test")
    p = spawn(sb, "docker container exec -it db-test bash")
    p.expect(bash_prompt(did))
    out = ping_and_interrupt(p, "web-test", r"icmp_seq=3 ttl=64", bash_prompt(did))
    assert "PING web-test (172.18.0.3) 56(84) bytes of data." in out
    assert re.search(r"64 bytes from web-test\.my-net-test \(172\.18\.0\.3\): icmp_seq=1 ttl=64 time=[0-9.]+ ms", out)
    assert "--- web-test ping statistics ---" in p.before and " 0% packet loss" in p.before
    # next: the webapp itself, on its port 5000
    p.sendline("busybox wget -qO- http://web-test:5000/")
    p.expect(bash_prompt(did))
    assert "Hello world!" in p.before and "<b>web-test</b>" in p.before
    p.sendline("exit")
    assert finish(p) == 0
    assert "5000" in sb.cli("exec", "web-test", "ss", "-ltn").stdout


# -- 5: drivers and busybox ping ----------------------------------------------------------------
def test_tutorial5_busybox_ping_by_name(sb):
    docker(sb, "docker network create user-network")
    assert "user-network" in docker(sb, "docker network ls").stdout
    docker(sb, "docker run -it -d --name container1 --network user-network busybox")
    docker(sb, "docker run -it -d --name container2 --network user-network busybox")
    for src, dst, ip in (("container1", "container2", "172.18.0.3"), ("container2", "container1", "172.18.0.2")):
        p = spawn(sb, f"docker exec {src} ping {dst}")  # runs until Ctrl-C, as typed
        p.expect(rf"64 bytes from {re.escape(ip)}: seq=1 ttl=64")
        assert f"PING {dst} ({ip}): 56 data bytes" in p.before
        p.sendcontrol("c")
        assert finish(p) == 0
        assert f"--- {dst} ping statistics ---" in p.before and " 0% packet loss" in p.before
    # none and host, as the tutorial summarises them
    out = docker(sb, "docker run --rm --network none busybox ip -o link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert "docker0" in docker(sb, "docker run --rm --network host busybox ip -o link").stdout
    r = docker(sb, "docker network rm user-network", ok=False)
    assert r.returncode == 1
    docker(sb, "docker rm -f container1 container2")
    docker(sb, "docker network rm user-network")


# -- Docker's command forms ------------------------------------------------------------------------
def test_management_forms_and_flag_spellings(sb):
    cid = docker(sb, "docker container create --name=later --network=bridge nginx").stdout.strip()
    assert HEX64.match(cid)
    assert docker(sb, "docker container ls -a --format '{{.Names}} {{.Status}}'").stdout == "later Created\n"
    assert docker(sb, "docker container inspect --format '{{.State.Status}}' later").stdout == "created\n"
    assert docker(sb, "docker container start later").stdout == "later\n"
    wait_listening(sb, "later", 80)  # started: the stand-in serves
    assert "<b>later</b>" in docker(sb, "docker container exec later busybox wget -qO- http://127.0.0.1/").stdout
    assert docker(sb, "docker container ps --format '{{.Names}} {{.Image}}'").stdout == "later nginx\n"
    assert "serving HTTP on port 80/tcp" in docker(sb, "docker container logs later").stdout
    assert docker(sb, "docker container port later").returncode == 0
    docker(sb, "docker container rename later sooner")
    assert docker(sb, "docker container restart sooner").stdout == "sooner\n"
    wait_listening(sb, "sooner", 80)
    assert docker(sb, "docker container stop sooner").stdout == "sooner\n"
    assert docker(sb, "docker container ls -a --format '{{.Status}}'").stdout.startswith("Exited (0)")
    assert docker(sb, "docker container rm sooner").stdout == "sooner\n"

    # flag spellings: --net=, --network=, --detach, --interactive, --tty, --rm with -d, -itd
    docker(sb, "docker network create --driver=bridge lab")
    docker(sb, "docker run --detach --interactive --tty --network=lab --name=a1 busybox")
    docker(sb, "docker run -itd --net=lab --name b1 alpine")
    docker(sb, "docker run --rm -d --net lab --name c1 redis")
    docker(sb, "docker run -dit --name d1 --publish 8081:80 httpd")
    assert sorted(docker(sb, "docker ps --format '{{.Names}}'").stdout.split()) == ["a1", "b1", "c1", "d1"]
    assert docker(sb, "docker exec a1 ping -c1 -W2 b1").returncode == 0
    docker(sb, "docker stop c1")
    assert "c1" not in docker(sb, "docker ps -a --format '{{.Names}}'").stdout.split()  # --rm with -d

    # inspect: containers first, then networks; --type chooses
    assert json.loads(docker(sb, "docker inspect a1").stdout)[0]["Name"] == "/a1"
    assert json.loads(docker(sb, "docker inspect lab").stdout)[0]["Name"] == "lab"
    docker(sb, "docker run -d --name lab busybox")  # a container named like the network
    assert json.loads(docker(sb, "docker inspect lab").stdout)[0]["Name"] == "/lab"
    assert json.loads(docker(sb, "docker inspect --type network lab").stdout)[0]["Name"] == "lab"
    assert json.loads(docker(sb, "docker inspect --type=container lab").stdout)[0]["Name"] == "/lab"
    r = docker(sb, "docker inspect --type container my-net", ok=False)
    assert r.returncode == 1 and "No such container: my-net" in r.stderr
    r = docker(sb, "docker inspect nothing", ok=False)
    assert r.returncode == 1 and "No such object: nothing" in r.stderr
    docker(sb, "docker rm -f a1 b1 d1 lab")
    docker(sb, "docker network rm lab")


# -- the stand-ins themselves -------------------------------------------------------------------
def test_standins_are_main_processes_with_real_sockets(sb):
    docker(sb, "docker run -d --name web nginx")
    docker(sb, "docker run -d --name cache redis:7-alpine")
    docker(sb, "docker run -d --name pg postgres")
    docker(sb, "docker run -d --name sql mysql")
    for name, port in (("web", 80), ("cache", 6379), ("pg", 5432), ("sql", 3306)):
        out = wait_listening(sb, name, port)
        assert re.search(rf"LISTEN .*:{port}\s", out)
    # the main process holds the socket, in the container's netns only
    assert not sb.host_run("ss", "-ltnH", "sport = :6379").stdout.strip()
    r = sb.cli("exec", "web", "busybox", "nc", "172.17.0.4", "5432")
    assert r.stdout == "postgres stand-in (nsbridge) in container pg (%s) on port 5432/tcp\n" % (
        docker(sb, "docker inspect --format={{.Id}} pg").stdout.strip()[:12])
    # stop: the server exits 0 as nginx and redis do; start brings it back
    docker(sb, "docker stop web cache")
    st = docker(sb, "docker ps -a --format '{{.Names}} {{.Status}}'").stdout
    assert re.search(r"^web Exited \(0\)", st, re.M) and re.search(r"^cache Exited \(0\)", st, re.M)
    docker(sb, "docker start web")
    wait_listening(sb, "web", 80)
    # rm -f leaves no process behind (the fixture's leak check also looks)
    docker(sb, "docker rm -f web cache pg sql")
    assert sb.processes() == []


def test_unknown_image_idles_with_a_note(sb):
    r = docker(sb, "docker run -d --name app favorites-api")
    assert r.stderr.count("\n") == 1 and "favorites-api" in r.stderr and r.stderr.startswith("WARNING: ")
    assert "Up" in docker(sb, "docker ps --format '{{.Status}}'").stdout
    r = docker(sb, "docker create --name app2 acme/unknown:1.0")
    assert "acme/unknown:1.0" in r.stderr
    # with a command there is nothing to say
    r = docker(sb, "docker run --rm acme/unknown echo hi")
    assert r.stdout == "hi\n" and r.stderr == ""
    # the image's own command needs no host program (there is no `python` here)
    r = docker(sb, "docker run -d --name wa training/webapp python app.py")
    assert r.stderr == ""
    if shutil.which("python", path=PATH) is None:
        r = docker(sb, "docker run -d --name wb training/webapp python other.py", ok=False)
        assert r.returncode == 127 and 'exec: "python": executable file not found in $PATH' in r.stderr
    docker(sb, "docker rm -f app app2 wa")


@pytest.mark.parametrize("flags", ["-it", "-i"])
def test_attached_shell_of_a_distro_image(sb, flags):
    if flags == "-i":
        r = sb.cli("run", "-i", "--rm", "ubuntu", input="echo from $(hostname); exit 4\n")
        assert r.returncode == 4 and r.stdout.startswith("from ")
        return
    p = spawn(sb, "docker run -it --rm ubuntu")
    p.expect(r"root@([0-9a-f]{12}):/# ")
    p.sendline("exit 5")
    assert finish(p) == 5
    assert docker(sb, "docker ps -a -q").stdout == ""
