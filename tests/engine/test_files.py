"""textFile / saveAsTextFile / pickle files through fsspec (local, memory, S3)."""

from __future__ import annotations

import gzip
import pickle
import uuid
from pathlib import Path

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dstream import Context
from dstream.rdd.file_io import (
    PICKLE_HEADER,
    OutputExistsError,
    _lines,
    _read_range,
    decode_pickle_file,
    text_splits,
)
from tests.support.s3servers import StorageTarget

GOLDEN = Path(__file__).parent / "golden"


def reference_lines(text: str) -> list[str]:
    """Hadoop's line semantics: split on \\n, drop one trailing \\r, no phantom last line."""
    if not text:
        return []
    body = text[:-1] if text.endswith("\n") else text
    return [ln[:-1] if ln.endswith("\r") else ln for ln in body.split("\n")]


line_text = st.text(alphabet=st.sampled_from(["a", "b", "é", "\r", " ", "\n", "\n", "💡"]), max_size=80)


@settings(max_examples=150, deadline=None)
@given(text=line_text, n_splits=st.integers(1, 12))
def test_byte_range_splits_read_every_line_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, text: str, n_splits: int
) -> None:
    path = tmp_path_factory.mktemp("split") / "f.txt"
    data = text.encode("utf-8")
    path.write_bytes(data)
    splits = text_splits([(str(path), len(data))], n_splits)
    got: list[str] = []
    for url, start, end in splits:
        got.extend(_lines(_read_range(url, start, end, {}), True))
    assert got == reference_lines(text)


def test_text_file_reads_a_file_with_min_partitions(sc: Context, tmp_path: Path) -> None:
    lines = [f"line {i} " + "x" * (i % 17) for i in range(500)]
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines) + "\n")
    rdd = sc.textFile(str(path), 7)
    assert rdd.getNumPartitions() >= 7
    assert rdd.collect() == lines
    assert sc.textFile(str(path)).collect() == lines


def test_text_file_reads_directories_and_globs_skipping_hidden(sc: Context, tmp_path: Path) -> None:
    out = tmp_path / "dir"
    out.mkdir()
    (out / "part-00000").write_text("a\nb\n")
    (out / "part-00001").write_text("c\n")
    (out / "_SUCCESS").write_text("")
    (out / ".part-00000.crc").write_text("junk\n")
    (out / "_temporary").mkdir()
    assert sc.textFile(str(out)).collect() == ["a", "b", "c"]
    assert sc.textFile(str(out / "part-*")).collect() == ["a", "b", "c"]
    assert sc.textFile(str(out / "part-00001")).collect() == ["c"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sc.textFile(str(tmp_path / "missing"))


def test_text_file_reads_gzip_whole(sc: Context, tmp_path: Path) -> None:
    path = tmp_path / "in.txt.gz"
    path.write_bytes(gzip.compress(b"x\ny\nz\n"))
    assert sc.textFile(str(path), 4).collect() == ["x", "y", "z"]


def test_save_as_text_file_layout_and_round_trip(sc: Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rdd = sc.parallelize([1, "two", (3, 4), b"five", None], 3)
    rdd.saveAsTextFile(str(out))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    assert (out / "part-00000").read_text() == "1\n"
    assert sc.textFile(str(out)).collect() == ["1", "two", "(3, 4)", "five", "None"]
    with pytest.raises(OutputExistsError, match="already exists") as info:
        rdd.saveAsTextFile(str(out))
    assert isinstance(info.value, FileExistsError)


def test_save_as_text_file_empty_partitions_and_gzip(sc: Context, tmp_path: Path) -> None:
    sc.parallelize([], 2).saveAsTextFile(str(tmp_path / "empty"))
    assert (tmp_path / "empty" / "part-00001").read_bytes() == b""
    sc.parallelize(["a", "b"], 1).saveAsTextFile(
        str(tmp_path / "gz"), compressionCodecClass="org.apache.hadoop.io.compress.GzipCodec"
    )
    assert gzip.decompress((tmp_path / "gz" / "part-00000.gz").read_bytes()) == b"a\nb\n"
    assert sc.textFile(str(tmp_path / "gz")).collect() == ["a", "b"]
    with pytest.raises(ValueError, match="compressionCodecClass"):
        sc.parallelize([1]).saveAsTextFile(str(tmp_path / "bad"), compressionCodecClass="Snappy")


def test_pickle_file_round_trip(sc: Context, tmp_path: Path) -> None:
    records = [("k", i, {"v": [i]}) for i in range(25)]
    sc.parallelize(records, 3).saveAsPickleFile(str(tmp_path / "p"), batchSize=4)
    back = sc.pickleFile(str(tmp_path / "p"))
    assert back.getNumPartitions() == 3
    assert back.collect() == records


def test_pickle_file_format_matches_its_spec(sc_inline: Context, tmp_path: Path) -> None:
    sc_inline.parallelize([1, 2, 3], 1).saveAsPickleFile(str(tmp_path / "p"), batchSize=2)
    data = (tmp_path / "p" / "part-00000").read_bytes()
    assert data == PICKLE_HEADER.pack(b"DSPK", 1, 0) + pickle.dumps([1, 2], 5) + pickle.dumps([3], 5)
    golden = (GOLDEN / "pickle-part-v1.bin").read_bytes()
    assert decode_pickle_file(golden, "golden") == [1, 2, 3]


def test_text_and_pickle_files_on_every_storage(storage: StorageTarget) -> None:
    with Context("local[2]") as sc:
        target = storage.child(f"t-{uuid.uuid4().hex[:8]}")
        words = [f"w{i}" for i in range(50)]
        sc.parallelize(words, 3).saveAsTextFile(target.url + "/text", **target.storage_options)
        assert sc.textFile(target.url + "/text", **target.storage_options).collect() == words
        sc.parallelize(words, 2).saveAsPickleFile(target.url + "/pkl", **target.storage_options)
        assert sc.pickleFile(target.url + "/pkl", **target.storage_options).collect() == words
        fs = fsspec.filesystem(
            target.url.split("://")[0] if "://" in target.url else "file", **target.storage_options
        )
        assert fs.exists(target.url + "/text/_SUCCESS")


def test_text_file_on_memory_filesystem(sc: Context) -> None:
    url = f"memory://engine-{uuid.uuid4().hex}/in.txt"
    with fsspec.open(url, "wb") as f:
        f.write(b"m1\nm2\r\nm3")
    assert sc.textFile(url, 3).collect() == ["m1", "m2", "m3"]
    assert sc.textFile(url, use_unicode=False).collect() == [b"m1", b"m2", b"m3"]
