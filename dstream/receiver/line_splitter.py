"""`LineSplitter`: cuts a byte stream, read in chunks, into decoded lines (the socket receiver's reader).

It exists so the socket receiver can cut each large read into lines at once instead of reading line by
line: per read it holds the GIL briefly, which is what lets it ingest millions of lines a second beside
running tasks (bench/gil.py).
"""

from __future__ import annotations


class LineSplitter:
    r"""Cuts a byte stream, fed in chunks of any size, into lines as the reader delivers them.

    Exactly what reading the stream line by line gives (a pure function of the bytes, whatever the
    chunk boundaries): lines end at ``\n``; each is decoded as UTF-8 with malformed bytes replaced by
    U+FFFD and its trailing ``\r`` characters dropped; `finish` returns the last line if the stream
    did not end with ``\n``. Decoding the complete lines of a chunk in one call gives the same text as
    decoding them one by one, since the byte ``\n`` is never part of a multi-byte UTF-8 sequence: a
    malformed sequence ends at it either way. Bytes after the last ``\n`` wait for the next chunk.
    """

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # bytes of the unfinished line, in the order they came

    def feed(self, chunk: bytes | memoryview) -> list[str]:
        r"""The lines that `chunk` completes (none if it holds no ``\n``)."""
        data = bytes(chunk)
        cut = data.rfind(b"\n")
        if cut < 0:
            if data:
                self._tail.append(data)
            return []
        head = data[:cut]
        if self._tail:
            head = b"".join([*self._tail, head])
        self._tail = [data[cut + 1 :]] if cut + 1 < len(data) else []
        lines = head.decode("utf-8", errors="replace").split("\n")
        if b"\r" in head:
            lines = [line.rstrip("\r") for line in lines]
        return lines

    def finish(self) -> list[str]:
        r"""The last line, if the stream ended without ``\n`` after it."""
        if not self._tail:
            return []
        tail, self._tail = b"".join(self._tail), []
        return [tail.decode("utf-8", errors="replace").rstrip("\r")]
