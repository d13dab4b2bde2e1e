"""The chapter (docs/, conf.py): it builds with warnings as errors, its highlighted lines are the lines the text
talks about, Chinese search works, and every recorded output it shows matches a fresh run of the code.

What "matches" means, per recorded file (COMPARE below):
  exact     byte-for-byte equal (server --help, the config file, status, metadata, errors, half_plus_two
            answers, which are deterministic);
  training  the same lines with every number masked (loss, timings and accuracy vary with float round-off
            between machines), and the test accuracy is at least 0.9 in both the recorded and the fresh run;
  client_py the data-source line and the true labels are equal; the predicted digits have the same format
            and agree with the recorded ones on at least 8 of the 10 images;
  client_js the ASCII art is equal (it depends only on digit_5.png); the guessed digit is equal and its
            probability within 0.05;
  json      the curl line and HTTP status are equal, the answers are equal as JSON (metadata and status list
            signatures and versions from a map, in no fixed order);
  probs     the curl line and HTTP status are equal; the answer has the same structure, its numbers are
            within 0.05 (a trained model's probabilities);
  tf_error  the same lines with every number, Keras layer name and graph node masked (which unrestored
            variable TensorFlow trips over first varies from run to run);
  log       the same lines with every number masked, in any order (the server's and the HTTP server's
            processes write to one log; times, process ids vary).
The pictures (docs/_static/predictions.png, web_page.png) are made by `python docs/record_outputs.py` too; the
fresh run here makes the text outputs only (tests/test_web.py drives the page itself).
"""
import json
import pathlib
import re
import subprocess
import sys

import pytest
from sphinx.directives.code import LiteralIncludeReader
from sphinx.util import parselinenos

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OUTPUTS = DOCS / "_outputs"
sys.path.insert(0, str(DOCS))

import record_outputs  # noqa: E402

# For each file shown with emphasize-lines: the snippets the emphasized lines must hold, one per line,
# and no other line may be emphasized.
EMPHASIS = {
    "code/zh/savedmodel/train_and_export.py": ['name="call"', "input_signature="],
    "code/zh/savedmodel/keras_sequential.py": ["model.export(", "input_signature="],
}

CHINESE_TERMS = ["部署", "热更新", "签名", "客户端", "服务器", "版本", "批处理"]


def literalincludes():
    """Every literalinclude in docs/*.rst: (rst file, included path, {option: value})."""
    found = []
    for rst in sorted(DOCS.glob("*.rst")):
        lines = rst.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)\.\. literalinclude::\s*(\S+)\s*$", line)
            if not m:
                continue
            options = {}
            for option_line in lines[i + 1:]:
                o = re.match(r"^\s+:([\w-]+):\s*(.*)$", option_line)
                if not o:
                    break
                options[o.group(1)] = o.group(2).strip()
            found.append((rst, (rst.parent / m.group(2)).resolve(), options))
    return found


