"""The seccomp profile's names: runc skips a name libseccomp does not know, so a misspelt allowed call would be
denied without a word. Every name must be a system call of one of the profile's architectures."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from aerodrome.runtime.runc import seccomp

HEADERS = [Path("/usr/include/x86_64-linux-gnu/asm") / name for name in ("unistd_64.h", "unistd_32.h", "unistd_x32.h")]
CONDITIONAL = ("clone", "clone3", "personality", "socket")


def known_syscalls() -> set[str]:
    """The x86_64, x86 and x32 system calls in the kernel headers, and those of the running kernel (which may be
    newer than the headers) from its symbols."""
    names = {
        name for header in HEADERS if header.exists() for name in re.findall(r"#define __NR_(\w+)", header.read_text())
    }
    kallsyms = Path("/proc/kallsyms")
    if kallsyms.exists():
        pattern = re.compile(r"^\S+ \S __(?:x64|ia32|x32_compat|ia32_compat)_sys_(\w+)$", re.MULTILINE)
        names |= set(pattern.findall(kallsyms.read_text()))
    if not names:
        pytest.skip("neither the kernel headers (linux-libc-dev) nor /proc/kallsyms are here")
    return names


def test_every_name_is_a_system_call() -> None:
    denied = [name for family in seccomp.DENIED.values() for name in family]
    unknown = set(seccomp.ALLOWED) | set(denied) | set(CONDITIONAL)
    assert sorted(unknown - known_syscalls()) == []


def test_each_call_is_allowed_denied_or_conditional_once() -> None:
    names = [*seccomp.ALLOWED, *(name for family in seccomp.DENIED.values() for name in family), *CONDITIONAL]
    assert [name for name, count in Counter(names).items() if count > 1] == []
    rules = seccomp.profile()["syscalls"]
    assert {name for rule in rules[1:] for name in rule["names"]} == set(CONDITIONAL)


def test_only_native_calls_pass_unless_32_bit_programs_are_allowed() -> None:
    assert seccomp.profile()["architectures"] == ["SCMP_ARCH_X86_64"]
    assert seccomp.profile(compat_32bit=True)["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
