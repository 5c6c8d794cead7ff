"""Every setting in one place.

Precedence, lowest first: the defaults below, `admin/config/config.yml`, an
optional override file (CONFIG_OVERRIDE_PATH, else `admin/config/override.yml`
when present), then environment variables named as the setting in upper case
(ROOT_DIR, BUCKET_NAME, ...). The names are HSDS's. Read once at start-up into
one frozen Settings object that is passed down.
"""
import ctypes
import dataclasses
import os
import typing
from pathlib import Path

import yaml

REPO_DIR = Path(__file__).resolve().parent.parent
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclasses.dataclass(frozen=True)
class Settings:
    # storage
    root_dir: str = ""                 # POSIX storage when set; buckets are folders in it
    bucket_name: str = "hsdstest"      # default bucket
    aws_s3_gateway: str = ""           # S3 endpoint (used when root_dir is empty)
    aws_region: str = "us-east-1"
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    # storage faults: S3 calls are retried by botocore (this mode, this many attempts in
    # all) and bounded by these timeouts; one storage operation, retries included, by
    # storage_timeout (below the SN's 60 s wait for a DN); a failure then answers 503
    s3_connect_timeout: float = 10.0
    s3_read_timeout: float = 30.0
    s3_max_attempts: int = 5
    s3_retry_mode: str = "standard"
    storage_timeout: float = 45.0
    allow_any_bucket_read: bool = True
    allow_any_bucket_write: bool = True
    allowed_buckets: list = dataclasses.field(default_factory=list)  # empty: any bucket
    # processes
    bind_address: str = "127.0.0.1"
    sn_port: int = 5101
    dn_port: int = 6101
    target_dn_count: int = 4
    dn_urls: list = dataclasses.field(default_factory=list)  # SN: its DNs, in id order
    dn_service: str = ""                # SN without dn_urls: "name:port" resolving to every
                                        # DN (waits for target_dn_count of them; sn/nodes.py)
    node_id: str = ""                   # set by the launcher for each process
    log_level: str = "INFO"
    # auth
    password_file: str = ""
    groups_file: str = ""
    admin_user: str = "admin"
    admin_group: str = ""
    allow_noauth: bool = True
    default_public: bool = False
    # limits
    max_request_size: int = 100 * 1024**2
    max_json_body: int = 16 * 1024**2   # JSON bodies other than dataset values; 0: no own limit
    min_chunk_size: int = 1024**2
    max_chunk_size: int = 4 * 1024**2
    max_chunks_per_folder: int = 0
    max_chunks_per_request: int = 1000
    domain_req_max_objects_limit: int = 500
    max_task_count: int = 100
    # caches and write-back
    metadata_mem_cache_size: int = 128 * 1024**2
    chunk_mem_cache_size: int = 128 * 1024**2
    s3_sync_interval: float = 1.0
    s3_age_time: float = 1.0
    flush_timeout: float = 10.0
    # presentation
    server_name: str = "Highly Scalable Data Service (HSDS)"
    greeting: str = "Welcome to HSDS!"
    about: str = "HSDS is a webservice for HDF data"
    hsds_endpoint: str = ""
    cors_domain: str = "*"
    top_level_domains: list = dataclasses.field(default_factory=list)
    direct_reads: str = "auto"         # SN reads clean chunks itself: auto (POSIX)|always|never
    # serverless
    lambda_password: str = "lambda"    # the one-function server's own user's (its name) password
    aws_lambda_chunkread_function: str = ""
    aws_lambda_gateway: str = ""
    aws_lambda_threshold: int = 4
    aws_lambda_max_invoke: int = 1000
    aws_lambda_batch_bytes: int = 4 * 1024 * 1024   # result bytes per invocation (< 6 MB base64)
    aws_lambda_offload: str = "auto"      # auto: the cost model picks; always | never
    cloudwatch_emf: bool = False          # one EMF record per offload decision (offload/emf.py)
    aws_lambda_explore: float = 0.02      # share of eligible reads run on the plan not picked
    # the cost model's start-up constants (offload/cost.py; calibrated while running)
    aws_lambda_t_dn_ms: float = 40.0      # one S3 GET's latency from a DN
    aws_lambda_p_dn: int = 64             # GETs a DN runs at once (its S3 connections)
    aws_lambda_dn_link_mb_s: float = 1000.0   # a DN's answers to the SN
    aws_lambda_t_invoke_ms: float = 30.0  # invocation overhead, warm
    aws_lambda_cold_ms: float = 500.0     # what a cold start adds
    aws_lambda_t_s3_ms: float = 50.0      # one S3 GET's latency from the function
    aws_lambda_p_fn: int = 16             # concurrent GETs inside one invocation
    aws_lambda_memory_mb: int = 128       # the function's memory (its CPU share follows it)
    aws_lambda_transfer_mb_s: float = 1000.0  # results (base64) the SN ingests per second

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


def parse_size(value) -> int:
    """'4m' -> 4194304; plain numbers pass through."""
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip().lower().removesuffix("b")
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(float(text))


def _parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("", "0", "false", "f", "no", "n", "off", "none")


def _coerce(name: str, kind, value):
    if value is None:
        return None
    if kind is bool:
        return _parse_bool(value)
    if kind is int:
        return parse_size(value) if name.endswith("_size") or isinstance(value, str) else int(value)
    if kind is float:
        return float(value)
    if kind is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return list(value)
    return str(value)


def _read_yaml(path: Path) -> dict:
    if not path or not path.is_file():
        return {}
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def load_settings(env=None, config_file=None, override_file=None, **explicit) -> Settings:
    """Build the Settings: defaults <- config.yml <- override file <- env <- explicit."""
    env = os.environ if env is None else env
    config_dir = Path(env.get("CONFIG_DIR") or REPO_DIR / "admin" / "config")
    if config_file is None:
        config_file = config_dir / "config.yml"
    if override_file is None:
        override_file = env.get("CONFIG_OVERRIDE_PATH") or config_dir / "override.yml"
    layered = {}
    layered.update(_read_yaml(Path(config_file)))
    layered.update(_read_yaml(Path(override_file)))
    types = typing.get_type_hints(Settings)
    values = {}
    for field in dataclasses.fields(Settings):
        name = field.name
        raw = layered.get(name)
        if name.upper() in env:
            raw = env[name.upper()]
        if name in explicit:
            raw = explicit[name]
        value = _coerce(name, types[name], raw)
        if value is not None:
            values[name] = value
    return Settings(**values)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3      # mallopt(3) parameters
MMAP_BYTES = 64 * 1024**2       # blocks below this come from the heap, kept when freed
TRIM_BYTES = 256 * 1024**2      # free memory at the heap's top kept for reuse


def use_uvloop():
    """Run the processes' event loops on uvloop when it is installed (measured ~20%
    more requests/s than asyncio's own loop); asyncio's loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return False
    uvloop.install()
    return True


def keep_freed_memory():
    """Let glibc's malloc keep big freed blocks for the next request instead of handing
    them back to the kernel and faulting fresh zeroed pages in again: request bodies,
    answers and chunks are 1-32 MiB each, allocated and freed per request. Measured on
    a Firecracker VM (as Lambda and this project's VMs are): copying 4 MiB into a new
    buffer 6.7 ms -> 0.8 ms, 32 MiB 12.5 -> 5.7 ms. Peak memory is unchanged (bounded
    by the settings); up to TRIM_BYTES of free memory may stay with the process."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False                # not glibc: its own allocator's defaults
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and \
        bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
