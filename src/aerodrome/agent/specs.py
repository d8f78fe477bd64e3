"""From a machine's whole version, as the control plane sends it, to the sandbox spec the runtime makes."""

from __future__ import annotations

from aerodrome.core import ImageInfo, InvalidArgumentError, MachineVersionSpec, SandboxSpec, VolumeMount


def resolve_argv(spec: MachineVersionSpec, image: ImageInfo) -> tuple[str, ...]:
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


def sandbox_spec(spec: MachineVersionSpec, image: ImageInfo, mounts: tuple[VolumeMount, ...]) -> SandboxSpec:
    """The image's env lies under the version's; its working directory and user apply as they are."""
    return SandboxSpec(
        machine_id=spec.machine_id,
        instance_id=spec.version,
        app_name=spec.app_name,
        org_network_id=spec.org_network_id,
        image_digest=image.digest,
        argv=resolve_argv(spec, image),
        env={**image.env, **spec.env},
        working_dir=image.working_dir or "/",
        user=image.user,
        files=spec.files,
        cpus=spec.cpus,
        cpu_kind=spec.cpu_kind,
        memory_mb=spec.memory_mb,
        mounts=mounts,
        hostname=spec.hostname,
        rootfs_bytes=spec.rootfs_bytes,
        host_resolver=spec.host_resolver,
    )


def pinned(reference: str, digest: str) -> str:
    """The image by digest: its tag may point elsewhere since."""
    if not digest or "@" in reference:
        return reference
    return f"{reference}@{digest}"