@pytest.fixture(scope="module")
def built_html(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html",
                           "-c", str(ROOT), str(DOCS), str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"sphinx failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return out


def test_docs_build_with_warnings_as_errors(built_html):
    for page in ["index", "serving", "rest_api", "exercises", "troubleshooting", "platforms", "repo_server", "flags",
                 "changes_2026", "scale_out", "benchmarks", "openapi", "server_internals"]:
        assert (built_html / f"{page}.html").is_file(), page
    html = (built_html / "serving.html").read_text(encoding="utf-8")
    assert 'lang="zh-CN"' in html
    assert '<span class="hll">' in html  # the emphasized export lines are highlighted


def test_search_index_has_chinese_words(built_html):
    text = (built_html / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text[text.index("(") + 1: text.rindex(")")])
    terms = index["terms"]
    missing = [t for t in CHINESE_TERMS if t not in terms]
    assert not missing, f"Chinese terms not in the search index: {missing}"
    # jieba splits sentences into words: no term is a whole line of Chinese text
    assert max(len(t) for t in terms if re.fullmatch(r"[\u4e00-\u9fff]+", t)) <= 8


def test_emphasized_lines_are_the_export_lines():
    includes = {}
    for rst, path, options in literalincludes():
        if "emphasize-lines" in options:
            includes.setdefault(path.relative_to(ROOT).as_posix(), []).append((rst, options))
    assert set(includes) == set(EMPHASIS), f"emphasize-lines used on {sorted(includes)}"

    class Config:
        source_encoding = "utf-8-sig"

    for relpath, snippets in EMPHASIS.items():
        for rst, options in includes[relpath]:
            reader_options = {k: v for k, v in options.items() if k in ("pyobject", "lines", "start-after",
                                                                      "end-before", "start-at", "end-at")}
            text, _ = LiteralIncludeReader(str(ROOT / relpath), reader_options, Config()).read()
            shown = text.splitlines()
            emphasized = {shown[i] for i in parselinenos(options["emphasize-lines"], len(shown))}
            wanted = {line for line in shown if any(s in line for s in snippets)}
            assert len(wanted) == len(snippets), f"{relpath}: expected one line per snippet {snippets}, got {wanted}"
            assert emphasized == wanted, (
                f"{rst.name}: emphasize-lines {options['emphasize-lines']} of {relpath} highlight\n"
                f"{sorted(emphasized)}\nbut the lines with {snippets} are\n{sorted(wanted)}")


def test_custom_model_export_listing_is_emphasized():
    # the chapter must keep showing the export with its emphasis (the test above only checks what exists)
    shown = [(rst.name, o) for rst, p, o in literalincludes()
             if p == ROOT / "code/zh/savedmodel/train_and_export.py" and "emphasize-lines" in o]
    assert [name for name, _ in shown] == ["serving.rst"]


def test_every_recorded_output_is_shown_and_recorded():
    shown = {p.name for _, p, _ in literalincludes() if p.parent == OUTPUTS}
    recorded = {p.name for p in OUTPUTS.iterdir()}
    assert shown == recorded, f"shown but not recorded: {shown - recorded}; recorded but not shown: {recorded - shown}"
    names = set(record_outputs.REST_EXAMPLES)
    assert {n[:-4] for n in recorded if n.endswith(".txt")} >= names


def test_flag_table_names_real_server_flags():
    from server.flags import NOT_HONOURED

    help_text = (OUTPUTS / "server_help.txt").read_text(encoding="utf-8")
    page = (DOCS / "flags.rst").read_text(encoding="utf-8")  # the common flags' table, first on the flags page
    table = page.split(".. _zh_hans_flags_common:")[1].split("\n全部参数\n")[0]
    rows = re.findall(r"^\s+\* - ``(--\w+)``\n\s+- (.*(?:\n\s{8}\S.*)*)", table, flags=re.M)
    assert len(rows) >= 12
    for flag, meaning in rows:
        assert re.search(rf"{flag}\b", help_text), f"{flag} is in the chapter's table but not in --help"
        # Every tensorflow_model_server flag is accepted; the chapter says so of those with no effect yet.
        assert "报错退出" not in meaning, f"the chapter says {flag} is refused; every flag is accepted"
        said_no_effect = "暂无作用" in meaning
        assert said_no_effect == (flag[2:] in NOT_HONOURED), f"the chapter is wrong about whether {flag} has effect"


# ---------------------------------------------------------------- recorded outputs against a fresh run

NUMBER = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?")

COMPARE = {
    "train_and_export.txt": "training",
    "keras_sequential.txt": "training",
    "client_py.txt": "client_py",
    "client_grpc.txt": "client_py",
    "client_js.txt": "client_js",
    "predict_sequential.txt": "probs",
    "metadata_mlp.txt": "json",
    "status_mlp.txt": "json",
    "status_half_plus_two.txt": "json",
    "startup_log.txt": "log",
    "error_could_not_find_variable.txt": "tf_error",
    "saved_by_tf_server.txt": "tf_error",
}


def compare_training(recorded, fresh):
    mask = lambda text: [NUMBER.sub("#", line) for line in text.splitlines()]  # noqa: E731
    assert mask(recorded) == mask(fresh)
    for text in (recorded, fresh):
        accuracy = float(re.search(r"^test accuracy: ([\d.]+)$", text, re.M).group(1))
        assert accuracy >= 0.9


def compare_tf_error(recorded, fresh):
    def mask(text):
        text = re.sub(r"\{\{node [^}]*\}\}", "{{node #}}", text)
        text = re.sub(r"sequential[\w/]*", "<layer>", text)
        return [NUMBER.sub("#", line) for line in text.splitlines()]
    assert mask(recorded) == mask(fresh)


def compare_log(recorded, fresh):
    mask = lambda text: sorted(NUMBER.sub("#", line) for line in text.splitlines())  # noqa: E731
    assert mask(recorded) == mask(fresh)


def compare_client_py(recorded, fresh):
    r, f = recorded.splitlines(), fresh.splitlines()
    assert len(r) == len(f) == 3
    assert r[0] == f[0] and r[2] == f[2]  # data source, true labels
    digits = lambda line: re.fullmatch(r"\[(\d(?: \d){9})\]", line).group(1).split()  # noqa: E731
    agree = sum(a == b for a, b in zip(digits(r[1]), digits(f[1])))
    assert agree >= 8, (r[1], f[1])


def compare_client_js(recorded, fresh):
    r, f = recorded.splitlines(), fresh.splitlines()
    assert r[:-1] == f[:-1]  # the ASCII art
    guess = re.compile(r"^我们猜这个数字是(\d)，概率是([\d.e-]+)$")
    (rd, rp), (fd, fp) = guess.match(r[-1]).groups(), guess.match(f[-1]).groups()
    assert rd == fd and abs(float(rp) - float(fp)) <= 0.05


def compare_json(recorded, fresh):
    r, f = recorded.split("\n", 2), fresh.split("\n", 2)
    assert r[:2] == f[:2]

    def versions_sorted(doc):
        if isinstance(doc, dict) and "model_version_status" in doc:
            doc["model_version_status"].sort(key=lambda s: int(s["version"]))
        return doc

    assert versions_sorted(json.loads(r[2])) == versions_sorted(json.loads(f[2]))


def compare_probs(recorded, fresh):
    r, f = recorded.split("\n", 2), fresh.split("\n", 2)
    assert r[:2] == f[:2]

    def close(a, b):
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
        return abs(a - b) <= 0.05

    assert close(json.loads(r[2]), json.loads(f[2]))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    record_outputs.record(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in OUTPUTS.iterdir()))
