"""The chapter's shape and the facts it states about TF Serving and this server.

The chapter proper (the pages a student reads in order: index's first toctree) is a handbook chapter: its main
page is short, opens with a quick start whose first prediction comes early, and holds nothing about this
repository's own server beyond a pointer to the appendix (repo_server.rst and the pages of its toctree).
Facts about TF Serving follow its sources: model_servers/server.cc (--port=0), http_server.cc (the status
mapping, the CORS preflight).
"""
import re

from server import cli, errors
from server.options import Options

from .serverproc import ROOT

DOCS = ROOT / "docs"


def toctree(page: str, caption: str | None = None) -> list[str]:
    """The entries of the toctree(s) of docs/<page>.rst (only the one with `caption` when given)."""
    text = (DOCS / f"{page}.rst").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^\.\. toctree::\n((?:   .*\n|\n)+)", text, flags=re.M):
        if caption is not None and f":caption: {caption}" not in block:
            continue
        found += re.findall(r"^   (\w+)$", block, flags=re.M)
    return found


CHAPTER = toctree("index", "TensorFlow Serving")
APPENDIX = toctree("repo_server")


def rst(page: str) -> str:
    return (DOCS / f"{page}.rst").read_text(encoding="utf-8")


def women_per_10k(text: str) -> float:
    return text.count("我们") / len(text) * 10_000


def test_chapter_proper_and_appendix():
    assert CHAPTER == ["serving", "request_logs", "rest_api", "exercises", "troubleshooting", "platforms"]
    assert toctree("index", "附录") == ["repo_server"]
    assert set(APPENDIX) == {"flags", "server_internals", "openapi", "benchmarks", "scale_out", "changes_2026"}
    assert rst("repo_server").splitlines()[2] == "附录：本仓库的服务器"


def test_serving_page_length_and_voice():
    # rst characters; a literalinclude is one directive line, so included listings are not counted
    text = rst("serving")
    assert len(text) <= 15_000, len(text)
    # the handbook's serving page: about 10 我们 per 10,000 characters
    assert women_per_10k(text) >= 9, women_per_10k(text)
    chapter = "".join(rst(p) for p in CHAPTER)
    assert len(chapter) <= 50_000, len(chapter)
    assert women_per_10k(chapter) >= 8, women_per_10k(chapter)
    # full-width parentheticals: at most half the 45 per 10,000 characters these pages had (the handbook: about 20)
    parentheticals = chapter.count("（") / len(chapter) * 10_000
    assert parentheticals <= 22.5, parentheticals


def parentheticals_per_10k(text: str) -> float:
    return text.count("（") / len(text) * 10_000


# The appendix's full-width parentheticals per 10,000 characters before its voice pass (counted as above):
# repo_server 12.1, flags 53.2, server_internals 60.0, openapi 69.0, benchmarks 72.5, scale_out 46.5,
# changes_2026 44.7; all pages together 55.2 (259 in 46,930 characters).
APPENDIX_PARENTHETICALS_BEFORE = {"repo_server": 12.1, "flags": 53.2, "server_internals": 60.0, "openapi": 69.0,
                                  "benchmarks": 72.5, "scale_out": 46.5, "changes_2026": 44.7}


def test_appendix_parentheticals_at_most_half_of_before():
    assert set(APPENDIX_PARENTHETICALS_BEFORE) == set(APPENDIX) | {"repo_server"}
    for page, before in APPENDIX_PARENTHETICALS_BEFORE.items():
        text = rst(page)
        assert text.count("（") == text.count("）"), page  # a rewrite left no half-open parenthetical
        assert parentheticals_per_10k(text) <= before / 2, (page, parentheticals_per_10k(text), before)
    appendix = "".join(rst(p) for p in APPENDIX_PARENTHETICALS_BEFORE)
    assert parentheticals_per_10k(appendix) <= 55.2 / 2, parentheticals_per_10k(appendix)
    # the parentheticals became sentences, not half-width parentheses or dashes
    assert len(re.findall(r"[\u4e00-\u9fff] ?\([^)]*[\u4e00-\u9fff]", appendix)) <= 3
    assert appendix.count("——") <= 3
    for phrase in ("目标达到", "记账尽量少"):
        assert phrase not in appendix, phrase


def test_scale_out_has_one_kubernetes_section():
    text = rst("scale_out")
    headings = re.findall(r"^(.+)\n[-^~=]{4,}$", text, flags=re.M)
    assert [h for h in headings if "Kubernetes" in h and "KServe" not in h and "Ray" not in h] == \
        ["Kubernetes：Deployment、Service 与 HPA"], headings
    k8s = text.split(".. _zh_hans_beyond_k8s:")[1].split(".. _zh_hans_beyond_kserve:")[0]
    assert "image: tensorflow/serving" in k8s and "deploy/Dockerfile" in k8s  # both images in the one section


def test_quick_start_comes_first_and_the_first_prediction_early():
    text = rst("serving")
    quick = text.index(".. _zh_hans_serving_quickstart:")
    first_output = text.index(".. literalinclude:: _outputs/client_py.txt")
    assert quick < first_output <= len(text) / 3, (quick, first_output, len(text))
    block = text[quick:first_output]
    for needed in ("终端 1", "终端 2", "前台", "train_and_export.py", "python client.py"):
        assert needed in block, needed
    assert "Ctrl+C" in text[first_output:first_output + 400]
    # nothing about installing or flags comes before it
    assert text.index(".. _zh_hans_serving_install:") > first_output
    # the handbook's SavedModel section is bridged before the quick start, by the handbook's own label
    assert text.index("zh_hans_savedmodel") < quick and "model.export" in text[:quick]
    # the flags reference lives in the appendix, after every page of the chapter proper
    assert all("server_help.txt" not in rst(p) and ".. _zh_hans_flags_common:" not in rst(p) for p in CHAPTER)
    assert "server_help.txt" in rst("flags")


