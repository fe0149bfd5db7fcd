"""`nsbridge compose` on the real kernel: Compose's names and labels on real
objects, convergence that touches only what changed (asserted on the
kernel's bridges and namespaces), a compose file from the wild coming up,
and `down` leaving the host exactly as it found it."""
from __future__ import annotations

import json
import os
import textwrap

from nsbridge.probe import tcp

FILE = """
services:
  web:
    image: nginx
    ports: ["8080:80"]
    networks: [front]
  db:
    image: redis
    networks:
      back: {aliases: [database]}
  app:
    image: alpine
    depends_on: [db, web]
    networks: [front, back]
networks:
  front: {}
  back:
    ipam: {config: [{subnet: 10.77.0.0/24}]}
"""


def write(d, text: str) -> str:
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "compose.yaml")
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def compose(sb, path: str, *args: str, check: bool = True):
    return sb.cli("compose", "-f", path, *args, check=check)


def ids(sb) -> dict[str, str]:
    out = sb.cli("ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}", check=True).stdout.split("\n")
    return dict(line.split() for line in out if line)


def kernel(sb) -> tuple[set[str], set[str], str]:
    """The sandbox host's devices, its namespaces, and its rules (counters aside)."""
    links = {ln.split(": ")[1].split("@")[0] for ln in sb.host_run("ip", "-o", "link").stdout.splitlines()}
    rules = "\n".join(x for x in sb.host_run("iptables-save").stdout.splitlines() if not x.startswith("#") and not x.startswith(":"))
    nat = "\n".join(x for x in sb.host_run("iptables-save", "-t", "nat").stdout.splitlines() if x.startswith("-"))
    return links, set(sb.netns_names()), rules + nat


