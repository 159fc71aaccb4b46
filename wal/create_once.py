"""Settling a failed create-once put on an object store by looking at the key.

Why look instead of parsing the error: a conditional put (`If-None-Match: *`) refused because the key
exists arrives as FileExistsError (moto), OSError(EINVAL) (SeaweedFS) or a client error carrying 412
(AWS), and the same types and texts also carry unrelated failures (object names hold millisecond
times, so "412" can appear in any message). One HEAD of the key after the failure says what happened:
present means the name is taken (by another writer, or by this put landing despite the error).
Used by the WAL's object-store backend and by checkpoint publishing.
"""

from __future__ import annotations

from typing import Any


def object_exists(fs: Any, path: str) -> bool:
    """Whether the object `path` exists now: one HEAD on S3, a cache-bypassing `exists` elsewhere.

    fsspec's generic `exists` also lists the prefix (for directories), which a key check does not need.
    """
    call_s3 = getattr(fs, "call_s3", None)
    if call_s3 is None:
        fs.invalidate_cache(path)
        return bool(fs.exists(path))
    bucket, key, _ = fs.split_path(path)
    try:
        call_s3("head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return False
    return True


def put_failed_because_taken(fs: Any, path: str) -> bool:
    """After a failed create-once put of `path`: whether the key exists (False if even that check fails)."""
    try:
        return object_exists(fs, path)
    except Exception:  # the store is unreachable: the failure stays unexplained, not "taken"
        return False