def test_main_steps_show_the_signature_and_a_second_model_that_can_start():
    text = rst("serving")
    steps = text[:text.index(".. _zh_hans_serving_call:")]
    assert ".. literalinclude:: _outputs/saved_model_cli.txt" in steps
    starts = re.findall(r"(?:tensorflow_model_server|python -m server)((?:.*\\\n)*.*)", steps)
    names = [re.search(r"--model_name=(\w+)", s).group(1) for s in starts if "--model_name=" in s]
    assert "MLP_sequential" in names, names
    # the second model starts after the first is stopped (same port) or on other ports
    second = steps[steps.index("--model_name=MLP_sequential") - 600:steps.index("--model_name=MLP_sequential")]
    assert "Ctrl+C" in second


def test_no_project_talk_in_the_chapter_proper():
    for page in CHAPTER:
        text = rst(page)
        assert "回答" not in text, page
        for phrase in ("目标达到", "测试覆盖", "由测试运行", "tests/test_"):
            assert phrase not in text, (page, phrase)
    serving = rst("serving")
    assert serving.count("本仓库") <= 3, serving.count("本仓库")


def test_status_table_is_tf_servings_mapping():
    """rest_api.rst's table against server/errors.py's HTTP_STATUS (http_server.cc: ToHTTPStatusCode)."""
    table = rst("rest_api").split(".. _zh_hans_rest_errors:")[1].split(".. literalinclude::")[0]
    rows = re.findall(r"^\s+\* - (.+)\n\s+- (\d+(?: / \d+)?)\n", table, flags=re.M)
    seen = set()
    for codes, statuses in rows:
        names = re.findall(r"``([A-Z_]+)``", codes)
        numbers = [int(n) for n in statuses.split(" / ")]
        if " / " in statuses:
            pairs = zip(names, numbers, strict=True)
        else:
            pairs = ((name, numbers[0]) for name in names)
        for name, status in pairs:
            assert errors.HTTP_STATUS[name] == status, (name, status)
            seen.add(name)
    named_500 = {c for c, s in errors.HTTP_STATUS.items() if s == 500}
    assert set(errors.HTTP_STATUS) - {"OK"} - named_500 <= seen, set(errors.HTTP_STATUS) - seen
    assert errors.HTTP_STATUS["CANCELLED"] == 499 and "CANCELLED" in seen


def test_port_zero_turns_grpc_off_here_and_the_docs_say_tf_serving_refuses():
    args, given = cli.parse_args(["--rest_api_port=8501", "--port=0", "--model_name=m",
                                  "--model_base_path=/models/m"])
    opts = Options.from_args(args, given, check_paths=False)
    assert not opts.grpc_enabled and opts.rest_api_port == 8501
    args, given = cli.parse_args(["--rest_api_port=8501", "--model_name=m", "--model_base_path=/models/m"])
    assert Options.from_args(args, given, check_paths=False).grpc_enabled  # gRPC on 8500 by default
    differences = rst("repo_server").split(".. _zh_hans_repo_server_differences:")[1]
    assert "``--port=0``" in differences and "server.cc" in differences and "拒绝启动" in differences
    assert "拒绝启动" in rst("flags").split("``--port``")[1][:400]
    # no page says --port=0 simply means "no gRPC" without the difference
    for page in CHAPTER:
        for line in rst(page).splitlines():
            if "--port=0" in line:
                assert "TensorFlow Serving" in line, (page, line)


def test_preflight_is_answered_without_the_flag_and_the_docs_say_so():
    from server.rest.app import create_app

    client = create_app(api=None).test_client()  # a preflight never reaches the API
    r = client.options("/v1/models/MLP:predict", headers={"Origin": "http://localhost:8000"})
    assert (r.status_code, r.data) == (200, b"")
    assert "Access-Control-Allow-Origin" not in r.headers
    browser = rst("serving").split(".. _zh_hans_serving_browser:")[1]
    assert "无论开没开这个参数都会响应预检" in browser
    assert "http_server.cc" in rst("flags")


def test_peers_and_tools_are_described_as_they_are():
    bench = rst("benchmarks")
    assert "KServe 的 **Python** 模型服务器" in bench and "TensorFlow Serving 本身" in bench
    assert "没有这个问题" not in bench and "这里没有测过它" in bench
    text = "".join(rst(p) for p in CHAPTER + APPENDIX + ["repo_server"])
    assert "直接运行这个模型" not in text  # TF Lite and TF.js need a converter
    assert "本章的所有命令对这两个服务器都适用" not in text and "完全相同的" not in rst("serving")
    assert "gRPC 前端完成之前" not in rst("flags")
    # a fixed batch dimension only when every training batch had the same size
    faq = rst("troubleshooting")
    assert "如果训练时每个批次一样大" in faq and "固定成训练时的批次大小" not in faq


def test_windows_mount_is_quoted_and_platforms_say_what_ran_where():
    text = rst("platforms")
    mounts = re.findall(r"--mount\s+(\S+)", text.split(".. _zh_hans_platforms_windows:")[1]
                        .split(".. _zh_hans_platforms_macos:")[0])
    assert mounts and all(m.startswith('"type=bind') for m in mounts), mounts
    assert "Linux（x86-64）上运行" in text and "**没有** 在这些平台上运行过" in text