def test_names_labels_and_dns_aliases_as_compose_gives_them(sb, tmp_path):
    path = write(str(tmp_path / "Demo.Lab"), FILE)
    up = compose(sb, path, "up", "-d")
    assert up.stderr.splitlines() == [
        " \u2714 Network demolab_front  Created", " \u2714 Network demolab_back  Created",
        " \u2714 Container demolab-web-1  Started", " \u2714 Container demolab-db-1  Started",
        " \u2714 Container demolab-app-1  Started",
    ]
    c = json.loads(sb.cli("inspect", "demolab-db-1", check=True).stdout)[0]
    labels = c["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == "demolab" and labels["com.docker.compose.service"] == "db"
    assert labels["com.docker.compose.container-number"] == "1" and labels["com.docker.compose.oneoff"] == "False"
    assert len(labels["com.docker.compose.config-hash"]) == 64
    assert c["NetworkSettings"]["Networks"]["demolab_back"]["DNSNames"][:3] == ["demolab-db-1", "db", "database"]
    n = json.loads(sb.cli("network", "inspect", "demolab_back", check=True).stdout)[0]
    assert n["Labels"]["com.docker.compose.network"] == "back" and n["IPAM"]["Config"][0]["Subnet"] == "10.77.0.0/24"
    assert sb.cli("ps", "-q", "--filter", "label=com.docker.compose.service=web", check=True).stdout.strip()
    # the service name and the alias answer from another service, by the network's resolver
    out = compose(sb, path, "exec", "-T", "app", "ping", "-c1", "database").stdout
    assert "10.77.0." in out
    assert compose(sb, path, "ps", "--services").stdout.split() == ["app", "db", "web"]
    logs = compose(sb, path, "logs", "db").stdout
    assert logs.startswith("db-1  | ") and "6379" in logs
    # published as Compose publishes: the host's 8080
    assert tcp(f"/run/netns/{sb.name}", "127.0.0.1", 8080).ok
    compose(sb, path, "down")


def test_up_converges_only_the_difference_on_the_kernel(sb, tmp_path):
    d = str(tmp_path / "lab")
    path = write(d, FILE)
    compose(sb, path, "up", "-d")
    before = ids(sb)
    bridges = {n: json.loads(sb.cli("network", "inspect", n, check=True).stdout)[0]["Id"] for n in ("lab_front", "lab_back")}

    # an unchanged file: nothing happens, and nothing is locked or entered
    again = compose(sb, path, "up", "-d").stderr
    assert all(x.endswith("Running") for x in again.splitlines())
    assert ids(sb) == before

    # a changed network: it alone is made again, with the project's containers on it
    write(d, FILE.replace("10.77.0.0/24", "10.78.0.0/24"))
    compose(sb, path, "up", "-d")
    after = ids(sb)
    assert after["lab-web-1"] == before["lab-web-1"]
    assert after["lab-db-1"] != before["lab-db-1"] and after["lab-app-1"] != before["lab-app-1"]
    front = json.loads(sb.cli("network", "inspect", "lab_front", check=True).stdout)[0]
    back = json.loads(sb.cli("network", "inspect", "lab_back", check=True).stdout)[0]
    assert front["Id"] == bridges["lab_front"] and back["Id"] != bridges["lab_back"]
    links, _, _ = kernel(sb)
    assert f"br-{bridges['lab_back'][:12]}" not in links and f"br-{back['Id'][:12]}" in links
    addr = sb.host_run("ip", "-4", "-o", "addr", "show", f"br-{back['Id'][:12]}").stdout
    assert "10.78.0.1/24" in addr
    assert "10.78.0." in compose(sb, path, "exec", "-T", "app", "ping", "-c1", "database").stdout

    # a removed service goes, with its namespace
    write(d, FILE.replace("10.77.0.0/24", "10.78.0.0/24").replace("  app:\n    image: alpine\n    depends_on: [db, web]\n    networks: [front, back]\n", ""))
    out = compose(sb, path, "up", "-d").stderr
    assert " \u2714 Container lab-app-1  Removed" in out
    assert "lab-app-1" not in ids(sb) and f"{sb.name}-lab-app-1" not in sb.netns_names()
    assert ids(sb)["lab-web-1"] == before["lab-web-1"]
    compose(sb, path, "down")


def test_dry_run_plans_without_touching_and_down_leaves_the_host_as_it_was(sb, tmp_path):
    path = write(str(tmp_path / "lab"), FILE)
    sb.cli("network", "ls", check=True)  # the host's own objects (default bridge, chains) exist from here
    start = kernel(sb)
    plan = compose(sb, path, "up", "--dry-run").stderr.splitlines()
    assert plan[0] == " \u2714 DRY-RUN MODE -  Network lab_front  Created"
    assert plan[-1] == " \u2714 DRY-RUN MODE -  Container lab-app-1  Started"
    assert kernel(sb) == start and ids(sb) == {}
    compose(sb, path, "up", "-d")
    assert kernel(sb) != start
    down = compose(sb, path, "down").stderr.splitlines()
    assert set(down[-2:]) == {" \u2714 Network lab_front  Removed", " \u2714 Network lab_back  Removed"}
    assert kernel(sb) == start
    assert ids(sb) == {} and "lab_" not in sb.cli("network", "ls", check=True).stdout
    # down by project name alone, with nothing left: says nothing, fails not
    assert sb.cli("compose", "-p", "lab", "down", check=True).stderr == ""


WILD = """
version: "3.9"
services:
  db:
    image: mariadb:11
    command: --default-authentication-plugin=mysql_native_password
    environment:
      MARIADB_ROOT_PASSWORD: example
    volumes: [db-data:/var/lib/mysql]
    healthcheck:
      test: ["CMD", "healthcheck.sh", "--connect"]
    restart: unless-stopped
  api:
    build: ./api
    command: python -m api --port 5000
    depends_on:
      db: {condition: service_healthy}
    environment: [DB_HOST=db]
    ports: ["5000:5000"]
    deploy: {resources: {limits: {memory: 256m}}}
  proxy:
    image: nginx:alpine
    ports: ["8081:80"]
    depends_on: [api]
    volumes: [./nginx.conf:/etc/nginx/nginx.conf:ro]
volumes:
  db-data:
"""


def test_a_compose_file_from_the_wild_comes_up(sb, tmp_path):
    path = write(str(tmp_path / "shop"), WILD)
    up = compose(sb, path, "up", "-d")
    warnings = [x for x in up.stderr.splitlines() if x.startswith("WARNING")]
    for key in ("version", "volumes", "healthcheck", "deploy"):
        assert sum(1 for w in warnings if key in w.split(":")[1]) == 1, (key, warnings)
    assert any("service api: 'python' is not a program on this host" in w for w in warnings), warnings
    ps = {c.split()[0]: c for c in compose(sb, path, "ps").stdout.splitlines()[1:]}
    assert set(ps) == {"shop-db-1", "shop-api-1", "shop-proxy-1"}
    api = json.loads(sb.cli("inspect", "shop-api-1", check=True).stdout)[0]
    assert api["Config"]["Image"] == "shop-api" and api["State"]["Running"]  # build-only: Compose's image name
    db = json.loads(sb.cli("inspect", "shop-db-1", check=True).stdout)[0]
    assert db["Config"]["Cmd"] == ["--default-authentication-plugin=mysql_native_password"]
    assert db["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # the entrypoint's arguments went to the stand-in: mariadb's port answers, by name, from the proxy
    out = compose(sb, path, "exec", "-T", "proxy", "sh", "-c", "busybox nc -w 2 db 3306 </dev/null").stdout
    assert "mariadb" in out
    compose(sb, path, "down")


def test_capabilities_and_mac_addresses_from_the_file(sb, tmp_path):
    path = write(str(tmp_path / "caps"), """
        services:
          admin:
            image: alpine
            cap_add: [NET_ADMIN]
            networks:
              lan: {mac_address: "02:00:00:00:00:0a"}
          plain:
            image: alpine
            networks: [lan]
        networks:
          lan:
            ipam: {config: [{subnet: 10.66.0.0/24, aux_addresses: {router: 10.66.0.2}}]}
        """)
    up = compose(sb, path, "up", "-d")
    assert "WARNING" not in up.stderr
    # a capability given in the file is the container's: it may change its own interfaces
    assert compose(sb, path, "exec", "-T", "admin", "ip", "link", "set", "dev", "lo", "mtu", "60000", check=False).returncode == 0
    assert compose(sb, path, "exec", "-T", "plain", "ip", "link", "set", "dev", "lo", "mtu", "60000", check=False).returncode != 0
    assert json.loads(sb.cli("inspect", "-f", "{{json .HostConfig.CapAdd}}", "caps-admin-1", check=True).stdout) == ["NET_ADMIN"]
    mac = sb.cli("inspect", "-f", "{{.NetworkSettings.Networks.caps_lan.MacAddress}}", "caps-admin-1", check=True).stdout
    assert mac.strip() == "02:00:00:00:00:0a"
    # the auxiliary address is kept out of the pool: plain got .3, not .2
    ip = sb.cli("inspect", "-f", "{{.NetworkSettings.Networks.caps_lan.IPAddress}}", "caps-plain-1", check=True).stdout
    assert ip.strip() not in ("10.66.0.2", "")
    compose(sb, path, "down")
