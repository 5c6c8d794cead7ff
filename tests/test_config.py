"""server/config.py: layering of defaults, config.yml, override file, env and kwargs."""
import dataclasses
from pathlib import Path

import pytest
import yaml

from server.config import REPO_DIR, Settings, load_settings, parse_size

FIELDS = {f.name for f in dataclasses.fields(Settings)}
DEFAULTS = Settings()


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def files(tmp_path):
    """A config.yml and an override.yml in tmp_path, plus a missing path."""
    return {"config": tmp_path / "config.yml", "override": tmp_path / "override.yml",
            "missing": tmp_path / "nope.yml"}


def load(files, env=None, **explicit):
    return load_settings(env=env or {}, config_file=files["config"],
                         override_file=files["override"], **explicit)


# ---- precedence --------------------------------------------------------------

def test_defaults_when_no_files_and_no_env(files):
    assert load(files) == DEFAULTS


def test_config_file_overrides_defaults(files):
    write_yaml(files["config"], {"bucket_name": "fromconfig", "sn_port": 7000})
    s = load(files)
    assert s.bucket_name == "fromconfig"
    assert s.sn_port == 7000
    assert s.dn_port == DEFAULTS.dn_port


def test_override_file_beats_config_file(files):
    write_yaml(files["config"], {"bucket_name": "fromconfig", "sn_port": 7000})
    write_yaml(files["override"], {"bucket_name": "fromoverride"})
    s = load(files)
    assert s.bucket_name == "fromoverride"
    assert s.sn_port == 7000              # untouched by the override file


def test_env_beats_override_file(files):
    write_yaml(files["config"], {"bucket_name": "fromconfig"})
    write_yaml(files["override"], {"bucket_name": "fromoverride", "log_level": "DEBUG"})
    s = load(files, env={"BUCKET_NAME": "fromenv"})
    assert s.bucket_name == "fromenv"
    assert s.log_level == "DEBUG"


def test_env_names_are_upper_case(files):
    s = load(files, env={"bucket_name": "lower", "ROOT_DIR": "/data"})
    assert s.bucket_name == DEFAULTS.bucket_name
    assert s.root_dir == "/data"


def test_explicit_beats_env(files):
    write_yaml(files["config"], {"bucket_name": "fromconfig"})
    write_yaml(files["override"], {"bucket_name": "fromoverride"})
    s = load(files, env={"BUCKET_NAME": "fromenv"}, bucket_name="explicit")
    assert s.bucket_name == "explicit"


def test_full_chain_each_layer_wins_its_own_setting(files):
    write_yaml(files["config"], {"sn_port": 1, "dn_port": 1, "target_dn_count": 1,
                                 "max_task_count": 1})
    write_yaml(files["override"], {"dn_port": 2, "target_dn_count": 2, "max_task_count": 2})
    s = load(files, env={"TARGET_DN_COUNT": "3", "MAX_TASK_COUNT": "3"}, max_task_count=4)
    assert (s.sn_port, s.dn_port, s.target_dn_count, s.max_task_count) == (1, 2, 3, 4)
    assert s.aws_lambda_max_invoke == DEFAULTS.aws_lambda_max_invoke


def test_missing_files_are_ignored(files):
    s = load_settings(env={}, config_file=files["missing"], override_file=files["missing"])
    assert s == DEFAULTS


def test_null_in_yaml_keeps_default(files):
    write_yaml(files["config"], {"root_dir": None, "sn_port": None})
    s = load(files)
    assert s.root_dir == DEFAULTS.root_dir
    assert s.sn_port == DEFAULTS.sn_port


def test_empty_yaml_file_is_fine(files):
    files["config"].write_text("")
    assert load(files) == DEFAULTS


def test_non_mapping_yaml_is_rejected(files):
    files["config"].write_text("- a\n- b\n")
    with pytest.raises(ValueError):
        load(files)


def test_override_path_from_env(tmp_path):
    config = write_yaml(tmp_path / "config.yml", {"bucket_name": "fromconfig"})
    other = write_yaml(tmp_path / "elsewhere.yml", {"bucket_name": "fromenvoverride"})
    s = load_settings(env={"CONFIG_OVERRIDE_PATH": str(other)}, config_file=config)
    assert s.bucket_name == "fromenvoverride"


def test_config_dir_from_env(tmp_path):
    write_yaml(tmp_path / "config.yml", {"bucket_name": "indir"})
    write_yaml(tmp_path / "override.yml", {"log_level": "WARNING"})
    s = load_settings(env={"CONFIG_DIR": str(tmp_path)})
    assert s.bucket_name == "indir"
    assert s.log_level == "WARNING"


def test_settings_are_frozen_and_replace_works(files):
    s = load(files)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.bucket_name = "x"
    t = s.replace(bucket_name="x")
    assert t.bucket_name == "x" and s.bucket_name == DEFAULTS.bucket_name


