"""The seccomp profile of every machine: an allow-list with the semantics of Docker's default profile.

Anything not allowed fails with EPERM. The list holds what ordinary Linux programs call (files, memory, threads,
signals, time, sockets, System V and POSIX IPC, with their 32-bit and x32 forms), and a few calls are allowed only
with some arguments: `clone` without namespace flags, `personality` with the standard values, `socket` of any
family but vsock. `clone3` answers ENOSYS so that glibc falls back to `clone`.

runc loads the filter as late as it can, just before it execs the machine's init (with `no_new_privileges`), so
the calls in between (closing descriptors, the exec fifo, the Go runtime's futexes and threads) and everything
catatonit and the busybox wrapper do must be here; they are, as they are in Docker's list. Names unknown to the
host's libseccomp are skipped by runc, and calls numbered above the highest one it knows answer ENOSYS.
"""

from __future__ import annotations

import errno
from typing import Any

NATIVE = ("SCMP_ARCH_X86_64",)
#: 32-bit x86 and x32 programs too, on request: the filter then holds three tables, which costs runc about 15 ms
#: a start here to compile, and 32-bit `socketcall` cannot be filtered by its arguments.
COMPAT = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")

ALLOWED = (
    # files and directories
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chroot", "umask",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown",
    "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "flock",
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2", "lseek",
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
    "getdents", "getdents64", "mkdir", "mkdirat", "mknod", "mknodat", "rmdir", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "readlink", "readlinkat", "unlink", "unlinkat",
    "truncate", "ftruncate", "fallocate", "fadvise64", "readahead", "fsync", "fdatasync", "sync", "syncfs",
    "sync_file_range", "utime", "utimes", "utimensat", "futimesat",
    "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "ioctl",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents", "ioprio_get", "ioprio_set",
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "remap_file_pages",
    "mlock", "mlock2", "mlockall", "munlock", "munlockall", "membarrier", "memfd_create", "memfd_secret",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "map_shadow_stack", "cachestat",
    # processes and threads (clone is below, with its condition)
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    "getpriority", "setpriority", "getrlimit", "setrlimit", "prlimit64", "getrusage",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "restart_syscall", "getcpu",
    "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
    "arch_prctl", "modify_ldt", "set_thread_area", "get_thread_area", "prctl", "capget", "capset", "seccomp",
    "pidfd_open", "pidfd_send_signal", "process_mrelease",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    # credentials
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    # signals
    "kill", "tkill", "tgkill", "pause", "sigaltstack", "signalfd", "signalfd4",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    # time (reading it; setting the clock needs CAP_SYS_TIME, which machines lack)
    "time", "gettimeofday", "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "times",
    "adjtimex", "clock_adjtime", "alarm", "getitimer", "setitimer",
    "timer_create", "timer_delete", "timer_gettime", "timer_settime", "timer_getoverrun",
    "timerfd_create", "timerfd_gettime", "timerfd_settime",
    # waiting on descriptors
    "poll", "ppoll", "select", "pselect6", "pipe", "pipe2", "eventfd", "eventfd2",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "epoll_ctl_old", "epoll_wait_old",
    # sockets (socket is below, with its condition; raw sockets need CAP_NET_RAW, which machines lack)
    "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
    "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    # System V and POSIX IPC (the machine has an IPC namespace of its own)
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    # the system
    "uname", "sysinfo", "getrandom",
    # the same calls as 32-bit x86 programs make them
    "chown32", "fchown32", "lchown32", "fcntl64", "stat64", "fstat64", "lstat64", "fstatat64", "statfs64",
    "fstatfs64", "truncate64", "ftruncate64", "fadvise64_64", "_llseek", "mmap2", "_newselect", "sendfile64",
    "getuid32", "geteuid32", "getgid32", "getegid32", "getresuid32", "getresgid32", "getgroups32",
    "setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32", "setgroups32",
    "setfsuid32", "setfsgid32", "ugetrlimit", "sigprocmask", "sigreturn", "waitpid", "socketcall", "ipc",
    "clock_gettime64", "clock_getres_time64", "clock_nanosleep_time64", "clock_adjtime64", "futex_time64",
    "io_pgetevents_time64", "mq_timedsend_time64", "mq_timedreceive_time64", "ppoll_time64", "pselect6_time64",
    "recvmmsg_time64", "rt_sigtimedwait_time64", "sched_rr_get_interval_time64", "semtimedop_time64",
    "timer_gettime64", "timer_settime64", "timerfd_gettime64", "timerfd_settime64", "utimensat_time64",
)  # fmt: skip

