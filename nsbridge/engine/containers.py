"""Container lifecycle: create, run, start, stop, rm, rename, connect,
disconnect, exec; Docker's states (created, running, exited)."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

from nsbridge import procs
from nsbridge.engine import validate
from nsbridge.engine.endpoints import EndpointOps
from nsbridge.engine.names import random_name
from nsbridge.engine.plan import Plan, checkpoint
from nsbridge.engine.signals import held
from nsbridge.errors import Conflict, Forbidden, InvalidArgument, NotFound, each
from nsbridge.kernel import caps
from nsbridge.model import Container, Endpoint, new_id, now_iso
from nsbridge.record import field, record

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine, Kernel

log = logging.getLogger("nsbridge")


@record
class RunSpec:
    """`run`/`create` options, as given (validated by the engine)."""

    image: str = ""
    cmd: list[str] = field(default_factory=list)
    name: str | None = None
    networks: list[str] = field(default_factory=list)
    ip: str | None = None
    hostname: str | None = None
    aliases: list[str] = field(default_factory=list)
    detach: bool = True
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    env: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    expose: list[str] = field(default_factory=list)
    restart: str = "no"
    mac_address: str | None = None
    #: --cap-add/--cap-drop as given (Docker keeps them so: HostConfig.CapAdd), --privileged
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    labels: dict[str, str] = field(default_factory=dict)


ALIAS_ON_PREDEFINED = "network-scoped aliases are only supported for user-defined networks"


class ContainerOps(EndpointOps):
    # -- create / run -----------------------------------------------------------
    def _validate_spec(self: "Engine", spec: RunSpec) -> validate.NetworkSpec:
        if spec.name is not None:
            validate.container_name(spec.name)
        mode = validate.network_mode(spec.networks)
        if mode.mode == "named":
            spec.networks = list(mode.names)  # the extended forms' settings are in mode.attachments
        if spec.ip is not None:
            from nsbridge.ipam.pools import parse_ip

            parse_ip(spec.ip)
            validate.ip_for(spec.ip, mode)
        validate.run_options(spec)  # hostname, --dns*, --add-host, --link, --restart, --mac-address, aliases
        validate.first_network_flags(spec, mode)
        caps.validate(spec.cap_add, spec.cap_drop)
        if spec.cmd and not self._standin_replaces(spec.image, spec.cmd):
            from nsbridge.engine import process

            process.check_command(spec.cmd, process.spec_path(spec.image, spec.env))
        self._ports_validate(spec)
        return mode

    def validate_spec(self: "Engine", spec: RunSpec) -> None:
        """Check SPEC as `run` would, touching nothing (compose checks a whole file first)."""
        self._validate_spec(spec)

    def create(self: "Engine", spec: RunSpec) -> Container:
        mode = self._validate_spec(spec)
        with self._session():
            c, eps = self._new_container(spec, mode)
            with self.store.tx():
                self.store.put_container(c)
                for ep in eps:
                    self.store.put_endpoint(ep)
            return c

    def run(self: "Engine", spec: RunSpec) -> Container:
        """Create and start in one operation: on failure nothing is left."""
        mode = self._validate_spec(spec)
        with self._session() as k:
            c, eps = self._new_container(spec, mode)
            with Plan("run") as plan:
                # a new container's files (hosts, resolv.conf, stand-in page) go with a failed run
                plan.undos.append(
                    ("container.dir", lambda: shutil.rmtree(self.host.container_dir(c.id), ignore_errors=True))
                )
                self._start(plan, k, c, eps, attach=not spec.detach)
            return c

    def _new_container(self: "Engine", spec: RunSpec, mode: validate.NetworkSpec) -> tuple[Container, list[Endpoint]]:
        from nsbridge import standins
        from nsbridge.engine import process

        name = spec.name
        if name is not None:
            self._check_name_free(name)
        else:
            name = random_name(self.store.name_taken)
        cid = new_id()
        entrypoint, image_cmd = standins.image_config(spec.image)
        c = Container(
            id=cid,
            name=name,
            created=now_iso(),
            image=spec.image,
            cmd=list(spec.cmd),
            hostname=spec.hostname or cid[:12],
            tty=spec.tty,
            interactive=spec.interactive,
            auto_remove=spec.auto_remove,
            env=process.image_env(spec.image, spec.env),
            dns=list(spec.dns),
            dns_search=list(spec.dns_search),
            dns_options=list(spec.dns_options),
            extra_hosts=list(spec.add_hosts),
            links=list(spec.links),
            restart_policy=spec.restart,
            publish_all=spec.publish_all,
            exposed=list(spec.expose),
            mac_address=spec.mac_address or "",
            entrypoint=entrypoint,
            image_cmd=image_cmd,
            cap_add=list(spec.cap_add),
            cap_drop=list(spec.cap_drop),
            privileged=spec.privileged,
            labels=dict(spec.labels),
        )
        eps: list[Endpoint] = []
        if spec.aliases and (mode.mode != "named" or self.network(mode.names[0]).predefined):
            raise InvalidArgument(ALIAS_ON_PREDEFINED)  # a predefined network named by its ID
        if spec.mac_address and mode.mode in ("host", "container"):
            raise InvalidArgument("conflicting options: mac-address and the network mode")
        for ref in spec.links:
            target = validate.link(ref)[0]
            if self.store.find_container(target) is None:
                raise NotFound(f"could not get container for {target}: No such container: {target}")
        if mode.mode == "container":
            other = self.container(mode.container)
            if not other.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            c.network_mode = f"container:{other.id}"
            if spec.hostname:
                raise InvalidArgument("conflicting options: hostname and the network mode")
            c.hostname = other.hostname
        elif mode.mode in ("host", "none"):
            c.network_mode = mode.mode
            if spec.ip:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if mode.mode == "none":
                eps.append(Endpoint(cid, self.network("none").id, 0))
        else:
            c.network_mode = "default" if mode.mode == "default" else mode.names[0]
            for i, ref in enumerate(mode.names):
                net = self.network(ref)
                if net.driver == "host":
                    raise InvalidArgument("container cannot be disconnected from host network or connected to host network")
                if net.driver == "null":
                    raise InvalidArgument(
                        "container cannot be connected to multiple networks with one of the networks in private (none) mode"
                    )
                att = mode.attachments.get(ref) or validate.Attachment(ref)
                ip = att.ip or (spec.ip if i == 0 else None)
                if ip and net.is_default_bridge:
                    raise InvalidArgument("user specified IP address is supported on user defined networks only")
                if att.aliases and net.predefined:
                    raise InvalidArgument(ALIAS_ON_PREDEFINED)  # a predefined network named by its ID
                aliases = [*spec.aliases, *att.aliases] if not net.is_default_bridge else []
                mac = att.mac or (spec.mac_address if i == 0 else None)
                if mac:
                    c.endpoint_macs[net.id] = mac
                if att.sysctls:
                    c.endpoint_sysctls[net.id] = list(att.sysctls)
                eps.append(Endpoint(cid, net.id, i, ip_requested=ip, aliases=aliases))
            if spec.links and not all(self.network(r).is_default_bridge for r in mode.names[:1]):
                raise InvalidArgument("links are only supported for containers on the default bridge network")
        self._ports_prepare(spec, c)
        return c, eps

    # -- start / stop -------------------------------------------------------------
    def _start(self: "Engine", plan: Plan, k: "Kernel", c: Container, eps: list[Endpoint], attach: bool) -> None:
        """Bring the container up and record it running (one transaction).
        With attach, the caller waits for the command (`wait`)."""
        from nsbridge.engine import process

        live = self._bring_up(plan, k, c, eps)
        plan.step("container.files", lambda: self._write_files(c, live))
        self._ports_setup(plan, k, c, live)
        c.state = "running"
        c.stopped_by_user = False
        c.started_at = now_iso()
        c.exit_code = 0
        d = self.host.container_dir(c.id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(d, "exitcode"))
        cmd = self._command(c)
        self._attached = None
        if cmd:
            entry = self._entry(c)
            if attach:
                p = plan.step("container.process", lambda: process.spawn_attached(entry, c, cmd))
            else:
                p = plan.step(
                    "container.process",
                    lambda: process.spawn_detached(entry, c, cmd, os.path.join(d, "log"), os.path.join(d, "exitcode")),
                )
            plan.undos.append(("container.process", lambda: (p.kill(), p.wait())))
            c.pid = p.pid
            c.pid_start = procs.start_time(p.pid)
            self._attached = p if attach else None
        else:
            c.pid, c.pid_start = 0, 0
        live_keys = {(e.container_id, e.network_id) for e in live}

        def record() -> None:
            with self.store.tx():
                self.store.put_container(c)
                for ep in eps:
                    if (ep.container_id, ep.network_id) not in live_keys:
                        ep.ip = None
                    self.store.put_endpoint(ep)

        plan.commit("container.record", record)  # recorded: from here on it exists
        self._dns_handover(c)

    def _command(self: "Engine", c: Container) -> list[str]:
        """The main process's command: the user's, or the image's stand-in
        (engine/standins.py); [] to idle."""
        return self._standin_command(c)

    def wait(self: "Engine", c: Container) -> int:
        """For an attached `run`: wait for the command, then record its exit."""
        from nsbridge.engine import process

        p = self._attached
        code = process.wait_foreground(p) if p is not None else 0
        # Recorded where the reaper of the next session looks, or it would
        # find the process gone first and record 0 (`run -it ... exit 3`).
        with contextlib.suppress(OSError), open(os.path.join(self.host.container_dir(c.id), "exitcode"), "w") as f:
            f.write(f"{code}\n")
        self._on_exit(c.id, code)
        return code

    def _on_exit(self: "Engine", cid: str, code: int) -> None:
        with self._session() as k:
            c = self.store.find_container(cid)
            if c is None:
                return
            if c.running:
                self._release(k, c, code)
            if c.auto_remove:
                self._delete(k, c)

    def start(self: "Engine", ref: str) -> Container:
        with self._session() as k:
            c = self.container(ref)
            if c.running:
                return c
            if c.network_mode.startswith("container:"):
                other = self.store.find_container(c.network_mode.split(":", 1)[1])
                if other is None or not other.running:
                    raise Conflict(f"cannot join network of a non running container: {c.network_mode[10:]}")
            eps = self.store.endpoints_of(c.id)
            for ep in eps:
                self.store.network(ep.network_id)  # NotFound if it was removed
            with Plan("start") as plan:
                self._start(plan, k, c, eps, attach=False)
            return c

    def stop(self: "Engine", ref: str, timeout: float = 10) -> Container:
        with self._session() as k:
            c = self.container(ref)
            c.stopped_by_user = True
            if c.running:
                if c.pid:
                    procs.terminate(c.pid, c.pid_start, timeout)
                self._release(k, c, self._exit_code(c, default=137 if c.pid else 0))
                if c.auto_remove:
                    self._delete(k, c)
            return c

    def restart(self: "Engine", ref: str, timeout: float = 10) -> Container:
        self.stop(ref, timeout)
        return self.start(ref)

    def _release(self: "Engine", k: "Kernel", c: Container, code: int) -> None:
        """Running -> exited: processes gone, endpoints released (no address,
        no DNS answer); name, ID, config and files stay."""
        owner = self._dns_owner(self.store.endpoints_of(c.id))
        self._release_kernel(k, c)
        # containers sharing this one's netns lose their network too
        for other in self.store.sharing_netns_of(c.id):
            if other.running:
                if other.pid:
                    procs.terminate(other.pid, other.pid_start, 0)
                self._mark_exited(other, 137)
        self._mark_exited(c, code)
        if owner is not None:
            self._dns_drop(c, owner.network_id)

    def _mark_exited(self: "Engine", c: Container, code: int) -> None:
        c.state = "exited"
        c.exit_code = code
        c.finished_at = now_iso()
        c.pid, c.pid_start = 0, 0
        c.netns = ""
        with self.store.tx():
            self.store.put_container(c)
            for ep in self.store.endpoints_of(c.id):
                ep.ip, ep.endpoint_id, ep.ifname, ep.host_ifname = None, "", "", ""
                self.store.put_endpoint(ep)

    def _reap(self: "Engine", k: "Kernel", full: bool = False) -> None:
        """Record containers whose command exited as exited, releasing their
        endpoints. FULL also checks every running container's netns (gone
        after a reboot); otherwise only containers with a process are read."""
        from nsbridge.kernel import ns

        if full:
            candidates = [c for c in self.store.containers() if c.running]
        else:
            ids = [cid for cid, pid, start in self.store.running_processes() if not procs.alive(pid, start)]
            candidates = [self.store.container(cid) for cid in ids]
        for c in candidates:
            dead = bool(c.pid) and not procs.alive(c.pid, c.pid_start)
            gone = bool(c.netns) and not ns.netns_exists(c.netns)
            if dead or gone:
                self._release(k, c, self._exit_code(c, default=0 if dead else 137))
                if c.auto_remove:
                    self._delete(k, c)

    # -- remove / rename ------------------------------------------------------------
    def rm(self: "Engine", refs: list[str], force: bool = False) -> list[str]:
        with self._session() as k:
            return each(refs, lambda ref: self._rm_one(k, self.container(ref), force))

    def _rm_one(self: "Engine", k: "Kernel", c: Container, force: bool) -> None:
        if c.running and not force:
            raise Forbidden(
                f"You cannot remove a running container {c.id}. "
                "Stop the container before attempting removal or force remove"
            )
        with held():  # a teardown is finished, not interrupted
            if c.running:
                if c.pid:
                    procs.terminate(c.pid, c.pid_start, 0)
                    checkpoint("container.kill")
                self._release(k, c, 137)
            self._delete(k, c)

    def _delete(self: "Engine", k: "Kernel", c: Container) -> None:
        with self.store.tx():
            self.store.delete_container(c.id)
        checkpoint("container.forget")
        shutil.rmtree(self.host.container_dir(c.id), ignore_errors=True)

    def _check_name_free(self: "Engine", name: str, context: str = "") -> None:
        """Docker's Conflict error when a container already has NAME."""
        try:
            other = self.store.find_container(name)
        except InvalidArgument:  # a hex name that is an ambiguous ID prefix: not a name in use
            other = None
        if other is not None and other.name == name:
            raise Conflict(
                f'{context}Conflict. The container name "/{name}" is already in use by container "{other.id}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            )

    def rename(self: "Engine", ref: str, new: str) -> None:
        validate.container_name(new)
        with self._session():
            c = self.container(ref)
            self._check_name_free(new, "Error when allocating new name: ")
            if c.netns:
                from nsbridge.kernel import ns

                newns = self.host.ctr_netns_name(new)
                from nsbridge.engine import owner

                owner.refuse_taken(newns, self.host.engine_id)
                self.lock.note(f"netns {newns}")
                self.lock.note(f"netns {c.netns}")
                ns.rename_netns(c.netns, newns)
                c.netns = newns
            c.name = new
            with self.store.tx():
                self.store.put_container(c)

    # -- connect / disconnect ----------------------------------------------------------
    def connect(self: "Engine", net_ref: str, ctr_ref: str, ip: str | None = None, aliases: list[str] | None = None,
                links: list[str] | None = None) -> None:
        """`network connect [--ip] [--alias]... [--link NAME:ALIAS]...`. A link on a
        user network is a name for this container only: its resolver answers ALIAS
        with NAME's address there (Docker's endpoint alias); NAME need not exist yet."""
        if ip is not None:
            from nsbridge.ipam.pools import parse_ip

            parse_ip(ip)
        links = [":".join(validate.link(v)) for v in links or []]
        with self._session() as k:
            net = self.network(net_ref)
            c = self.container(ctr_ref)
            if net.driver == "host" or c.network_mode == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            if net.driver == "null" or c.network_mode == "none":
                raise Forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode"
                )
            if c.network_mode.startswith("container:"):
                raise Forbidden("container sharing network namespace with another container cannot be connected to a network")
            # the endpoint settings first, as Docker's daemon validates them before it makes the endpoint
            if ip and net.is_default_bridge:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if aliases and net.is_default_bridge:
                raise InvalidArgument(ALIAS_ON_PREDEFINED)
            if links and net.is_default_bridge:
                raise InvalidArgument("links are only supported for user-defined networks")
            eps = self.store.endpoints_of(c.id)
            if any(e.network_id == net.id for e in eps):
                raise Conflict(f"endpoint with name {c.name} already exists in network {net.name}")
            if links:
                c.net_links[net.id] = links
            pos = max((e.position for e in eps), default=-1) + 1
            ep = Endpoint(c.id, net.id, pos, ip_requested=ip, aliases=list(aliases or []) if not net.is_default_bridge else [])
            if c.running:
                with Plan("connect") as plan:
                    self._attach_one(plan, k, c, ep, net)
                    live = [e for e in eps if e.ip] + [ep]
                    plan.step("container.files", lambda: self._write_files(c, live))
                    plan.commit("endpoint.record", lambda: self._put_endpoint(ep, c if links else None))
                self._dns_follow(c, self._dns_owner(eps), live)
            else:
                if ip:
                    from nsbridge.ipam import allocator

                    assert net.ipam is not None
                    allocator.check_requested(net.ipam.subnet, net.ipam.gateway, ip, self._taken_ips(net))
                self._put_endpoint(ep, c if links else None)

    def _put_endpoint(self: "Engine", ep: Endpoint, c: Container | None = None) -> None:
        """The endpoint (and the container, when its links changed) in one transaction."""
        with self.store.tx():
            self.store.put_endpoint(ep)
            if c is not None:
                self.store.put_container(c)

    def disconnect(self: "Engine", net_ref: str, ctr_ref: str, force: bool = False) -> None:
        with self._session() as k:
            net = self.network(net_ref)
            c = self.store.find_container(ctr_ref)
            if c is None:
                raise NotFound(f"No such container: {ctr_ref}")
            if net.driver == "host" or c.network_mode == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            ep = next((e for e in self.store.endpoints_of(c.id) if e.network_id == net.id), None)
            if ep is None:
                raise Conflict(f"container {c.id} is not connected to network {net.name}")
            before = self._dns_owner(self.store.endpoints_of(c.id)) if c.running else None
            if c.running and ep.ip and c.netns:
                self._detach_one(k, c, ep)
                checkpoint("endpoint.remove")
                self._ports_teardown_endpoint(k, c, ep)
            with self.store.tx():
                self.store.delete_endpoint(c.id, net.id)
                if c.forget_network(net.id):
                    self.store.put_container(c)
            if c.running:
                live = [e for e in self.store.endpoints_of(c.id) if e.ip]
                self._write_files(c, live)
                self._dns_follow(c, before, live)

    # -- exec ------------------------------------------------------------------------------
    def exec(self: "Engine", ref: str, cmd: list[str], env: list[str] | None = None, timeout: float | None = 30,
             input: bytes | None = None, privileged: bool = False) -> subprocess.CompletedProcess:
        """Run CMD in the container and wait: the library's `exec` (PRIVILEGED:
        every capability for this command, as `exec --privileged`)."""
        from nsbridge.engine import process

        c, entry = self.exec_entry(ref)
        if privileged:
            entry.caps = None
        return process.run_inside(entry, c, cmd, env, input=input, timeout=timeout)
