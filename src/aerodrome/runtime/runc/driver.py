"""RuncRuntime: the host's machines as runc containers over overlay rootfs, each in its own netns while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal as signals
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from aerodrome.core import (
    ContainerStatus,
    ExecResult,
    ExitCallback,
    ExitInfo,
    FailedPreconditionError,
    ImageInfo,
    NotFoundError,
    OutputChunk,
    OutputCursor,
    ProcessInfo,
    PullGrant,
    SandboxInfo,
    SandboxSpec,
    SandboxStatus,
    fault_point,
)
from aerodrome.runtime.process import ToolError, map_runtime_errors
from aerodrome.runtime.runc import (
    bundle,
    containers,
    exits,
    firewall,
    guestfs,
    instance,
    netpool,
    output,
    peers,
    procfs,
)
from aerodrome.runtime.runc.cgroups import MachineCgroup
from aerodrome.runtime.runc.egress import Egress, check_allow, check_uplink
from aerodrome.runtime.runc.layout import (
    RECORD_ERRORS,
    Layout,
    MachinePaths,
    fsync_dir,
    load_key,
    read_json,
    set_aside,
    spec_from_json,
    spec_to_json,
    write_json,
)
from aerodrome.runtime.runc.network import (
    DEFAULT_ORG_PREFIXLEN,
    AddressPool,
    Allocation,
    delete_network,
    org_prefix6,
)
from aerodrome.runtime.runc.peers import Peer, check_peers
from aerodrome.runtime.runc.pod import Pod, exec_process
from aerodrome.runtime.runc.runc import Runc
from aerodrome.runtime.runc.scratch import DEFAULT_RESERVE_BYTES, ImagePool
from aerodrome.runtime.runc.source import ImageSource
from aerodrome.runtime.runc.supervisor import Supervisor, become_subreaper, process_start_time, reap_exited
from aerodrome.runtime.runc.userns import IDS_PER_MACHINE, IdAllocator, IdRange, kill_stale_holder

log = logging.getLogger(__name__)

STOP_KILL_GRACE = 10.0  # how long to wait for a SIGKILLed machine to be gone


StartHook = Callable[[str, Path], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HostServices:
    """The host's services for machines: at `addresses` (on the host side of every veth), the `ports`
    ("udp/53", "tcp/4280") open to machines; the first addresses are the machines' resolvers."""

    addresses: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()


@dataclass
class _Running:
    pid: int
    exited: asyncio.Future[ExitInfo]
    killed: bool = False
    containers_ended: int | None = None  # the exit status to record once every container has ended for good


