"""Machines: create, update, destroy, and the sandbox spec each version runs with."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from aerodrome.control.events import ChangeFeed
from aerodrome.control.guest_env import dns_files, fly_env
from aerodrome.control.leases import Leases, Metadata
from aerodrome.control.lifecycle import Lifecycle
from aerodrome.control.registry import RegistryAccess
from aerodrome.control.secrets import Secrets
from aerodrome.control.volumes import Volumes
from aerodrome.core import (
    MAX_LEASE_TTL,
    MAX_NAME,
    Action,
    AerodromeError,
    App,
    Clock,
    FailedPreconditionError,
    ImageInfo,
    InvalidArgumentError,
    Lease,
    Machine,
    MachineSpec,
    MachineState,
    Runtime,
    SandboxSpec,
    Store,
    VolumeMount,
    check_action,
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
        runtime: Runtime,
        clock: Clock,
        feed: ChangeFeed,
        volumes: Volumes,
        secrets: Secrets,
        registry: RegistryAccess,
        *,
        default_region: str,
        regions: frozenset[str] | None,
    ) -> None:
        super().__init__(store, runtime, clock, feed)
        self.volumes = volumes
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
        image = await self.runtime.pull_image(spec.image, await self.registry.pull_grant(app.org_slug))
        mid, version, now = machine_id(), ulid(), rfc3339(self.clock.now())
        try:
            mounts = await self._attach_volumes(app, spec, region, mid)
            fault_point("machine.create.volumes_attached")
            sandbox = await self.runtime.create(
                await self._sandbox_spec(app, org_network_id, mid, version, region, spec, image, mounts, with_secrets)
            )
            fault_point("machine.create.runtime_created")
        except BaseException:
            await self.volumes.release_all(app.name, mid)  # a machine that was never made holds no volume
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
            image_ref=image.image_ref,
            created_at=now,
            updated_at=now,
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

    async def _launch(self, app: App, mid: str, nonce_: str | None) -> None:
        try:
            await self.start(app, mid, nonce_)
        except AerodromeError as exc:
            log.warning("machine %s did not start after create: %s", mid, exc)

    async def _lease_on_create(self, machine: Machine, ttl: int) -> Machine:
        lease = Lease(nonce(), "", "", int(self.clock.now()) + ttl, machine.instance_id)
        await self.store.set_lease(machine.id, lease)
        return dataclasses.replace(machine, lease=lease)

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
            image = await self.runtime.pull_image(spec.image, await self.registry.pull_grant(app.org_slug))
            previous = machine.state
            machine = await self.transition(machine, MachineState.REPLACING)
            fault_point("machine.update.replacing")
            if previous in (MachineState.STARTED, MachineState.SUSPENDED):
                current = self.spec_of(machine)
                await self.runtime.stop(machine.id, current.stop_signal, current.stop_timeout)
                fault_point("machine.update.runtime_stopped")
            version = ulid()
            mounts = await self._attach_volumes(app, spec, machine.region, machine.id)
            sandbox = await self.runtime.create(
                await self._sandbox_spec(
                    app, org_network_id, machine.id, version, machine.region, spec, image, mounts, with_secrets
                )
            )
            fault_point("machine.update.runtime_created")
            resting = MachineState.CREATED if previous is MachineState.CREATED else MachineState.STOPPED
            machine = await self.transition(
                machine,
                resting,
                event=("update", "user"),
                new_version=True,
                instance_id=version,
                config=config,
                image_ref=image.image_ref,
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
            machine = await self.transition(machine, MachineState.DESTROYING)
            fault_point("machine.destroy.destroying")
            await self.runtime.destroy(machine.id)
            fault_point("machine.destroy.runtime_destroyed")
            await self.volumes.release_all(app.name, machine.id)
            fault_point("machine.destroy.volumes_released")
            await self.transition(machine, MachineState.DESTROYED, event=("destroy", "user"), deleted=True, lease=None)
            fault_point("machine.destroy.recorded")

    async def list(
        self, app: App, *, include_deleted: bool, region: str | None, states: Sequence[MachineState]
    ) -> list[Machine]:
        return await self.store.list_machines(app.name, include_deleted=include_deleted, region=region, states=states)

    async def recreate_sandbox(self, machine: Machine) -> None:
        """Prepare the sandbox of the machine's current version again (after a host reboot, or a cut-short update)."""
        app = await self.store.get_app(machine.app_name)
        org = await self.store.get_org(app.org_slug) if app else None
        if app is None or org is None:
            return
        spec = self.spec_of(machine)
        image = await self.runtime.pull_image(_pinned(spec.image, machine.image_ref.get("digest")))  # the host's own
        mounts = await self._attach_volumes(app, spec, machine.region, machine.id)
        await self.runtime.create(
            await self._sandbox_spec(
                app, org.internal_numeric_id, machine.id, machine.instance_id, machine.region, spec, image, mounts
            )
        )

    async def _attach_volumes(self, app: App, spec: MachineSpec, region: str, mid: str) -> tuple[VolumeMount, ...]:
        mounts = []
        for mount in spec.mounts:
            volume = await self.volumes.reserve(app, mount, region, mid)
            mounts.append(await self.volumes.mount(volume, mount.path))
        return tuple(mounts)

    async def _sandbox_spec(
        self,
        app: App,
        org_network_id: int,
        mid: str,
        version: str,
        region: str,
        spec: MachineSpec,
        image: ImageInfo,
        mounts: tuple[VolumeMount, ...],
        with_secrets: bool = True,  # False: `skip_secrets`, the app's secrets are not in the env
    ) -> SandboxSpec:
        env = {
            **image.env,
            **(await self.secrets.env(app.name) if with_secrets else {}),
            **spec.env,
            **fly_env(app.name, mid, version, region, spec),
        }
        return SandboxSpec(
            machine_id=mid,
            instance_id=version,
            app_name=app.name,
            org_network_id=org_network_id,
            image_digest=image.digest,
            argv=resolve_argv(spec, image),
            env=env,
            working_dir=image.working_dir or "/",
            user=image.user,
            files=(*dns_files(spec), *await self.secrets.guest_files(app.name, spec.files)),
            host_resolver=spec.dns.host_resolver,
            cpus=spec.cpus,
            cpu_kind=spec.cpu_kind,
            memory_mb=spec.memory_mb,
            mounts=mounts,
            hostname=mid,
            rootfs_bytes=spec.rootfs_size_gb * self.volumes.unit_bytes,
        )


def _pinned(reference: str, digest: object) -> str:
    """The image the machine was made from, by digest: its tag may point elsewhere since."""
    if not isinstance(digest, str) or not digest or "@" in reference:
        return reference
    return f"{reference}@{digest}"


def resolve_argv(spec: MachineSpec, image: ImageInfo) -> tuple[str, ...]:
    """init.exec replaces everything; otherwise entrypoint + cmd, each from init or else from the image.

    As with OCI images, setting an entrypoint drops the image's default cmd.
    """
    if spec.init_exec:
        return spec.init_exec
    entrypoint = spec.init_entrypoint or image.entrypoint
    cmd = spec.init_cmd or (() if spec.init_entrypoint else image.cmd)
    argv = tuple(entrypoint) + tuple(cmd)
    if not argv:
        raise InvalidArgumentError(f"image {spec.image} has no entrypoint or cmd; set init.cmd or init.exec")
    return argv
