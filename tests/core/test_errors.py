"""A full filesystem is recognised through whatever layer reports it."""

from __future__ import annotations

import errno
import sqlite3

from aerodrome.core import InsufficientStorageError, RuntimeFailureError, is_out_of_space


def test_a_full_filesystem_is_recognised_in_any_layer() -> None:
    assert is_out_of_space(OSError(errno.ENOSPC, "No space left on device"))
    assert is_out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_out_of_space(sqlite3.OperationalError("database or disk is full"))
    assert is_out_of_space(RuntimeFailureError("umoci failed (1): write layer: no space left on device"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as cause:
            raise RuntimeError("wrapped") from cause
    except RuntimeError as wrapped:
        assert is_out_of_space(wrapped)


def test_other_errors_are_not_taken_for_a_full_filesystem() -> None:
    assert not is_out_of_space(OSError(errno.EACCES, "Permission denied"))
    assert not is_out_of_space(sqlite3.OperationalError("database is locked"))
    looping = RuntimeError("a")
    looping.__context__ = RuntimeError("b")
    looping.__context__.__context__ = looping
    assert not is_out_of_space(looping)


def test_the_refusal_names_what_failed_and_what_to_do() -> None:
    assert InsufficientStorageError("writing to the database").message == (
        "no space left on the data filesystem: writing to the database failed; free space on it and retry"
    )
