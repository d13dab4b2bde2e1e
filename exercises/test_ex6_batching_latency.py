"""习题 6 的检查：批处理参数文件有效，开启批处理时的启动参数正确，脚本两种情况都测量并报告 p50。

这里不比较两个 p50 的大小：延迟取决于机器和负载，检查只确认脚本能运行并报告两个数。
"""
import math
import re

import pytest

from checklib import call


@pytest.mark.exercise
def test_ex6_batching_latency(load_exercise, request, tmp_path, capsys):
    from server.batching import read_parameters
    from server.config import ConfigError

    ex = load_exercise("ex6_batching_latency")
    params = tmp_path / "batching.config"
    call(ex.write_batching_parameters, str(params))
    assert params.is_file() and "max_batch_size" in params.read_text(), (
        f"write_batching_parameters 应当在 {params} 写出批处理参数，至少给出 max_batch_size")
    try:
        parsed = read_parameters(str(params))
    except ConfigError as error:
        pytest.fail(f"服务器读不了这个批处理参数文件：{error}\n文件内容：\n{params.read_text()}", pytrace=False)
    assert parsed.max_batch_size > 1, f"max_batch_size 是 {parsed.max_batch_size}：一批只有一个样本就谈不上批处理了"

    workdir = tmp_path / "work"
    workdir.mkdir()
    plain = call(ex.server_flags, "/models/MLP", 8501, False, str(workdir))
    batched = call(ex.server_flags, "/models/MLP", 8501, True, str(workdir))
    assert not any(flag.startswith("--enable_batching") for flag in plain), f"不开启批处理时不应有 --enable_batching：{plain}"
    assert any(flag in ("--enable_batching", "--enable_batching=true") for flag in batched), (
        f"开启批处理时 server_flags 应当加上 --enable_batching，实际是 {batched}")
    files = [flag.split("=", 1)[1] for flag in batched if flag.startswith("--batching_parameters_file=")]
    assert files, f"开启批处理时 server_flags 应当加上 --batching_parameters_file=<文件>，实际是 {batched}"
    read_parameters(files[0])

    # 运行脚本（请求数很少，只为确认它能跑通），并记录它启动服务器时用的参数
    started = []
    real_serve = ex.serve

    def recording_serve(flags, *args, **kwargs):
        started.append(list(flags))
        return real_serve(flags, *args, **kwargs)

    ex.serve = recording_serve
    base = request.getfixturevalue("mnist").base_v1
    results = call(ex.main, ["--model_base_path", str(base), "--num_requests", "16", "--concurrency", "4"])
    printed = capsys.readouterr().out
    assert any("--enable_batching" in " ".join(flags) for flags in started), (
        f"main 没有启动开启批处理的服务器（启动参数：{started}）：两种情况都要测量")
    assert any("--enable_batching" not in " ".join(flags) for flags in started), (
        f"main 没有启动不开启批处理的服务器（启动参数：{started}）")
    assert isinstance(results, dict) and set(results) == {"without_batching", "with_batching"}, (
        f'main 应当返回 {{"without_batching": p50, "with_batching": p50}}，实际返回 {results!r}')
    for key, value in results.items():
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, f"{key} 的 p50 应当是正数（毫秒），实际是 {value!r}"
    numbers = re.findall(r"p50\s*=\s*([0-9.]+)\s*ms", printed)
    assert len(numbers) == 2, f"脚本应当打印两行 \"... p50 = X ms\"，实际打印了：\n{printed}"
