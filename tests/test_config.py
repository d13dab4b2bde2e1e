"""server/config.py: the serving config from flags or a ModelServerConfig text file, and its validation."""
import pytest

from server.config import (
    ConfigError,
    ModelSettings,
    parse_config_text,
    read_config_file,
    settings_from_proto,
    single_model,
)


def make_base(tmp_path, *versions):
    base = tmp_path / "model"
    base.mkdir()
    for v in versions:
        (base / v).mkdir()
    return base


def settings(text, check_paths=False):
    return settings_from_proto(parse_config_text(text), check_paths=check_paths)


def test_single_model_flags(tmp_path):
    base = make_base(tmp_path, "1")
    (m,) = single_model("MLP", str(base))
    assert m == ModelSettings(name="MLP", base_path=str(base))
    assert (m.policy, m.num_versions, m.labels) == ("latest", 1, {})


@pytest.mark.parametrize("path, message", [
    ("", "Expected model MLP to have an absolute path or URI; got base_path()="),
    ("relative/dir", "Expected model MLP to have an absolute path"),
    ("/no/such/dir", "Could not find base path /no/such/dir for servable MLP"),
])
def test_single_model_bad_base_path(path, message):
    with pytest.raises(ConfigError) as e:
        single_model("MLP", path)
    assert message in e.value.message
    assert e.value.code == "INVALID_ARGUMENT"


def test_empty_base_path_folder_is_refused(tmp_path):
    base = make_base(tmp_path, "not-a-version")
    with pytest.raises(ConfigError, match="No versions of servable MLP found under base path"):
        single_model("MLP", str(base))


def test_fixture_config_file_parses(tmp_path, testdata):
    text = (testdata / "good_model_config.txt").read_text()
    # ${...} placeholders are the fixture's, not TF Serving's: substitute them here, as TF Serving's tests do.
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(testdata / "saved_model_half_plus_two_cpu"))
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}", str(testdata / "saved_model_half_plus_three"))
    path = tmp_path / "models.config"
    path.write_text(text)
    models = read_config_file(str(path))
    assert [m.name for m in models] == ["half_plus_two", "half_plus_three"]
    assert models[0].base_path == str(testdata / "saved_model_half_plus_two_cpu")


def test_policies_and_labels():
    models = settings("""
      model_config_list {
        config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
                 model_version_policy { latest { num_versions: 2 } } }
        config { name: "b" base_path: "/m/b" model_platform: "tensorflow"
                 model_version_policy { all {} } }
        config { name: "c" base_path: "/m/c" model_platform: "tensorflow"
                 model_version_policy { specific { versions: 1 versions: 3 } }
                 version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 } }
        config { name: "d" base_path: "/m/d" model_platform: "tensorflow"
                 model_version_policy { latest {} } }
      }""")
    a, b, c, d = models
    assert (a.policy, a.num_versions) == ("latest", 2)
    assert b.policy == "all"
    assert (c.policy, c.versions, c.labels) == ("specific", frozenset({1, 3}), {"stable": 1, "canary": 3})
    assert d.num_versions == 1   # TF Serving serves at least one
    on_disk = {1, 2, 3, 4}
    assert a.select(on_disk) == {3, 4}
    assert b.select(on_disk) == on_disk
    assert c.select(on_disk) == {1, 3}
    assert c.select({2, 3}) == {3}
    assert d.select(on_disk) == {4}


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'tensorflow' } "
     "config { name: 'a' base_path: '/y' model_platform: 'tensorflow' } }",
     "Illegal to list model a multiple times in config list"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'pytorch' } }",
     "Model a requests unsupported platform pytorch"),
    ("model_config_list { config { name: 'a' base_path: '/x' } }",
     "Illegal setting neither ModelServerConfig::model_type (deprecated) nor"),
    ("model_config_list { config { name: 'a' model_platform: 'tensorflow' } }",
     "Expected model a to have an absolute path or URI; got base_path()="),
    ("model_config_list { config { base_path: '/x' model_platform: 'tensorflow' } }",
     "has no name"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'tensorflow' "
     "model_version_policy { specific { } } } }",
     "specific lists no versions"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'tensorflow' "
     "model_version_policy { specific { versions: 1 } } version_labels { key: 'stable' value: 2 } } }",
     "label stable points at version 2, which the specific version policy [1] never serves"),
    ("model_config_list { }", "lists no models"),
    ("", "must contain a model_config_list"),
])
def test_invalid_configs(text, message):
    with pytest.raises(ConfigError) as e:
        settings(text)
    assert message in e.value.message


def test_text_format_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "bad.config"
    path.write_text("model_config_list { config { name: 'a' ")
    with pytest.raises(ConfigError, match=f"Invalid ModelServerConfig in {path}"):
        read_config_file(str(path))


def test_unreadable_config_file(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read model config file"):
        read_config_file(str(tmp_path / "missing.config"))
    binary = tmp_path / "binary.config"
    binary.write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        read_config_file(str(binary))


def test_placeholders_are_not_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_DIR", str(tmp_path))
    path = tmp_path / "m.config"
    path.write_text("model_config_list { config { name: 'a' base_path: '${SOME_DIR}' "
                    "model_platform: 'tensorflow' } }")
    with pytest.raises(ConfigError, match="absolute path"):
        read_config_file(str(path))
