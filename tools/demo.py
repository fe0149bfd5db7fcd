#!/usr/bin/env python3
"""The tutorials' walkthrough (docs/tutorials.md), typed as a
student would with `nsbridge` in place of `docker`, in a sandbox host that is
removed at the end. Prints each command and what it printed; exits non-zero
if a step did not give what the tutorial shows.

  sudo .venv/bin/python tools/demo.py [--keep]
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__))))

from nsbridge.sandbox import Sandbox  # noqa: E402

FAILED: list[str] = []


def step(sb: Sandbox, line: str, expect: str | None = None, code: int = 0, quiet: bool = False) -> str:
    """Run one `nsbridge ...` line as typed; show it; check what it printed."""
    args = shlex.split(line)[1:]
    print(f"$ {line}")
    p = sb.cli(*args, timeout=60)
    out = p.stdout + p.stderr
    if not quiet:
        sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
    ok = p.returncode == code and (expect is None or expect in out)
    if not ok:
        FAILED.append(f"{line}: exit {p.returncode}, expected {code}" + (f" and {expect!r}" if expect else ""))
        print(f"   !! unexpected: exit {p.returncode}")
    print()
    return p.stdout


def title(text: str) -> None:
    print(f"\n==== {text} ====\n")


def tutorial_1(sb: Sandbox) -> None:
    title("1. user-defined bridge: skynet (containers find each other by name)")
    step(sb, "nsbridge network ls", "bridge")
    step(sb, "nsbridge container run --rm --detach --name hello-dock --publish 8080:80 fhsinchy/hello-dock")
    step(sb, "nsbridge network inspect --format='{{range .Containers}}{{.Name}}{{end}}' bridge", "hello-dock")
    step(sb, "nsbridge network create skynet")
    step(sb, "nsbridge network connect skynet hello-dock")
    step(sb, "nsbridge network inspect --format='{{range .Containers}} {{.Name}} {{end}}' skynet", "hello-dock")
    step(sb, "nsbridge container run -d --network skynet --name alpine-box alpine")
    step(sb, "nsbridge exec alpine-box ping -c 2 hello-dock", "64 bytes from")
    step(sb, "nsbridge network disconnect skynet hello-dock")
    step(sb, "nsbridge exec alpine-box ping -c 1 -W 1 hello-dock", "bad address", code=1)
    step(sb, "nsbridge rm -f alpine-box hello-dock")
    step(sb, "nsbridge network rm skynet", "skynet")


def tutorial_2(sb: Sandbox) -> None:
    title("2. default bridge vs user bridge: web (nginx) and db (redis) on my_bridge")
    step(sb, "nsbridge run -itd --name=web nginx")
    step(sb, "nsbridge network inspect --format '{{json .IPAM.Config}}' bridge", "172.17.0.0/16")
    step(sb, "nsbridge network create my_bridge")
    step(sb, "nsbridge run -d --net=my_bridge --name=db redis")
    step(sb, "nsbridge inspect --format='{{json .NetworkSettings.Networks}}' db", "my_bridge")
    step(sb, "nsbridge exec db ping -c 1 -W 1 172.17.0.2", code=1)
    step(sb, "nsbridge network connect my_bridge web")
    step(sb, "nsbridge inspect --format='{{range .NetworkSettings.Networks}}{{split .IPAddress \",\"}}{{end}}' web", "[172.17.0.2]")
    step(sb, "nsbridge exec db ping -c 2 web", "64 bytes from")
    step(sb, "nsbridge rm -f web db")
    step(sb, "nsbridge network rm my_bridge")


def tutorial_4(sb: Sandbox) -> None:
    title("4. connect / disconnect: eottabom, my-net-test, db-test and web-test")
    step(sb, "nsbridge run -itd --name=eottabom ubuntu")
    step(sb, "nsbridge network inspect bridge", "02:42:ac:11:00:02")
    step(sb, "nsbridge network disconnect bridge eottabom")
    step(sb, "nsbridge network inspect --format '{{json .Containers}}' bridge", "{}")
    step(sb, "nsbridge network create -d bridge my-net-test")
    step(sb, "nsbridge network ls", "my-net-test")
    step(sb, "nsbridge run -d --net=my-net-test --name db-test training/postgres")
    step(sb, "nsbridge inspect my-net-test", '"Name": "db-test"')
    step(sb, "nsbridge run -d --name web-test training/webapp python app.py")
    step(sb, "nsbridge inspect --format='{{json .NetworkSettings.Networks}}' web-test", "172.17.0.")
    web_ip = step(sb, "nsbridge inspect --format='{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web-test").strip()
    step(sb, f"nsbridge container exec db-test ping -c 1 -W 1 {web_ip}", code=1)
    step(sb, "nsbridge network connect my-net-test web-test")
    step(sb, "nsbridge container exec db-test ping -c 2 web-test", "web-test.my-net-test")
    step(sb, "nsbridge rm -f eottabom db-test web-test")
    step(sb, "nsbridge network rm my-net-test")


def tutorial_5(sb: Sandbox) -> None:
    title("5. drivers, and two busybox containers on user-network")
    step(sb, "nsbridge network create user-network")
    step(sb, "nsbridge run -it -d --name container1 --network user-network busybox")
    step(sb, "nsbridge run -it -d --name container2 --network user-network busybox")
    step(sb, "nsbridge exec container1 ping -c 2 container2", "64 bytes from")
    step(sb, "nsbridge exec container2 ping -c 2 container1", "64 bytes from")
    step(sb, "nsbridge run --rm --network none busybox ip -o link", "lo")
    step(sb, "nsbridge rm -f container1 container2")
    step(sb, "nsbridge network rm user-network")


def tutorial_3(sb: Sandbox) -> None:
    title("3. reaching the host (host.docker.internal) and other containers by name")
    server = subprocess.Popen(
        ["ip", "netns", "exec", sb.name, sys.executable, "-m", "http.server", "8080", "--bind", "0.0.0.0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        step(sb, "nsbridge network create favorites-net")
        step(sb, "nsbridge run -d --name mongodb --network favorites-net mongo")
        step(sb, "nsbridge run -d --name favorites --network favorites-net alpine")
        step(sb, "nsbridge exec favorites getent hosts mongodb", "mongodb")
        step(sb, "nsbridge exec favorites getent hosts host.docker.internal", "host.docker.internal")
        step(sb, "nsbridge exec favorites python3 -c \"import urllib.request as u; print(u.urlopen('http://host.docker.internal:8080/', timeout=3).status)\"", "200")
        step(sb, "nsbridge rm -f mongodb favorites")
        step(sb, "nsbridge network rm favorites-net")
    finally:
        server.kill()
        server.wait()


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    sb = Sandbox()
    print(f"nsbridge walkthrough in sandbox host {sb.name} (state root {sb.root}); the machine's own network is untouched")
    try:
        for t in (tutorial_1, tutorial_2, tutorial_3, tutorial_4, tutorial_5):
            t(sb)
        title("what is left")
        step(sb, "nsbridge ps -a")
        step(sb, "nsbridge network ls")
        step(sb, "nsbridge system info")
    finally:
        if not keep:
            leaks = sb.destroy()
            if leaks:
                FAILED.append(f"left behind: {leaks}")
    if FAILED:
        print("demo: these steps did not give what the tutorials show:")
        for f in FAILED:
            print("  - " + f)
        return 1
    print("demo: every step gave what the tutorials show; sandbox removed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
