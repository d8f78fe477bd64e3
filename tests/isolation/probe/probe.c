/* A probe of a machine's confinement, run inside it: prints one JSON object with the process's uid and gid
 * maps, its capability sets and, for each attempt, 0 when the call succeeded or the errno it failed with.
 *
 * Each attempt is made so that it would succeed for root on a plain host (or fail with another errno than
 * the sandbox's), so a result of EPERM shows the sandbox refused it. Calls go through syscall(2) where glibc
 * would otherwise hide the kernel's answer. Each attempt runs in a child of its own, and whatever it makes (a
 * process, a node, a mount) is undone.
 * Meant for machines only: on a host, the mount attempt would really mount.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

extern char **environ;

static int first = 1;

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void key(const char *name) {
    printf("%s", first ? "" : ", ");
    first = 0;
    json_string(name);
    fputs(": ", stdout);
}

/* Runs one attempt in a child of its own, so that what one achieves (a new user namespace, say) cannot change
 * the next one's outcome. Reports 0 for a result >= 0, else the errno (raw syscalls and libc calls both report
 * through errno), or minus the signal that killed the child. */
static void result(const char *name, long (*attempt)(void)) {
    int status = 0;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0)
        _exit(attempt() < 0 ? errno : 0);
    key(name);
    if (child < 0 || waitpid(child, &status, 0) < 0)
        printf("\"probe: fork failed: %s\"", strerror(errno));
    else if (WIFSIGNALED(status))
        printf("%d", -WTERMSIG(status));
    else
        printf("%d", WEXITSTATUS(status));
}

static void file_field(const char *name, const char *path) {
    char buf[4096] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
    }
    key(name);
    json_string(f ? buf : "(unreadable)");
}

static void status_field(const char *field) {
    char line[256], value[64] = "";
    size_t len = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            sscanf(line + len + 1, "%63s", value);
    if (f)
        fclose(f);
    key(field);
    json_string(value);
}

/* A raw fork-like call: the child leaves at once; the parent reaps it. */
static long reap(long pid) {
    if (pid == 0)
        syscall(SYS_exit_group, 0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, __WALL);
    return pid;
}

static long try_clone_namespaces(void) {
    return reap(syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
}

static long try_clone3(void) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    return reap(syscall(SYS_clone3, &args, sizeof args));
}

static long try_io_uring(void) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 1, &params);
    if (fd >= 0)
        close((int)fd);
    return fd;
}

static long try_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    if (fd >= 0)
        close((int)fd);
    return fd;
}

static long try_perf(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    if (fd >= 0)
        close((int)fd);
    return fd;
}

static long try_keyctl(void) {
    return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1);
}

static long try_add_key(void) {
    return syscall(SYS_add_key, "user", "aerodrome-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
}

static long try_userfaultfd(void) {
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (fd >= 0)
        close((int)fd);
    return fd;
}

/* A debugger's case: attach to a child of one's own, which the kernel allows without CAP_SYS_PTRACE. */
static long try_ptrace(void) {
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    if (child < 0)
        return -1;
    long ret = ptrace(PTRACE_ATTACH, child, NULL, NULL);
    int saved = errno;
    kill(child, SIGKILL);
    waitpid(child, NULL, __WALL);
    errno = saved;
    return ret;
}

static long try_process_vm_readv(void) {
    char source[8] = "probe", target[8];
    struct iovec local = {target, sizeof target}, remote = {source, sizeof source};
    return syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
}

static long try_socket(int domain, int type, int protocol) {
    int fd = socket(domain, type, protocol);
    if (fd >= 0)
        close(fd);
    return fd;
}

static long try_mknod(void) {
    const char *path = "/tmp/aerodrome-probe-null";
    long ret = mknod(path, S_IFCHR | 0600, makedev(1, 3));
    if (ret == 0)
        unlink(path);
    return ret;
}

static long try_mount(void) {
    const char *path = "/tmp/aerodrome-probe-mnt";
    mkdir(path, 0700);
    long ret = mount("none", path, "tmpfs", 0, "size=1m");
    int saved = errno;
    if (ret == 0)
        umount2(path, MNT_DETACH);
    rmdir(path);
    errno = saved;
    return ret;
}

/* An arch value no kernel knows: root on a plain host gets EINVAL, nothing is loaded or unloaded. */
static long try_kexec_load(void) {
    return syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0x7fff0000UL);
}

