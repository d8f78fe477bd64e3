"""From a machine's whole version, as the control plane sends it, to the sandbox spec the runtime makes."""

from __future__ import annotations

from aerodrome.core import ContainerRun, ImageInfo, InvalidArgumentError, MachineVersionSpec, SandboxSpec, VolumeMount
from aerodrome.runtime import CONTAINER_PLACEHOLDER as PLACEHOLDER


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


def sandbox_spec(
    spec: MachineVersionSpec,
    image: ImageInfo,
    mounts: tuple[VolumeMount, ...],
    container_images: dict[str, ImageInfo] | None = None,
) -> SandboxSpec:
    """The image's env lies under the version's; its working directory and user apply as they are. A version
    with containers runs a placeholder as its own program, and each container over its image."""
    runs = container_runs(spec, container_images or {}) if spec.containers else ()
    return SandboxSpec(
        machine_id=spec.machine_id,
        instance_id=spec.version,
        app_name=spec.app_name,
        org_network_id=spec.org_network_id,
        image_digest=image.digest,
        argv=PLACEHOLDER if runs else resolve_argv(spec, image),
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
        containers=runs,
        scratch_volumes=spec.scratch_volumes,
    )


def pinned(reference: str, digest: str) -> str:
    """The image by digest: its tag may point elsewhere since."""
    if not digest or "@" in reference:
        return reference
    return f"{reference}@{digest}"


def container_runs(spec: MachineVersionSpec, images: dict[str, ImageInfo]) -> tuple[ContainerRun, ...]:
    """Each container of a multi-container version over its image (`images` by container name), as `sandbox_spec`
    lays the machine's one program over its image: argv, env under the container's, working directory."""
    runs = []
    for container in spec.containers:
        image = images[container.name]
        if container.user not in ("", "root", "0", "0:0"):
            raise InvalidArgumentError(f"invalid containers: {container.name} sets user {container.user!r}; a "
                                       "container runs as the machine's root here")  # fmt: skip
        runs.append(
            ContainerRun(
                name=container.name,
                image_digest=image.digest,
                argv=_argv(container.init_exec, container.init_entrypoint, container.init_cmd, image, container.image),
                env={**image.env, **container.env},
                working_dir=image.working_dir or "/",
                files=container.files,
                depends_on=container.depends_on,
                healthchecks=container.healthchecks,
                restart_policy=container.restart_policy,
                restart_max_retries=container.restart_max_retries,
                mounts=container.mounts,
                stop_signal=container.stop_signal,
                stop_timeout=container.stop_timeout,
            )
        )
    return tuple(runs)


def _argv(
    exec_: tuple[str, ...], entrypoint: tuple[str, ...], cmd: tuple[str, ...], image: ImageInfo, name: str
) -> tuple[str, ...]:
    if exec_:
        return exec_
    argv = (entrypoint or image.entrypoint) + (cmd or (() if entrypoint else image.cmd))
    if not argv:
        raise InvalidArgumentError(f"image {name} has no entrypoint or cmd; set the container's cmd or exec")
    return tuple(argv)