def test_recorded_output_matches_a_fresh_run(name, fresh):
    if name == "client_js.txt" and record_outputs.node_ready():
        pytest.skip(f"cannot run the Node.js client: {record_outputs.node_ready()}")
    recorded = (OUTPUTS / name).read_text(encoding="utf-8")
    assert (fresh / name).is_file(), f"{name} was not produced by record_outputs.record()"
    new = (fresh / name).read_text(encoding="utf-8")
    how = COMPARE.get(name, "exact")
    if how == "exact":
        assert recorded == new, f"{name} differs from a fresh run (re-record: python docs/record_outputs.py)"
    else:
        globals()[f"compare_{how}"](recorded, new)


# ---------------------------------------------------------------- pictures, facts and wording

PICTURES = {"predictions.png": (800, 136), "web_page.png": (720, 560)}


def test_recorded_pictures_are_shown(built_html):
    import matplotlib.image

    text = (DOCS / "serving.rst").read_text(encoding="utf-8")
    for name, (width, height) in PICTURES.items():
        assert f"_static/{name}" in text, f"serving.rst does not show {name}"
        image = matplotlib.image.imread(DOCS / "_static" / name)
        assert image.shape[:2] == (height, width), (name, image.shape)
        assert image.std() > 0.05, f"{name} is (nearly) blank"
        assert (built_html / "_images" / name).is_file() or (built_html / "_static" / name).is_file()


def test_error_table_full_queue_is_503_unavailable():
    table = (DOCS / "rest_api.rst").read_text(encoding="utf-8").split(".. _zh_hans_rest_errors:")[1]
    rows = re.findall(r"^\s+\* - (.+)\n\s+- (\d+(?: / \d+)?)\n\s+-(.*)$", table, flags=re.M)
    by_code = {code.strip(): example for code, _, example in rows}
    assert "批处理队列已满" in by_code["``UNAVAILABLE``"]
    assert "批处理队列已满" not in by_code["``RESOURCE_EXHAUSTED``"]
    statuses = {code.strip(): status for code, status, _ in rows}
    assert statuses["``UNAVAILABLE``"] == "503"


def test_chapter_voice():
    """HTTP responses are 响应 (returned: 返回), never 回答; no "说 ... 的 REST API" calque; the reader is 你."""
    text = "".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.rst"))
    assert "回答" not in text  # every page, the appendix included
    assert not re.search(r"说(同样|的是|相同)[^。]*API", text)
    assert text.count("我们") >= 10 and text.count("你") >= 20
    assert "非常接近" not in text


def test_no_response_is_called_an_answer_in_the_built_pages(built_html):
    """Included files (code, recorded outputs) land in the pages too: 回答 appears in none of them."""
    pages = sorted(built_html.glob("*.html"))
    assert len(pages) >= 13
    found = [p.name for p in pages if "回答" in p.read_text(encoding="utf-8")]
    assert not found, found


def test_every_toctree_page_exists_and_every_page_is_listed():
    # index.rst: the chapter proper, then the appendix repo_server.rst, whose own toctree lists its pages
    listed = [name for page in ("index", "repo_server")
              for name in re.findall(r"^   (\w+)$", (DOCS / f"{page}.rst").read_text(encoding="utf-8"), flags=re.M)]
    assert len(listed) == len(set(listed)), listed
    pages = sorted(p.stem for p in DOCS.glob("*.rst") if p.stem != "index")
    assert sorted(listed) == pages
