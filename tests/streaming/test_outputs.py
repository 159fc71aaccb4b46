"""foreachRDD, pprint and saveAsTextFiles."""

from __future__ import annotations

from datetime import datetime

import fsspec

from tests.streaming.conftest import run

NUMS = [[3, 1, 2], [], list(range(15))]


def test_foreach_rdd_with_one_or_two_arguments(ssc, clock):
    one, two = [], []
    s = ssc.queueStream(NUMS)
    s.foreachRDD(lambda rdd: one.append(sorted(rdd.collect())))

    class Sink:
        def write(self, time, rdd):  # a bound method: (time, rdd)
            two.append((time, rdd.count()))

    s.foreachRDD(Sink().write)
    run(ssc, clock, 3)
    assert one == [sorted(b) for b in NUMS]
    assert two == [(datetime.fromtimestamp(t), len(b)) for t, b in zip((1, 2, 3), NUMS, strict=True)]


def test_pprint_format(ssc, clock, capsys):
    ssc.queueStream(NUMS).pprint(num=10)
    ssc.queueStream([[("k", 1)]]).pprint(1)
    run(ssc, clock, 3)
    expected = []
    dashes = "-------------------------------------------"
    for second, batch in zip((1, 2, 3), NUMS, strict=True):
        expected += [dashes, f"Time: {datetime.fromtimestamp(second)}", dashes]
        expected += [str(x) for x in batch[:10]]
        if len(batch) > 10:
            expected.append("...")
        expected.append("")
        pairs = [("k", 1)] if second == 1 else []
        expected += [dashes, f"Time: {datetime.fromtimestamp(second)}", dashes, *map(str, pairs), ""]
    assert capsys.readouterr().out.splitlines() == expected


def test_save_as_text_files(ssc, clock, storage):
    prefix = storage.child("out").url
    s = ssc.queueStream(NUMS)
    s.saveAsTextFiles(prefix, **storage.storage_options)
    s.map(lambda x: x * 2).saveAsTextFiles(prefix + "-double", "txt", **storage.storage_options)
    run(ssc, clock, 3)
    fs = storage.filesystem()
    for second, batch in zip((1, 2, 3), NUMS, strict=True):
        for path, want in (
            (f"{prefix}-{second * 1000}", batch),
            (f"{prefix}-double-{second * 1000}.txt", [x * 2 for x in batch]),
        ):
            names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
            assert names == ["_SUCCESS", "part-00000", "part-00001"]
            lines = []
            for name in names[1:]:
                with fsspec.open(f"{path}/{name}", "r", **storage.storage_options) as f:
                    lines += f.read().splitlines()
            assert sorted(lines) == sorted(str(x) for x in want)