# ---- sizes -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("4m", 4 * 1024**2),
    ("4M", 4 * 1024**2),
    ("4mb", 4 * 1024**2),
    ("1g", 1024**3),
    ("100k", 100 * 1024),
    ("2t", 2 * 1024**4),
    ("2.5m", int(2.5 * 1024**2)),
    ("1024", 1024),
    (" 1m ", 1024**2),
    (1024, 1024),
    (0, 0),
    (3.0, 3),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected
    assert isinstance(parse_size(text), int)


@pytest.mark.parametrize("bad", ["", "m", "lots", "4x"])
def test_parse_size_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_sizes_from_yaml_and_env(files):
    write_yaml(files["config"], {"max_chunk_size": "8m", "min_chunk_size": 2048,
                                 "metadata_mem_cache_size": "1g"})
    s = load(files, env={"CHUNK_MEM_CACHE_SIZE": "100k", "MAX_REQUEST_SIZE": "2.5m"})
    assert s.max_chunk_size == 8 * 1024**2
    assert s.min_chunk_size == 2048
    assert s.metadata_mem_cache_size == 1024**3
    assert s.chunk_mem_cache_size == 100 * 1024
    assert s.max_request_size == int(2.5 * 1024**2)


def test_numbers_from_env_are_typed(files):
    s = load(files, env={"SN_PORT": "5200", "S3_SYNC_INTERVAL": "0.2", "FLUSH_TIMEOUT": "3"})
    assert s.sn_port == 5200 and isinstance(s.sn_port, int)
    assert s.s3_sync_interval == 0.2 and isinstance(s.s3_sync_interval, float)
    assert s.flush_timeout == 3.0 and isinstance(s.flush_timeout, float)


# ---- bools and lists ---------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("false", False), ("False", False), ("0", False), ("no", False), ("off", False), ("", False),
    ("true", True), ("TRUE", True), ("1", True), ("yes", True),
])
def test_bool_from_env(files, text, expected):
    s = load(files, env={"ALLOW_NOAUTH": text, "DEFAULT_PUBLIC": text})
    assert s.allow_noauth is expected
    assert s.default_public is expected


def test_bool_from_yaml(files):
    write_yaml(files["config"], {"allow_noauth": False, "default_public": "true"})
    s = load(files)
    assert s.allow_noauth is False
    assert s.default_public is True


def test_env_false_beats_yaml_true(files):
    write_yaml(files["config"], {"allow_any_bucket_write": True})
    assert load(files, env={"ALLOW_ANY_BUCKET_WRITE": "false"}).allow_any_bucket_write is False


@pytest.mark.parametrize("text, expected", [
    ("a,b", ["a", "b"]),
    ("a", ["a"]),
    (" a , b ,", ["a", "b"]),
    ("", []),
    ("http://127.0.0.1:6101,http://127.0.0.1:6102",
     ["http://127.0.0.1:6101", "http://127.0.0.1:6102"]),
])
def test_list_from_env(files, text, expected):
    s = load(files, env={"TOP_LEVEL_DOMAINS": text, "DN_URLS": text})
    assert s.top_level_domains == expected
    assert s.dn_urls == expected


def test_list_from_yaml(files):
    write_yaml(files["config"], {"top_level_domains": ["/home", "/shared"]})
    assert load(files).top_level_domains == ["/home", "/shared"]


def test_list_defaults_are_not_shared():
    a, b = Settings(), Settings()
    assert a.dn_urls == [] and a.dn_urls is not b.dn_urls


# ---- the repo's own config.yml ----------------------------------------------

REPO_CONFIG = REPO_DIR / "admin" / "config" / "config.yml"


def test_repo_config_keys_are_all_settings():
    data = yaml.safe_load(REPO_CONFIG.read_text())
    assert isinstance(data, dict) and data
    unknown = sorted(set(data) - FIELDS)
    assert not unknown, f"keys in config.yml that are not Settings fields: {unknown}"


def test_repo_config_loads(tmp_path):
    s = load_settings(env={}, config_file=REPO_CONFIG, override_file=tmp_path / "none.yml")
    assert s.bucket_name == "hsdstest"
    assert s.max_chunk_size == 4 * 1024**2
    assert s.min_chunk_size == 1024**2
    assert s.max_request_size == 100 * 1024**2
    assert s.metadata_mem_cache_size == 128 * 1024**2
    assert s.allow_noauth is True and s.default_public is False
    assert s.root_dir == "" and s.top_level_domains == []
    assert s.cors_domain == "*"


def test_repo_config_agrees_with_dataclass_defaults(tmp_path):
    """config.yml documents HSDS's defaults; where it gives a value it matches Settings'."""
    data = yaml.safe_load(REPO_CONFIG.read_text())
    s = load_settings(env={}, config_file=REPO_CONFIG, override_file=tmp_path / "none.yml")
    differ = {k: (getattr(s, k), getattr(DEFAULTS, k))
              for k, v in data.items() if v is not None and getattr(s, k) != getattr(DEFAULTS, k)}
    assert not differ
