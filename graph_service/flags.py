"""Command-line flags of ``tensorflow_model_server``, parsed the way TF Serving does.

TF Serving uses TensorFlow's flag parser, not argparse: ``--flag=value`` and
``--flag value`` both work, a boolean may be given bare (``--enable_batching``)
or as ``=true|false|1|0``, and an unknown flag is fatal. Keeping the spelling
identical is what lets scripts written for the real binary run this one
unchanged. Names and defaults follow tensorflow_serving/model_servers/main.cc.

Two tierkit extensions: ``--host`` (default ``0.0.0.0``, as TF Serving binds)
chooses the bind address of the gRPC and REST listeners, so a local stack can
stay on 127.0.0.1; ``--split_cores_for_loads`` (default true) keeps a loading
version on one core and serving on the others while it loads (load_cores.py),
and can be turned off where the operator pins threads some other way;
``--batch_class_helper_threads`` (default true) runs every thread but the event
loop as SCHED_BATCH so their wake-ups do not preempt it (helper_threads.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any


class FlagError(ValueError):
    """A flag that TF Serving would reject: unknown, malformed or out of range."""


@dataclass(frozen=True)
class ServerOptions:
    """Every flag the server understands, with TF Serving's defaults."""

    port: int = 8500
    grpc_socket_path: str = ""
    rest_api_port: int = 0
    rest_api_num_threads: int = 4 * (os.cpu_count() or 1)
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    enable_batching: bool = False
    enable_per_model_batching_params: bool = False
    allow_version_labels_for_unavailable_models: bool = False
    batching_parameters_file: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    num_load_threads: int = 0
    num_unload_threads: int = 0
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    file_system_poll_wait_seconds: int = 1
    flush_filesystem_caches: bool = True
    tensorflow_session_parallelism: int = 0
    tensorflow_session_config_file: str = ""
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    use_alts_credentials: bool = False
    ssl_config_file: str = ""
    platform_config_file: str = ""
    per_process_gpu_memory_fraction: float = 0.0
    saved_model_tags: str = "serve"
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 4 * (os.cpu_count() or 1)
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    version: bool = False
    monitoring_config_file: str = ""
    remove_unused_fields_from_bundle_metagraph: bool = True
    prefer_tflite_model: bool = False
    # The flag's name in TF Serving before 2.3 (its test base still passes it).
    use_tflite_model: bool = False
    num_tflite_pools: int = 1
    num_tflite_interpreters_per_pool: int = 1
    enable_signature_method_name_check: bool = False
    xla_cpu_compilation_enabled: bool = False
    enable_profiler: bool = True
    thread_pool_factory_config_file: str = ""
    mixed_precision: str = ""
    skip_initialize_tpu: bool = False
    enable_grpc_healthcheck_service: bool = False
    enforce_session_run_timeout: bool = True
    # tierkit extension (not a TF Serving flag): bind address of both listeners.
    host: str = "0.0.0.0"
    # tierkit extension: while a version loads, it gets one core, serving the rest.
    split_cores_for_loads: bool = True
    # tierkit extension: helper threads wake without preempting the event loop.
    batch_class_helper_threads: bool = True


# Flags that exist only to be accepted: they tune parts of the C++ server that
# have no counterpart here. Listed so --help can say so.
IGNORED_FLAGS = frozenset(
    {
        "rest_api_num_threads",
        "rest_api_enable_cors_support",
        "enable_per_model_batching_params",
        "num_load_threads",
        "num_unload_threads",
        "flush_filesystem_caches",
        "tensorflow_session_config_file",
        "use_alts_credentials",
        "ssl_config_file",
        "platform_config_file",
        "per_process_gpu_memory_fraction",
        "remove_unused_fields_from_bundle_metagraph",
        "xla_cpu_compilation_enabled",
        "thread_pool_factory_config_file",
        "mixed_precision",
        "skip_initialize_tpu",
        "enable_grpc_healthcheck_service",
    }
)

_EXTENSIONS = {
    "host": " (tierkit extension: bind address)",
    "split_cores_for_loads": " (tierkit extension: a loading version gets its own core)",
    "batch_class_helper_threads": (
        " (tierkit extension: helper threads are SCHED_BATCH, so waking them never"
        " preempts the event loop)"
    ),
}

_FIELDS: dict[str, Any] = {f.name: f for f in fields(ServerOptions)}
_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


def _convert(name: str, raw: str) -> Any:
    kind = _FIELDS[name].type
    if kind == "bool":
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise FlagError(f"Illegal value '{raw}' for flag '{name}': expected true or false")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise FlagError(
                f"Illegal value '{raw}' for flag '{name}': expected an integer"
            ) from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise FlagError(f"Illegal value '{raw}' for flag '{name}': expected a number") from None
    return raw


def parse_flags(argv: list[str]) -> ServerOptions:
    """Parse ``argv`` (without the program name) into ServerOptions.

    Raises FlagError naming the offending flag. ``--help`` is handled by the
    caller (it is not an option value).
    """
    values: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError(f"Unexpected positional argument '{arg}'")
        body = arg.lstrip("-")
        name, has_value, raw = body.partition("=")
        if name not in _FIELDS:
            raise FlagError(f"Unknown command line flag '{name}'")
        if _FIELDS[name].type == "bool":
            values[name] = _convert(name, raw) if has_value else True
            i += 1
            continue
        if not has_value:
            if i + 1 >= len(argv):
                raise FlagError(f"Missing value for flag '{name}'")
            raw = argv[i + 1]
            i += 2
        else:
            i += 1
        values[name] = _convert(name, raw)
    options = ServerOptions(**values)
    _validate(options)
    return options


def _validate(options: ServerOptions) -> None:
    for name in ("port", "rest_api_port"):
        value = getattr(options, name)
        if not 0 <= value <= 65535:
            raise FlagError(f"Illegal value '{value}' for flag '{name}': not a TCP port")
    if options.file_system_poll_wait_seconds < -1:
        raise FlagError("file_system_poll_wait_seconds must be >= -1")
    if options.model_config_file_poll_wait_seconds < 0:
        raise FlagError("model_config_file_poll_wait_seconds must be >= 0")
    if options.max_num_load_retries < 0:
        raise FlagError("max_num_load_retries must be >= 0")
    if options.num_tflite_pools < 1 or options.num_tflite_interpreters_per_pool < 1:
        raise FlagError("num_tflite_pools and num_tflite_interpreters_per_pool must be >= 1")
    if options.rest_api_timeout_in_ms < 0:
        raise FlagError("rest_api_timeout_in_ms must be >= 0")
    if options.port == options.rest_api_port and options.port != 0:
        raise FlagError("--rest_api_port cannot be same as --port")


def usage() -> str:
    """The --help text: every flag with its default, ignored ones marked."""
    lines = ["usage: tensorflow_model_server (tierkit graph_service) [--flag=value ...]", ""]
    defaults = ServerOptions()
    for name, field in _FIELDS.items():
        note = " (accepted, no effect here)" if name in IGNORED_FLAGS else ""
        note = _EXTENSIONS.get(name, note)
        lines.append(f"  --{name}={getattr(defaults, name)!s}  [{field.type}]{note}")
    return "\n".join(lines)


def parse_grpc_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``key=value,key=value`` -> gRPC server options; integers stay integers (as main.cc)."""
    result: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FlagError(
                f"Illegal value '{item}' in flag 'grpc_channel_arguments': expected key=value"
            )
        try:
            result.append((key, int(value)))
        except ValueError:
            result.append((key, value))
    return result
