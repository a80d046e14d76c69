"""Read a file the user named without trusting it to be one.

Only regular files are read, opened without blocking (a FIFO must not wait for a
writer) and judged on the opened descriptor (no race with a swapped path); at
most ``max_bytes + 1`` bytes are read, so a device (``/dev/zero``) or a file
that grows is never read without end. Callers turn the errors into their own
one-line messages.
"""

from __future__ import annotations

import errno
import os
import stat


class NotRegularFileError(OSError):
    """The path is a device, FIFO or socket, not a file."""


class FileTooLargeError(OSError):
    """The file holds more than the cap; ``size`` is what was seen of it."""

    def __init__(self, size: int):
        super().__init__(errno.EFBIG, os.strerror(errno.EFBIG))
        self.size = size


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    Raises:
        FileNotFoundError: no such path.
        IsADirectoryError: a folder.
        NotRegularFileError: a device, FIFO or socket.
        FileTooLargeError: more than ``max_bytes``.
        OSError: any other reason it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(errno.EINVAL, "not a regular file", os.fspath(path))
        if st.st_size > max_bytes:
            raise FileTooLargeError(st.st_size)
        fh, fd = os.fdopen(fd, "rb"), -1  # the file object owns the descriptor now
        with fh:
            data = fh.read(max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise FileTooLargeError(len(data))
    return data