@dataclass
class _Machine:
    spec: SandboxSpec
    lower: str  # the image rootfs
    network: Allocation
    ids: IdRange  # the host ids its user namespace maps
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RuncRuntime:
    """The `aerodrome.core.Runtime` of one Linux host, with runc. Construct it inside the running event loop."""

    def __init__(
        self,
        root: Path,
        images: ImageSource,
        *,
        ipv4_pool: str = "172.30.0.0/16",
        org_prefixlen: int = DEFAULT_ORG_PREFIXLEN,
        egress: bool = True,
        egress_allow: Sequence[str] = (),
        uplink: str | None = None,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
        compat_32bit: bool = False,
        services: HostServices | None = None,
        netns_pool: int = netpool.DEFAULT_SIZE,
        peers: Sequence[Peer] = (),
    ) -> None:
        """`egress`: machines may open connections out of the host, through `uplink` (default: the interface
        of the default route), masqueraded, to anything but link-local, loopback, private (RFC 1918, CGNAT, ULA),
        multicast and reserved addresses; `egress_allow` opens IPv4 networks among those (a LAN service), with
        egress on or off. Machines never reach the host's own addresses nor another organisation's machines.
        Each organisation gets an `org_prefixlen` subnet of `ipv4_pool`. Bad values are InvalidArgumentErrors.
        `services`: what of the host machines do reach (its resolver, the API), at addresses on every veth.
        `netns_pool`: prepared netns and veth pairs kept for each organisation starting machines (0: none).
        `peers`: the other hosts of the private network across hosts (peers.py), each with a pool of its own."""
        self.layout = Layout(root)
        self.images = images
        self.ipv4_pool = ipv4_pool
        self.pool = AddressPool(self.layout.orgs, ipv4_pool, org_prefixlen, quarantine=self.layout.quarantine)
        check_peers(ipv4_pool, peers)
        self.peers = tuple(peers)
        self.egress = egress
        self.egress_allow = check_allow(egress_allow, ipv4_pool)
        self.uplink = check_uplink(uplink)
        self.reserve = reserve_bytes
        self.compat_32bit = compat_32bit
        self.services = services or HostServices()
        self._start_hooks: list[StartHook] = []
        self.scratch_pool = ImagePool(self.layout.root / "scratch-pool")
        self.runc = Runc(self.layout.runc_root)
        self.ids = IdAllocator()
        self._key = load_key(self.layout.records_key)
        self._machines: dict[str, _Machine] = {}
        #: Machines whose record did not read (set aside): FAILED until re-created or destroyed.
        self._failed: set[str] = set()
        self._running: dict[str, _Running] = {}
        self._pods: dict[str, Pod] = {}  # the running multi-container machines' containers
        self._callbacks: list[ExitCallback] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._host_ready = False
        self._orgs = asyncio.Lock()  # an organisation's subnet and rules come and go under it
        become_subreaper()
        self.supervisor = Supervisor(self._process_exited)
        self._load_records()
        self.netpool = netpool.NetPool(self.layout.root / "netpool", self.services.addresses, size=netns_pool)
        self.netpool.clear_dead()

    # -- lifecycle of the runtime itself ------------------------------------------------------------------

    def _load_records(self) -> None:
        """Read every machine's record. One that does not read is set aside and its machine FAILED: the daemon
        starts without it rather than not at all (the control plane has the machine's config, and re-creates it)."""
        for machine_id in self.layout.machine_ids():
            paths = self.layout.machine(machine_id)
            try:
                record = read_json(paths.record)
                allocation = instance.recorded_network(paths, record)
                loaded = None if record is None or allocation is None else _read_record(record, self._key)
                if loaded is not None and loaded[2] is not None and not self._is_id_slot(loaded[2]):
                    raise ValueError(f"uid_base {loaded[2]} is not a slot of this host's user-id range")
            except RECORD_ERRORS as error:
                set_aside(self.layout.quarantine, machine_id, paths.record, error, then="the machine is failed")
                self._failed.add(machine_id)
                continue
            if allocation is not None:
                self.pool.adopt(allocation)
            if loaded is not None and allocation is not None:
                spec, lower, uid_base = loaded
                ids = IdRange(uid_base) if uid_base is not None else self.ids.allocate(machine_id)
                self.ids.adopt(machine_id, ids)
                self._machines[machine_id] = _Machine(spec, lower, allocation, ids)
        self.pool.rebuilt()  # when orgs.json was unreadable: its slots are those the machines' records name

    def _is_id_slot(self, base: int) -> bool:
        offset = base - self.ids.start
        return offset % IDS_PER_MACHINE == 0 and 0 <= offset // IDS_PER_MACHINE < self.ids.slots

    async def prepare_host(self) -> None:
        """Set up the host's machine networking now rather than at the first create, start or recover; a
        FailedPreconditionError says why this host cannot take it (a route of its own in the machine pool)."""
        await self._ensure_host()

    async def _ensure_host(self) -> None:
        if self._host_ready:
            return
        async with self._orgs:
            with map_runtime_errors("configure host networking"):
                if self.pool.replaced_pool is not None:  # a pool this host used before, with nothing left in it
                    await firewall.uninstall(self.pool.replaced_pool)
                    self.pool.record()
                await self._release_empty_orgs()
                subnets = [self.pool.subnet_of(slot) for slot in self.pool.slots.values()]
                orgs6 = [str(org_prefix6(org)) for org in self.pool.slots]
                await firewall.install(self.ipv4_pool, subnets, orgs6, await self._egress())
                await self._join_peers()
                await firewall.open_services(self.services.addresses, self.services.ports)
        self._host_ready = True

    async def _join_peers(self) -> None:
        """Route the known organisations' machines on the other hosts there (peers.py)."""
        if self.peers:
            await peers.open_underlay(self.peers)
            await peers.route_orgs(self.pool.slots, self.peers)

    async def _egress(self) -> Egress:
        if not self.egress and not self.egress_allow:
            return Egress()
        uplink = self.uplink or await firewall.default_uplink()
        return Egress(uplink, public=self.egress, allow=self.egress_allow)

    async def _release_empty_orgs(self) -> None:
        """Give back the subnets, and remove the rules, of organisations with no machine left here."""
        for org in self.pool.empty_orgs():
            await self.netpool.drop(org)  # its slots carry the subnet's gateways
            await firewall.forget_org(*self.pool.release_org(org))
            await peers.unroute_orgs([org], self.peers)

    def on_start(self, hook: StartHook) -> None:
        """Register a coroutine called before every start with the machine's id and where its /.fly/api socket
        goes (the hook listens there: the machine sees the socket from its first instruction)."""
        self._start_hooks.append(hook)

    def on_exit(self, callback: ExitCallback) -> None:
        """Register the coroutine called once for every exit of a machine's main process."""
        self._callbacks.append(callback)

    async def close(self) -> None:
        """Stop watching; machines keep running and are re-adopted by `recover` in the next daemon. With no
        machine left on the host, its rules and routes go too (the next start makes them again)."""
        await self.supervisor.close()
        await self.scratch_pool.close()
        await self.netpool.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._running.clear()
        if self._host_ready:  # the services go with the daemon that serves them; machines keep their addresses
            with map_runtime_errors("close host services"):
                await firewall.close_services(self.services.addresses, self.services.ports)
        if self._host_ready and not self.layout.machine_ids():
            async with self._orgs:
                with map_runtime_errors("remove host networking"):
                    await self._release_empty_orgs()
                    await peers.close_underlay(self.peers)
                    await firewall.uninstall(self.ipv4_pool)
            self._host_ready = False
        with contextlib.suppress(OSError):  # left while any machine still has its mount points there
            self.layout.mounts.rmdir()

    # -- images and sandboxes -----------------------------------------------------------------------------

    async def pull_image(self, reference: str, grant: PullGrant | None = None) -> ImageInfo:
        """Pull (if not cached) and unpack an image, from the embedded registry's repositories `grant` covers."""
        return await self.images.pull(reference, grant=grant)

    async def create(self, spec: SandboxSpec) -> SandboxInfo:
        """Record a machine and its addresses; re-creating a stopped machine replaces its config.

        The addresses are allocated and persisted here (private_ip is known and stable from create on), but the
        netns and veth pair are built only by `start`, and the OCI bundle too: a created machine costs one
        directory and one record, so thousands of them can be created quickly and wait cheaply.
        """
        for guest_file in spec.files:
            guestfs.check_guest_path(guest_file.guest_path)
        image = self.images.get(spec.image_digest)
        if image is None:
            raise NotFoundError(f"image {spec.image_digest} is not on this host")
        await self._ensure_host()
        paths = self.layout.machine(spec.machine_id)
        existing = self._machines.get(spec.machine_id)
        if existing is None and paths.dir.exists():  # an earlier create failed half-way, or its record was unreadable
            await instance.remove(self.runc, self.pool, spec.machine_id, paths)
            self._failed.discard(spec.machine_id)
        async with existing.lock if existing else contextlib.nullcontext():
            if spec.machine_id in self._running:
                raise FailedPreconditionError(f"machine {spec.machine_id} is running; stop it before re-creating it")
            with map_runtime_errors(f"create machine {spec.machine_id}"):
                ids = existing.ids if existing else self.ids.allocate(spec.machine_id)
                try:
                    allocation = await self._allocate(spec, paths, existing)
                    fault_point("runtime.create.network_allocated")
                except BaseException:
                    if existing is None:  # a refused create leaves no directory (nor, with it, a machine) behind
                        self.ids.release(spec.machine_id, ids)
                        await asyncio.to_thread(shutil.rmtree, paths.dir, True)
                    raise
                spec = dataclasses.replace(spec, env={**spec.env, **bundle.network_env(allocation.ipv6)})
                machine = _Machine(spec, image.rootfs, allocation, ids)
                try:
                    # Refuse an unknown user, or an image start could not write its files into, now: not at start.
                    system = bundle.system_files(spec, allocation.ipv4, allocation.ipv6, self.services.addresses)
                    files = (*system, *spec.files)
                    await asyncio.to_thread(guestfs.check_image, Path(image.rootfs), spec, files)
                    # Off the event loop: its fsyncs take milliseconds, which concurrent creates then share.
                    await asyncio.to_thread(_write_record, paths, machine, self._key, new=existing is None)
                except BaseException:
                    if existing is None or allocation is not existing.network:
                        self.pool.release(allocation)  # nothing recorded holds it
                    if existing is None:
                        self.ids.release(spec.machine_id, ids)
                        await asyncio.to_thread(shutil.rmtree, paths.dir, True)
                    raise
            if existing is not None:
                machine.lock = existing.lock
            self._machines[spec.machine_id] = machine
        return SandboxInfo(private_ip=allocation.ipv6, private_ipv4=allocation.ipv4)

    async def _allocate(self, spec: SandboxSpec, paths: MachinePaths, existing: _Machine | None) -> Allocation:
        if existing is not None and existing.network.org == spec.org_network_id:
            return existing.network
        if existing is not None:
            await delete_network(existing.network)
            self.pool.release(existing.network)
        paths.dir.mkdir(exist_ok=True)
        async with self._orgs:
            new_org = spec.org_network_id not in self.pool.slots
            allocation = self.pool.allocate(spec.machine_id, spec.org_network_id)
            if new_org:
                try:
                    await firewall.allow_org(allocation.subnet4, allocation.subnet6)
                except ToolError:
                    # Another runtime on this host removed the shared chains while this one had no machine:
                    # put the host's set-up back, then the organisation's rules.
                    self._host_ready = False
                    await self._ensure_host()
                    await firewall.allow_org(allocation.subnet4, allocation.subnet6)
                await peers.route_orgs([allocation.org], self.peers)
        return allocation

    def _machine(self, machine_id: str) -> _Machine:
        machine = self._machines.get(machine_id)
        if machine is None:
            if machine_id in self._failed:
                raise FailedPreconditionError(
                    f"machine {machine_id}'s record on this host was unreadable (set aside); create it again"
                )
            raise NotFoundError(f"machine {machine_id} not found on this host")
        return machine

    def _live(self, machine_id: str) -> _Running:
        running = self._running.get(machine_id)
        if running is None:
            raise FailedPreconditionError(f"machine {machine_id} is not running")
        return running

    # -- start and stop -----------------------------------------------------------------------------------

    async def start(self, machine_id: str) -> None:
        """Build the network, mount a fresh rootfs, write the files, and launch the machine under catatonit."""
        machine = self._machine(machine_id)
        paths = self.layout.machine(machine_id)
        async with machine.lock:
            if machine_id in self._running:
                raise FailedPreconditionError(f"machine {machine_id} is already running")
            await self._ensure_host()
            with map_runtime_errors(f"start machine {machine_id}"):
                uid, gid = await asyncio.to_thread(guestfs.resolve_user, Path(machine.lower), machine.spec.user)
                fly_dir = await self._prepare_fly_dir(machine_id, paths)
                run = instance.Run(
                    machine.spec,
                    machine.lower,
                    machine.network,
                    machine.ids,
                    uid,
                    gid,
                    self.reserve,
                    self.compat_32bit,
                    self.scratch_pool,
                    self.services.addresses,
                    fly_dir,
                    containers.image_rootfs(self.images, machine.spec),
                    netpool=self.netpool,
                )
                pid, start_time = await instance.launch(self.runc, paths, run)
            self._running[machine_id] = _Running(pid, asyncio.get_running_loop().create_future())
            self.supervisor.watch(machine_id, pid, start_time, paths.log)
            if machine.spec.containers:
                self._pod(machine_id, paths, machine).start()

    def _pod(self, machine_id: str, paths: MachinePaths, machine: _Machine) -> Pod:
        def ended(code: int) -> None:  # every container ended for good: the machine stops, as on Fly
            running = self._running.get(machine_id)
            if running is not None and running.containers_ended is None:
                running.containers_ended = code
                with contextlib.suppress(ProcessLookupError):
                    os.kill(running.pid, signals.SIGKILL)  # only the placeholder is left, holding nothing

        pod = Pod(self.runc, machine_id, paths, machine.spec, machine.network.ipv4, ended)
        self._pods[machine_id] = pod
        return pod

    def container_statuses(self, machine_id: str) -> tuple[ContainerStatus, ...]:
        """The containers of a running multi-container machine, as the daemon supervises them."""
        pod = self._pods.get(machine_id)
        return pod.statuses() if pod else ()

    async def _close_pod(self, machine_id: str) -> None:
        pod = self._pods.pop(machine_id, None)
        if pod is not None:
            await pod.close()

    async def _prepare_fly_dir(self, machine_id: str, paths: MachinePaths) -> Path | None:
        """The machine's /.fly, with its API socket listening, when a hook serves it."""
        if not self._start_hooks:
            return None
        paths.fly.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(paths.fly, 0o755)
        for hook in self._start_hooks:
            await hook(machine_id, paths.fly / "api")
        return paths.fly

    async def stop(self, machine_id: str, signal: int, timeout: float) -> ExitInfo:
        """Send `signal` (catatonit forwards it to the program), SIGKILL after `timeout`; wait until it is gone."""
        machine = self._machine(machine_id)
        running = self._running.get(machine_id)
        if running is None:
            recorded = exits.last_exit(self.layout.machine(machine_id))
            if recorded is None:
                raise FailedPreconditionError(f"machine {machine_id} has not been started")
            return recorded[0]
        async with machine.lock:
            self.layout.machine(machine_id).stop_requested.touch()
            cgroup = MachineCgroup(machine_id)
            if cgroup.freezer_state() != "THAWED":
                await cgroup.thaw()  # a frozen process cannot act on a signal
            if machine_id in self._pods:  # each container its own signal first; the machine's init ends the rest
                await self._pods[machine_id].stop(timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signal)
            fault_point("runtime.stop.signalled")
            try:
                return await asyncio.wait_for(asyncio.shield(running.exited), timeout)
            except TimeoutError:
                return await self._kill(machine_id, running)

    async def _kill(self, machine_id: str, running: _Running) -> ExitInfo:
        running.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.pid, signals.SIGKILL)  # init dies, and the kernel kills its whole PID namespace
        return await asyncio.wait_for(asyncio.shield(running.exited), STOP_KILL_GRACE)

    def _process_exited(self, machine_id: str, code: int | None) -> None:
        task = asyncio.get_running_loop().create_task(self._finish_exit(machine_id, code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_exit(self, machine_id: str, code: int | None) -> None:
        """Record how the machine ended, tear its run down, then report the exit."""
        paths = self.layout.machine(machine_id)
        running = self._running.get(machine_id)
        if running is not None and running.containers_ended is not None:
            code = running.containers_ended  # not the placeholder's SIGKILL: the machine ended as its containers did
        info = exits.read_exit(
            paths,
            code,
            oom_kills=MachineCgroup(machine_id).oom_kills(),
            killed=running is not None and running.killed,
            now=time.time(),
        )
        await asyncio.to_thread(exits.record_exit, paths, info, reported=False)  # durable: off the event loop
        fault_point("runtime.exit.recorded")
        await self._close_pod(machine_id)
        try:
            machine = self._machines.get(machine_id)
            await instance.teardown(self.runc, machine_id, paths, machine.network if machine else None)
        finally:
            self._running.pop(machine_id, None)
            if running is not None and not running.exited.done():
                running.exited.set_result(info)
        fault_point("runtime.exit.torn_down")
        await self._report(machine_id, paths, info)

    async def _report(self, machine_id: str, paths: MachinePaths, info: ExitInfo) -> None:
        for callback in self._callbacks:
            try:
                await callback(machine_id, info)
            except Exception:
                log.exception("exit callback failed for machine %s", machine_id)
        exits.record_exit(paths, info, reported=True)

    # -- the running machine ------------------------------------------------------------------------------

    async def suspend(self, machine_id: str) -> None:
        """Freeze every process of the machine through the cgroup freezer; memory stays resident."""
        self._live(machine_id)
        with map_runtime_errors(f"suspend machine {machine_id}"):
            await MachineCgroup(machine_id).freeze()

    async def resume(self, machine_id: str) -> None:
        """Thaw a suspended machine."""
        self._live(machine_id)
        with map_runtime_errors(f"resume machine {machine_id}"):
            await MachineCgroup(machine_id).thaw()

    async def signal(self, machine_id: str, signal: int) -> None:
        """Send `signal` to the machine's init, which forwards it to the program's process group."""
        running = self._live(machine_id)
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.pid, signal)

    async def exec(
        self, machine_id: str, command: list[str], stdin: bytes | None, timeout: float, container: str = ""
    ) -> ExecResult:
        """Run `command` inside the machine (or one of its containers), with its env, user and working directory."""
        machine = self._machine(machine_id)  # an unknown machine is not found, before it is not running
        self._live(machine_id)
        with map_runtime_errors(f"exec in machine {machine_id}"):
            if container or machine.spec.containers:
                process = exec_process(self._pods.get(machine_id), machine_id, machine.spec, container, command)
            else:
                uid, gid = await asyncio.to_thread(guestfs.resolve_user, Path(machine.lower), machine.spec.user)
                process = bundle.exec_process(machine.spec, command, uid=uid, gid=gid)
            return await self.runc.exec(machine_id, self.layout.machine(machine_id), process, stdin, timeout)

    async def set_memory(self, machine_id: str, memory_mb: int) -> None:
        """Change the memory limit: now, when the machine runs, and for its next starts."""
        machine = self._machine(machine_id)
        paths = self.layout.machine(machine_id)
        async with machine.lock:
            with map_runtime_errors(f"set the memory of machine {machine_id}"):
                if machine_id in self._running:
                    MachineCgroup(machine_id).set_memory_limit(memory_mb * 1024 * 1024)
                machine.spec = dataclasses.replace(machine.spec, memory_mb=memory_mb)
                # and every start writes its bundle from the spec
                await asyncio.to_thread(_write_record, paths, machine, self._key)

    async def reclaim_memory(self, machine_id: str, amount_mb: int) -> int:
        """Have the kernel reclaim up to `amount_mb` of the running machine's memory; return the bytes freed."""
        machine = self._machine(machine_id)
        async with machine.lock:
            if machine_id not in self._running:
                return 0
            with map_runtime_errors(f"reclaim the memory of machine {machine_id}"):
                return await asyncio.to_thread(MachineCgroup(machine_id).reclaim, amount_mb * 1024 * 1024)

    async def read_output(self, machine_id: str, cursor: OutputCursor, limit: int) -> OutputChunk:
        return await asyncio.to_thread(output.read_output, self.layout.machine(machine_id).log, cursor, limit)

    async def memory_usage(self, machine_id: str) -> int:
        self._machine(machine_id)
        return MachineCgroup(machine_id).memory_usage() if machine_id in self._running else 0

    async def ps(self, machine_id: str) -> list[ProcessInfo]:
        """The machine's processes with their CPU, memory, working directory and listening sockets."""
        self._machine(machine_id)
        if machine_id not in self._running:
            return []
        found = await asyncio.to_thread(procfs.processes, MachineCgroup(machine_id).pids())
        # catatonit and the status-recording shell are the runtime's, not the machine's
        return [p for p in found if not p.command.startswith(bundle.GUEST_DIR)]

    async def status(self, machine_id: str) -> SandboxStatus:
        """Where the machine is in its life, as this host sees it."""
        if machine_id not in self._machines:
            return SandboxStatus.FAILED if machine_id in self._failed else SandboxStatus.ABSENT
        if machine_id in self._running:
            frozen = MachineCgroup(machine_id).freezer_state() == "FROZEN"
            return SandboxStatus.PAUSED if frozen else SandboxStatus.RUNNING
        if exits.last_exit(self.layout.machine(machine_id)) is not None:
            return SandboxStatus.STOPPED
        return SandboxStatus.CREATED

    def version_of(self, machine_id: str) -> str:
        """The version (instance id) of the machine this host holds, from its record; "" when it holds none."""
        machine = self._machines.get(machine_id)
        return machine.spec.instance_id if machine else ""

    def machine_ids(self) -> list[str]:
        """Every machine this host holds a record of, readable or set aside."""
        return sorted(set(self._machines) | self._failed)

    async def destroy(self, machine_id: str) -> None:
        """Kill the machine if it runs and remove every trace of it from the host."""
        paths = self.layout.machine(machine_id)
        machine = self._machines.get(machine_id)
        running = self._running.get(machine_id)
        await self._close_pod(machine_id)
        if running is not None:
            self.supervisor.unwatch(machine_id)
            await MachineCgroup(machine_id).thaw()  # a frozen process does not die until thawed
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signals.SIGKILL)
            self._running.pop(machine_id, None)
        async with machine.lock if machine else contextlib.nullcontext():
            with map_runtime_errors(f"destroy machine {machine_id}"):
                await instance.remove(self.runc, self.pool, machine_id, paths)
            if machine is not None:
                self.ids.release(machine_id, machine.ids)
            self._machines.pop(machine_id, None)
            self._failed.discard(machine_id)
        async with self._orgs:
            with map_runtime_errors(f"destroy machine {machine_id}"):
                await self._release_empty_orgs()

    # -- recovery -----------------------------------------------------------------------------------------

    async def recover(self) -> dict[str, SandboxStatus]:
        """Re-adopt running and paused machines, report exits that happened meanwhile, clean half-done work."""
        await self._ensure_host()
        statuses: dict[str, SandboxStatus] = {}
        for machine_id in self.layout.machine_ids():
            with map_runtime_errors(f"recover machine {machine_id}"):
                status = await self._recover_one(machine_id)
            if status is not None:
                statuses[machine_id] = status
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        async with self._orgs:
            with map_runtime_errors("recover host networking"):
                await self._release_empty_orgs()  # of creates that never finished
        return statuses

    async def _recover_one(self, machine_id: str) -> SandboxStatus | None:
        paths = self.layout.machine(machine_id)
        if machine_id not in self._running:
            kill_stale_holder(paths.holder)  # a start the last daemon did not finish may have left its holder
        if machine_id in self._failed:  # without its record it cannot be adopted: whatever of it runs is ended
            await instance.end_unreadable(self.runc, machine_id, paths)
            return SandboxStatus.FAILED
        if machine_id not in self._machines:  # create never finished
            await instance.remove(self.runc, self.pool, machine_id, paths)
            return None
        if machine_id in self._running:
            return await self.status(machine_id)
        state = await self.runc.state(machine_id)
        started = instance.read_started(paths)
        if state is not None and state["status"] in ("running", "paused") and instance.network_ready(paths):
            pid = int(state["pid"])
            start_time = started["start_time"] if started and started["pid"] == pid else process_start_time(pid)
            write_json(paths.started, {"pid": pid, "start_time": start_time, "started_at": time.time()}, durable=False)
            self._running[machine_id] = _Running(pid, asyncio.get_running_loop().create_future())
            self.supervisor.watch(machine_id, pid, start_time, paths.log)
            if self._machines[machine_id].spec.containers:
                self._pod(machine_id, paths, self._machines[machine_id]).adopt()
            return await self.status(machine_id)
        if (
            started is not None
        ):  # it ran, and ended while no one watched (but perhaps while this process was its parent)
            await self._finish_exit(machine_id, reap_exited(started["pid"], started["start_time"]))
            return SandboxStatus.STOPPED
        await instance.clear_unfinished_start(self.runc, machine_id, paths, self._machines[machine_id].network)
        recorded = exits.last_exit(paths)
        if recorded is not None and not recorded[1]:
            await self._report(machine_id, paths, recorded[0])
        return await self.status(machine_id)


def _read_record(record: dict[str, Any], key: Fernet) -> tuple[SandboxSpec, str, int | None]:
    """The spec, image rootfs and user-id base of a machine's record; one of RECORD_ERRORS when it is damaged."""
    lower, uid_base = record["lower"], record.get("uid_base")
    if not isinstance(lower, str) or not (uid_base is None or type(uid_base) is int):
        raise TypeError("lower or uid_base")
    return spec_from_json(record["spec"], key), lower, uid_base


def _write_record(paths: MachinePaths, machine: _Machine, key: Fernet, *, new: bool = False) -> None:
    """The machine's one record, written at once: a crash before it leaves only a directory to remove. A `new`
    machine's directory is flushed into the machines' directory too, so that a host crash keeps the record."""
    record = {
        "spec": spec_to_json(machine.spec, key),
        "lower": machine.lower,
        "network": machine.network.to_json(),
        "uid_base": machine.ids.base,
    }
    write_json(paths.record, record)
    if new:
        fsync_dir(paths.dir.parent)
