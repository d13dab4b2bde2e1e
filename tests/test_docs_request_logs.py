"""docs/request_logs.rst: its outputs are recorded again (docs/record_request_logs.py, with the session's
trained MLP) and compared with the committed ones; read_request_log.py runs in that recording."""
import pathlib
import re

import pytest

from docs.record_request_logs import OUT, record

pytestmark = pytest.mark.slow

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "request_logs.rst"


def digits_masked(text: str) -> str:
    # The predicted digits depend on the training run's float round-off; everything else is exact.
    return re.sub(r"预测的数字 \[[\d, ]+\]", "预测的数字 [#]", text)


def test_recorded_outputs_match_a_fresh_run(tmp_path, mlp_run):
    names = record(tmp_path, mlp_run.base)
    assert names == sorted(p.name for p in OUT.iterdir())
    for name in names:
        fresh, recorded = (tmp_path / name).read_text(), (OUT / name).read_text()
        if name == "read_request_log.txt":
            fresh, recorded = digits_masked(fresh), digits_masked(recorded)
        assert fresh == recorded, name
    # REST and gRPC each sent one request: two records, and the warm-up replayed both.
    assert "共 2 条记录" in (OUT / "read_request_log.txt").read_text()
    assert "Number of warmup records read: 2." in (OUT / "warmup_log.txt").read_text()


def test_the_page_shows_every_recorded_output_and_the_script():
    text = PAGE.read_text(encoding="utf-8")
    for name in sorted(p.name for p in OUT.iterdir()):
        assert f".. literalinclude:: _outputs_request_logs/{name}" in text, name
    assert ".. literalinclude:: ../code/zh/savedmodel/read_request_log.py" in text
    assert len(text) <= 4000 and "回答" not in text