/* No image at all: root on a plain host gets EFAULT or ENOEXEC. */
static long try_init_module(void) {
    return syscall(SYS_init_module, NULL, 0UL, "");
}

static long try_setns(void) {
    int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long ret = syscall(SYS_setns, fd, CLONE_NEWUTS);
    int saved = errno;
    close(fd);
    errno = saved;
    return ret;
}

/* fork, exec this program again (it exits 0 when asked), wait: every step must work. */
static long try_fork_exec(void) {
    pid_t child = fork();
    if (child == 0) {
        char *argv[] = {"probe", "--exit", NULL};
        execve("/proc/self/exe", argv, environ);
        _exit(127);
    }
    if (child < 0)
        return -1;
    int status;
    if (waitpid(child, &status, 0) < 0)
        return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = ECHILD;
        return -1;
    }
    return 0;
}

static long try_posix_spawn(void) {
    char *argv[] = {"probe", "--exit", NULL};
    pid_t child;
    int err = posix_spawn(&child, "/proc/self/exe", NULL, NULL, argv, environ);
    if (err != 0) {
        errno = err;
        return -1;
    }
    int status;
    if (waitpid(child, &status, 0) < 0)
        return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = ECHILD;
        return -1;
    }
    return 0;
}

static long try_unshare_newuser(void) { return syscall(SYS_unshare, CLONE_NEWUSER); }
static long try_unshare_newnet(void) { return syscall(SYS_unshare, CLONE_NEWNET); }
static long try_socket_packet_raw(void) { return try_socket(AF_PACKET, SOCK_RAW, 0); }
static long try_socket_inet_raw_icmp(void) { return try_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); }
static long try_socket_inet_stream(void) { return try_socket(AF_INET, SOCK_STREAM, 0); }
static long try_socket_vsock(void) { return try_socket(40 /* AF_VSOCK */, SOCK_STREAM, 0); }
static long try_personality_query(void) { return syscall(SYS_personality, 0xffffffffUL); }

/* Turning address-space randomisation off. */
static long try_personality_no_randomize(void) {
    return syscall(SYS_personality, (unsigned long)(PER_LINUX | ADDR_NO_RANDOMIZE));
}

static void *thread_main(void *arg) {
    *(int *)arg = 42;
    return NULL;
}

/* glibc tries clone3 first and falls back to clone on ENOSYS. */
static long try_pthread(void) {
    pthread_t thread;
    int value = 0;
    int err = pthread_create(&thread, NULL, thread_main, &value);
    if (err == 0)
        err = pthread_join(thread, NULL);
    if (err == 0 && value != 42)
        err = ESRCH;
    errno = err;
    return err ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--exit") == 0)
        return 0;
    fputs("{", stdout);
    file_field("uid_map", "/proc/self/uid_map");
    file_field("gid_map", "/proc/self/gid_map");
    status_field("CapEff");
    status_field("CapPrm");
    status_field("CapBnd");
    status_field("Seccomp");
    status_field("NoNewPrivs");
    key("results");
    fputs("{", stdout);
    first = 1;
    result("clone_newuser_newnet", try_clone_namespaces);
    result("unshare_newuser", try_unshare_newuser);
    result("unshare_newnet", try_unshare_newnet);
    result("clone3", try_clone3);
    result("io_uring_setup", try_io_uring);
    result("bpf", try_bpf);
    result("perf_event_open", try_perf);
    result("keyctl", try_keyctl);
    result("add_key", try_add_key);
    result("userfaultfd", try_userfaultfd);
    result("ptrace_attach", try_ptrace);
    result("process_vm_readv", try_process_vm_readv);
    result("socket_packet_raw", try_socket_packet_raw);
    result("socket_inet_raw_icmp", try_socket_inet_raw_icmp);
    result("socket_inet_stream", try_socket_inet_stream);
    result("socket_vsock", try_socket_vsock);
    result("mknod_char_device", try_mknod);
    result("mount_tmpfs", try_mount);
    result("kexec_load", try_kexec_load);
    result("init_module", try_init_module);
    result("setns", try_setns);
    result("personality_query", try_personality_query);
    result("personality_addr_no_randomize", try_personality_no_randomize);
    result("fork_exec_wait", try_fork_exec);
    result("posix_spawn", try_posix_spawn);
    result("pthread_create", try_pthread);
    fputs("}}\n", stdout);
    return 0;
}
