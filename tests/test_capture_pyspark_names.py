"""tools/capture_pyspark_names.py on a miniature PySpark source tree (the real one is not installed in CI)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "capture_pyspark_names.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("capture_pyspark_names", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_pyspark(root: Path) -> Path:
    pkg = root / "python" / "pyspark"
    files = {
        "version.py": '__version__: str = "9.9.9"\n',
        "streaming/context.py": (
            "class StreamingContext:\n    def start(self): ...\n    def _jssc(self): ...\n"
        ),
        "streaming/dstream.py": (
            "class DStream:\n    def __init__(self):\n        self.is_cached = False\n        self._jd = 1\n"
            "    def map(self, f): ...\n    @property\n    def _slideDuration(self): ...\n"
        ),
        "streaming/listener.py": "class StreamingListener:\n    def onBatchCompleted(self, e): ...\n",
        "core/context.py": (
            "class SparkContext:\n    PACKAGE_EXTENSIONS: tuple = ()\n    _lock = None\n"
            "    def __init__(self):\n        self._do_init()\n"
            "    def _do_init(self):\n        self.master = 'local'\n        self.appName = 'x'\n"
            "    @property\n    def version(self): ...\n"
        ),
        "core/rdd.py": "class RDD:\n    def collect(self): ...\n\nclass Other:\n    def nope(self): ...\n",
        "core/broadcast.py": "class Broadcast:\n    def destroy(self, blocking=False): ...\n",
        "accumulators.py": (
            "class Accumulator:\n    def add(self, t): ...\n\n"
            "class AccumulatorParam:\n    def zero(self, v): ...\n"
        ),
    }
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_captures_public_methods_properties_and_attributes(tmp_path: Path) -> None:
    tool = load_tool()
    fake_pyspark(tmp_path)
    data = tool.capture(tool.package_dir(str(tmp_path)))  # a checkout: python/pyspark inside
    classes = data["classes"]
    assert data["pyspark_version"] == "9.9.9"
    assert classes["DStream"]["names"] == ["is_cached", "map"]
    assert classes["SparkContext"]["names"] == ["PACKAGE_EXTENSIONS", "appName", "master", "version"]
    assert classes["RDD"] == {"module": "pyspark", "names": ["collect"]}
    assert classes["StreamingContext"] == {"module": "pyspark.streaming", "names": ["start"]}


def test_writes_the_data_file_from_a_package_directory(tmp_path: Path) -> None:
    tool = load_tool()
    pkg = fake_pyspark(tmp_path)
    out = tmp_path / "names.json"
    tool.main([str(pkg), "--out", str(out)])
    assert json.loads(out.read_text())["classes"]["Accumulator"]["names"] == ["add"]


def test_refuses_a_directory_without_pyspark(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no pyspark sources there"):
        load_tool().package_dir(str(tmp_path))
