"""dstream's classes and docs/pyspark-compat.md against PySpark's public names (no PySpark needed).

tests/data/pyspark_public_names.json is captured from PySpark's source by
tools/capture_pyspark_names.py. Every captured name must be present on dstream's class or listed
in the doc as missing or differs; a name the doc calls same or differs must be present; the doc
lists every captured name and no other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dstream
from dstream import Context, StreamingContext
from tests.support.contexts import engine_context

ROOT = Path(__file__).resolve().parent.parent
NAMES = json.loads((ROOT / "tests" / "data" / "pyspark_public_names.json").read_text())["classes"]
DOC = (ROOT / "docs" / "pyspark-compat.md").read_text()
STATUSES = {"same", "differs", "missing"}
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<status>[a-z]+) \|(?P<note>.*)\|$")


def doc_rows() -> dict[tuple[str, str], str]:
    """(class, name) -> status, from the tables under each `## Class` heading."""
    rows: dict[tuple[str, str], str] = {}
    section = None
    for line in DOC.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        match = ROW.match(line)
        if match and section is not None:
            key = (section, match["name"])
            assert key not in rows, f"{key} is listed twice"
            rows[key] = match["status"]
    return rows


@pytest.fixture(scope="module")
def instances() -> Iterator[dict[str, Any]]:
    with engine_context(master="local-inline") as sc:
        ssc = StreamingContext(sc, 1)
        try:
            yield {
                "StreamingContext": ssc,
                "DStream": ssc.queueStream([[1]]),
                "StreamingListener": dstream.StreamingListener(),
                "SparkContext": sc,
                "RDD": sc.parallelize([1]),
                "Broadcast": sc.broadcast(1),
                "Accumulator": sc.accumulator(0),
                "AccumulatorParam": dstream.AccumulatorParam(),
            }
        finally:
            ssc.stop(stopSparkContext=False)


def test_the_data_file_covers_the_streaming_classes() -> None:
    assert set(NAMES) == {
        "StreamingContext",
        "DStream",
        "StreamingListener",
        "SparkContext",
        "RDD",
        "Broadcast",
        "Accumulator",
        "AccumulatorParam",
    }
    assert {"foreachRDD", "updateStateByKey", "reduceByKeyAndWindow"} <= set(NAMES["DStream"]["names"])


def test_every_pyspark_name_is_here_or_documented_as_missing_or_different(instances: dict[str, Any]) -> None:
    rows = doc_rows()
    undocumented = []
    for cls, entry in NAMES.items():
        present = set(dir(instances[cls]))
        for name in entry["names"]:
            status = rows.get((cls, name))
            if name not in present and status not in ("missing", "differs"):
                undocumented.append(f"{cls}.{name}")
    assert undocumented == [], (
        "absent from dstream and not listed as missing/differs in docs/pyspark-compat.md"
    )


def test_names_the_doc_calls_present_are_present_and_missing_ones_absent(instances: dict[str, Any]) -> None:
    wrong = []
    for (cls, name), status in doc_rows().items():
        present = name in dir(instances[cls])
        if status in ("same", "differs") and not present:
            wrong.append(f"{cls}.{name} is listed as {status} but dstream lacks it")
        if status == "missing" and present:
            wrong.append(f"{cls}.{name} is listed as missing but dstream has it")
        if status not in STATUSES:
            wrong.append(f"{cls}.{name} has status {status!r}, expected one of {sorted(STATUSES)}")
    assert wrong == []


def test_the_doc_lists_every_captured_name_and_no_other() -> None:
    listed = set(doc_rows())
    captured = {(cls, name) for cls, entry in NAMES.items() for name in entry["names"]}
    assert sorted(listed - captured) == [], "the doc lists names PySpark does not have"
    assert sorted(captured - listed) == [], "the checklist misses names of PySpark"


def test_dstream_exports_the_classes_the_doc_names() -> None:
    assert dstream.Context is Context and dstream.StreamingContext is StreamingContext
    for exported in ("Broadcast", "Accumulator", "AccumulatorParam", "RDD", "DStream", "StreamingListener"):
        assert exported in dstream.__all__