# What stays out of ALLOWED on purpose, by family and why (the profile itself needs no list: the default denies).
DENIED: dict[str, tuple[str, ...]] = {
    # A new user namespace hands back every capability over what it owns (NET_ADMIN on a network namespace made in
    # it, mounting filesystems the host never mounts): the first step of most container escapes. Joining
    # another namespace is the host's business, never a tenant's. clone with these flags is refused below.
    "namespaces": ("unshare", "setns"),
    # The machine's filesystem tree is made by the host; every filesystem a tenant could mount is kernel code
    # parsing tenant-controlled bytes.
    "mounts": (
        "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
        "open_tree", "mount_setattr", "fanotify_init",
    ),
    # A second system-call interface: its operations run without passing this filter, and it has been one of the
    # most exploited parts of the kernel (Docker dropped it from its profile as well).
    "io_uring": ("io_uring_setup", "io_uring_enter", "io_uring_register"),
    # Reading and writing other processes' memory and descriptors. Docker allows these only with CAP_SYS_PTRACE
    # (ptrace itself on kernels >= 4.8); machines run no debuggers worth the attack surface.
    "tracing": ("ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd"),
    # Kernel keyrings are not namespaced: keys would be shared with the host's processes of the same uid.
    "keyrings": ("keyctl", "add_key", "request_key"),
    # Programs loaded into the kernel and performance counters see the whole host (other tenants' timing
    # included) and have a long record of privilege escalations.
    "bpf and perf": ("bpf", "perf_event_open"),
    # Pauses the kernel at a page fault of the caller's choosing: the standard way to win a kernel race.
    "userfaultfd": ("userfaultfd",),
    # Opening a file by its handle reaches any file of a mounted filesystem, past the machine's root.
    "file handles": ("open_by_handle_at", "name_to_handle_at"),
    # The host's kernel and hardware: loading code into it, rebooting it, I/O ports, swap, accounting, quotas,
    # its log; and obsolete calls no current program makes, with a history of bugs.
    "the kernel": (
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
        "query_module", "get_kernel_syms", "reboot", "swapon", "swapoff", "iopl", "ioperm", "acct", "quotactl",
        "quotactl_fd", "syslog", "lookup_dcookie", "nfsservctl", "uselib", "sysfs", "ustat", "_sysctl", "vm86",
        "vm86old", "vhangup",
    ),
    # The clock is the host's (no namespace covers it); the hostname is set by runc before the filter loads.
    "clock and names": ("settimeofday", "stime", "clock_settime", "clock_settime64", "sethostname", "setdomainname"),
    # NUMA placement of memory is the host's to decide (Docker allows these only with CAP_SYS_NICE).
    "memory policy": (
        "mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages",
    ),
}  # fmt: skip

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
# clone cannot make a time namespace: CLONE_NEWTIME's bit lies in its exit-signal byte, where 128 and up name no
# signal. Masking it too costs nothing and keeps the list the same as unshare's.
NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
    | CLONE_NEWTIME
)  # fmt: skip

# personality(2) values Docker allows: Linux, Linux with 32-bit addresses, either with a 2.6-looking uname, and
# the query. Other flags turn off address-space randomisation or map page zero, old aids to exploits.
PER_LINUX, PER_LINUX32, UNAME26, PERSONALITY_QUERY = 0x0, 0x8, 0x20000, 0xFFFFFFFF
PERSONALITIES = (PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, PERSONALITY_QUERY)

AF_VSOCK = 40  # sockets to the hypervisor and the host's own vsock services


def _allow_if(name: str, op: str, value: int, value_two: int = 0) -> dict[str, Any]:
    """Allow `name` when its first argument passes the comparison (rules for one name are alternatives)."""
    condition = {"index": 0, "value": value, "valueTwo": value_two, "op": op}
    return {"names": [name], "action": "SCMP_ACT_ALLOW", "args": [condition]}


def conditional_rules() -> list[dict[str, Any]]:
    """The rules that look at arguments, or answer with another errno than the default's."""
    return [
        # flags & NAMESPACE_FLAGS == 0: threads and processes, never namespaces
        _allow_if("clone", "SCMP_CMP_MASKED_EQ", NAMESPACE_FLAGS, 0),
        # clone3's flags sit in a struct in memory, which a filter cannot read: it cannot be allowed on the
        # same terms as clone. ENOSYS, unlike EPERM, makes glibc (2.34 and later) fall back to clone.
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        *(_allow_if("personality", "SCMP_CMP_EQ", value) for value in PERSONALITIES),
        _allow_if("socket", "SCMP_CMP_NE", AF_VSOCK),
    ]


def profile(compat_32bit: bool = False) -> dict[str, Any]:
    """The `linux.seccomp` section of a machine's config.json; without `compat_32bit`, a call of another
    architecture's (a 32-bit program's) is refused whatever its number."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": list(COMPAT if compat_32bit else NATIVE),
        "syscalls": [{"names": list(ALLOWED), "action": "SCMP_ACT_ALLOW"}, *conditional_rules()],
    }
