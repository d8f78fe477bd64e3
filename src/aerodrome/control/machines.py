"""Machines: create, update, destroy, and the sandbox spec each version runs with."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from aerodrome.control.events import ChangeFeed
from aerodrome.control.guest_env import dns_files, fly_env
from aerodrome.control.hosts import Hosts
from aerodrome.control.leases import Leases, Metadata
from aerodrome.control.lifecycle import Lifecycle
from aerodrome.control.machine_base import host_deadline, new_key
from aerodrome.control.placing import Placer
from aerodrome.control.registry import RegistryAccess
from aerodrome.control.secrets import Secrets
from aerodrome.control.volumes import Volumes
from aerodrome.core import (
    IMAGE_SIZE_KEY,
    MAX_LEASE_TTL,
    MAX_NAME,
    Action,
    AerodromeError,
    App,
    Clock,
    FailedPreconditionError,
    HostUnreachableError,
    InvalidArgumentError,
    Lease,
    Machine,
    MachineSpec,
    MachineState,
    MachineVersionSpec,
    PreparedVersion,
    PullGrant,
    Store,
    UnavailableError,
    VolumeAttachment,
    check_action,
    container_versions,
    fault_point,
    machine_id,
    machine_name,
    nonce,
    normalize_config,
    parse_bool,
    parse_int,
    parse_text,
    rfc3339,
    ulid,
)

log = logging.getLogger("aerodrome.machines")


class Machines(Lifecycle, Leases, Metadata):
    def __init__(
        self,
        store: Store,
        hosts: Hosts,
        clock: Clock,
        feed: ChangeFeed,
        volumes: Volumes,
        placer: Placer,
        secrets: Secrets,
        registry: RegistryAccess,
        *,
        default_region: str,
        regions: frozenset[str] | None,
    ) -> None:
        super().__init__(store, hosts, clock, feed)
        self.volumes = volumes
        self.placer = placer
        self.secrets = secrets
        self.registry = registry
        self.default_region = default_region
        self.regions = regions

    def region_for(self, requested: object) -> str:
        region = requested or self.default_region
        if not isinstance(region, str) or len(region) != 3 or not region.isalpha():
            shown = repr(region) if len(repr(region)) <= 40 else repr(region)[:37] + "..."
            raise InvalidArgumentError(f"invalid region {shown}: use a three-letter region code")
        if self.regions is not None and region not in self.regions:
            raise InvalidArgumentError(
                f"region {region!r} is not served here; available regions: {', '.join(sorted(self.regions))}"
            )
        return region.lower()

    async def create(self, app: App, org_network_id: int, body: dict[str, Any]) -> Machine:
        # Every field is checked before anything is pulled, made or written: a refused create leaves no trace.
        config, spec = normalize_config(body.get("config"))
        region = self.region_for(body.get("region"))
        name = parse_text(body.get("name") or machine_name(), "name", MAX_NAME)
        lease_ttl = body.get("lease_ttl")
        lease_ttl = None if lease_ttl in (None, 0) else parse_int(lease_ttl, "lease_ttl", 1, MAX_LEASE_TTL)
        skip_launch = parse_bool(body.get("skip_launch"), "skip_launch", False)
        cordoned = parse_bool(body.get("skip_service_registration"), "skip_service_registration", False)
        with_secrets = not parse_bool(body.get("skip_secrets"), "skip_secrets", False)
        await self.secrets.require_version(app.name, body.get("min_secrets_version"))
        await self.secrets.guest_files(app.name, spec.files)  # a file's missing secret is refused before any change
        grant = await self.registry.pull_grant(app.org_slug)
        mid, version, now = machine_id(), ulid(), rfc3339(self.clock.now())
        host = await self._place(app, spec, region, mid)
        image_ref = await self._resolve_image(host, spec.image, grant)
        self.hosts.assign_machine(mid, host)
        try:
            mounts = await self._attach_volumes(app, spec, region, mid)
            fault_point("machine.create.volumes_attached")
            sandbox = await self._prepare(
                await self._version_spec(
                    app, org_network_id, mid, version, region, spec, image_ref, grant, mounts, with_secrets
                )
            )
            fault_point("machine.create.runtime_created")
        except BaseException:
            await self.volumes.release_all(app.name, mid)  # a machine that was never made holds no volume
            self.hosts.forget_machine(mid)
            raise
        machine = Machine(
            id=mid,
            app_name=app.name,
            name=name,
            region=region,
            state=MachineState.CREATED,
            instance_id=version,
            config=config,
            private_ip=sandbox.private_ip,
            private_ipv4=sandbox.private_ipv4,
            image_ref=image_ref,
            created_at=now,
            updated_at=now,
            host=host,
            cordoned=cordoned,
        )
        await self.store.add_machine(machine, self.new_event(machine, "launch", "created", "user"))
        fault_point("machine.create.recorded")
        if lease_ttl is not None:
            machine = await self._lease_on_create(machine, lease_ttl)
        if not skip_launch:
            # As on Fly, create answers with the machine `created` and it starts right after; clients `wait`.
            self.spawn(self._launch(app, mid, machine.lease.nonce if machine.lease else None))
        return machine

    async def _place(self, app: App, spec: MachineSpec, region: str, mid: str) -> str:
        """The host the new machine goes to: where its volume is, if it mounts one; else placement's choice."""
        pinned = None
        if spec.mounts:
            pinned = (await self.volumes.find_for_mount(app, spec.mounts[0], region, mid)).host
        return await self.placer.machine_host(app.name, spec, region, pinned)

    async def _launch(self, app: App, mid: str, nonce_: str | None) -> None:
        try:
            await self.start(app, mid, nonce_)
        except AerodromeError as exc:
            log.warning("machine %s did not start after create: %s", mid, exc)

    async def _lease_on_create(self, machine: Machine, ttl: int) -> Machine:
        lease = Lease(nonce(), "", "", int(self.clock.now()) + ttl, machine.instance_id)
        await self.store.set_lease(machine.id, lease)
        return dataclasses.replace(machine, lease=lease, row_version=machine.row_version + 1)

    async def update(
        self, app: App, org_network_id: int, mid: str, body: dict[str, Any], nonce_: str | None
    ) -> Machine:
        config, spec = normalize_config(body.get("config"))
        name = None if body.get("name") is None else parse_text(body["name"], "name", MAX_NAME)
        skip_launch = parse_bool(body.get("skip_launch"), "skip_launch", False)
        with_secrets = not parse_bool(body.get("skip_secrets"), "skip_secrets", False)
        await self.secrets.require_version(app.name, body.get("min_secrets_version"))
        await self.secrets.guest_files(app.name, spec.files)  # a file's missing secret is refused before any change
        expected = body.get("current_version")
        if expected is not None and not isinstance(expected, str):
            raise InvalidArgumentError("invalid current_version: must be a string")
        async with self.locked(mid):
            machine = await self.find(app, mid)
            self.check_lease(machine, nonce_)
            check_action(Action.UPDATE, machine.state)
            if expected and expected != machine.instance_id:
                raise FailedPreconditionError(
                    f"machine version {machine.instance_id} does not match current_version {expected}"
                )
            if body.get("region") and self.region_for(body["region"]) != machine.region:
                raise InvalidArgumentError("a machine's region cannot be changed")
            mounted = [m.get("volume") or m.get("name") for m in machine.config.get("mounts") or []]
            if mounted and mounted != [m.volume for m in spec.mounts]:
                raise InvalidArgumentError("a machine's mounted volume cannot be changed by an update")
            grant = await self.registry.pull_grant(app.org_slug)
            image_ref = await self._resolve_image(machine.host, spec.image, grant)
            previous, old = machine.state, machine
            version = ulid()
            # The database names the new version before the host is asked for it: cut short anywhere, the host
            # is at most behind the database (recovery prepares the version it names), never ahead of it.
            machine = await self.transition(
                machine, MachineState.REPLACING, instance_id=version, config=config, image_ref=image_ref
            )
            fault_point("machine.update.replacing")
            if previous in (MachineState.STARTED, MachineState.SUSPENDED):
                # a suspended one is thawed first, on the host
                await self.unless_unreachable(_as_before(machine, old), previous, self.halt(old))
                fault_point("machine.update.runtime_stopped")
            mounts = await self._attach_volumes(app, spec, machine.region, machine.id)
            resting = MachineState.CREATED if previous is MachineState.CREATED else MachineState.STOPPED
            version_spec = await self._version_spec(
                app, org_network_id, machine.id, version, machine.region, spec, image_ref, grant, mounts, with_secrets
            )
            sandbox = await self._prepare_next(machine, old, resting, version_spec)
            fault_point("machine.update.runtime_created")
            machine = await self.transition(
                machine,
                resting,
                event=("update", "user"),
                new_version=True,
                private_ip=sandbox.private_ip,
                private_ipv4=sandbox.private_ipv4,
                name=name or machine.name,
            )
            fault_point("machine.update.recorded")
        if not skip_launch:
            await self.start(app, mid, nonce_)
            machine = await self.find(app, mid)
        return machine

    async def destroy(self, app: App, mid: str, *, force: bool, nonce_: str | None, ignore_lease: bool = False) -> None:
        async with self.locked(mid):
            machine = await self.find(app, mid)
            if not ignore_lease:
                self.check_lease(machine, nonce_)
            check_action(Action.DESTROY, machine.state, force=force)
            previous = machine.state
            machine = await self.transition(machine, MachineState.DESTROYING)
            fault_point("machine.destroy.destroying")
            destroyed = self.agent.destroy(machine.id, key=new_key(), deadline=host_deadline())  # detaches volumes
            await self.unless_unreachable(machine, previous, destroyed)
            fault_point("machine.destroy.runtime_destroyed")
            await self.volumes.release_all(app.name, machine.id)
            fault_point("machine.destroy.volumes_released")
            await self.transition(machine, MachineState.DESTROYED, event=("destroy", "user"), deleted=True, lease=None)
            fault_point("machine.destroy.recorded")
            self.hosts.forget_machine(machine.id)

    async def list(
        self, app: App, *, include_deleted: bool, region: str | None, states: Sequence[MachineState]
    ) -> list[Machine]:
        return await self.store.list_machines(app.name, include_deleted=include_deleted, region=region, states=states)

    async def recreate_sandbox(self, machine: Machine) -> None:
        """Prepare the machine's current version on its host again (after a host reboot, or a cut-short update)."""
        app = await self.store.get_app(machine.app_name)
        org = await self.store.get_org(app.org_slug) if app else None
        if app is None or org is None:
            return
        spec = self.spec_of(machine)
        mounts = await self._attach_volumes(app, spec, machine.region, machine.id)
        # the image the machine was made from, by digest (its tag may point elsewhere since); the host's own pull
        version = await self._version_spec(
            app,
            org.internal_numeric_id,
            machine.id,
            machine.instance_id,
            machine.region,
            spec,
            machine.image_ref,
            None,
            mounts,
        )
        await self._prepare(version)

    async def _prepare_next(
        self, machine: Machine, old: Machine, resting: MachineState, version: MachineVersionSpec
    ) -> PreparedVersion:
        """Prepare an update's version. Refused by the host, or never sent to it (unreachable), the machine goes
        back to its old version at rest; an outcome not known (the agent died under it, and resumes it) stays
        `replacing` with the new version named, for the host to be reconciled with."""
        try:
            return await self._prepare(version)
        except UnavailableError as exc:
            if isinstance(exc, HostUnreachableError):
                await self.transition(_as_before(machine, old), resting)
            raise
        except AerodromeError:
            await self.transition(_as_before(machine, old), resting)
            raise

    async def _prepare(self, version: MachineVersionSpec) -> PreparedVersion:
        return await self.agent.prepare(version, key=new_key(), deadline=host_deadline())

    async def _attach_volumes(self, app: App, spec: MachineSpec, region: str, mid: str) -> tuple[VolumeAttachment, ...]:
        """Reserve the volumes the mounts name for the machine; its host mounts them."""
        mounts = []
        for mount in spec.mounts:
            volume = await self.volumes.reserve(app, mount, region, mid)
            mounts.append(VolumeAttachment(volume.id, mount.path))
        return tuple(mounts)

    async def _resolve_image(self, host: str, image: str, grant: PullGrant | None) -> dict[str, Any]:
        """Fly's image_ref of the image, as the machine's host pulled it (without the agent's size, not Fly's)."""
        ref = await self.hosts.resolve_image_on(host, image, grant, deadline=host_deadline())
        ref.pop(IMAGE_SIZE_KEY, None)
        return ref

    async def _version_spec(
        self,
        app: App,
        org_network_id: int,
        mid: str,
        version: str,
        region: str,
        spec: MachineSpec,
        image_ref: dict[str, Any],
        grant: PullGrant | None,
        mounts: tuple[VolumeAttachment, ...],
        with_secrets: bool = True,  # False: `skip_secrets`, the app's secrets are not in the env
    ) -> MachineVersionSpec:
        """The whole version, for its host: the image's own env, argv, user and directory are laid under it there."""
        env = {
            **(await self.secrets.env(app.name) if with_secrets else {}),
            **spec.env,
            **fly_env(app.name, mid, version, region, spec),
        }
        digest = image_ref.get("digest")
        return MachineVersionSpec(
            machine_id=mid,
            version=version,
            app_name=app.name,
            org_network_id=org_network_id,
            image=spec.image,
            image_digest=digest if isinstance(digest, str) else "",
            grant=grant,
            init_exec=spec.init_exec,
            init_entrypoint=spec.init_entrypoint,
            init_cmd=spec.init_cmd,
            env=env,
            files=(*dns_files(spec), *await self.secrets.guest_files(app.name, spec.files)),
            host_resolver=spec.dns.host_resolver,
            cpus=spec.cpus,
            cpu_kind=spec.cpu_kind,
            memory_mb=spec.memory_mb,
            mounts=mounts,
            hostname=mid,
            rootfs_bytes=spec.rootfs_size_gb * self.volumes.unit_bytes,
            stop_signal=spec.stop_signal,
            stop_timeout=spec.stop_timeout,
            containers=container_versions(spec, env, await self.secrets.env(app.name) if spec.containers else {}),
            scratch_volumes=spec.scratch_volumes,
        )


def _as_before(machine: Machine, old: Machine) -> Machine:
    """`machine` (as last written) with the version, config and image of `old` again: an update undone."""
    return dataclasses.replace(machine, instance_id=old.instance_id, config=old.config, image_ref=old.image_ref)
