"""The command line: TF Serving's flag spelling, and fatal errors with the reason on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.graph_tier import run_graph_cli

from graph_service.flags import FlagError, parse_flags, parse_grpc_channel_arguments
from graph_service.serving.server_config import single_model_config, validate_config


def test_flag_spellings_and_defaults():
    options = parse_flags(
        [
            "--port",
            "9000",
            "--rest_api_port=9001",
            "--enable_batching",
            "--enable_model_warmup=false",
            "--model_name=ctr",
            "--model_base_path",
            "/models/ctr",
            "--tensorflow_intra_op_parallelism=2",
        ]
    )
    assert (options.port, options.rest_api_port) == (9000, 9001)
    assert options.enable_batching is True
    assert options.enable_model_warmup is False
    assert (options.model_name, options.model_base_path) == ("ctr", "/models/ctr")
    assert options.tensorflow_intra_op_parallelism == 2
    defaults = parse_flags([])
    assert (defaults.port, defaults.rest_api_port) == (8500, 0)
    assert defaults.rest_api_timeout_in_ms == 30000
    assert defaults.file_system_poll_wait_seconds == 1
    assert defaults.model_config_file_poll_wait_seconds == 0
    assert defaults.model_name == "default"
    assert defaults.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
        (["--port=http"], "Illegal value 'http' for flag 'port'"),
        (["--enable_batching=maybe"], "Illegal value 'maybe' for flag 'enable_batching'"),
        (["--port"], "Missing value for flag 'port'"),
        (["models"], "Unexpected positional argument 'models'"),
    ],
)
def test_bad_flags_are_rejected_with_the_flag_named(argv, message):
    with pytest.raises(FlagError) as info:
        parse_flags(argv)
    assert message in str(info.value)


def test_grpc_channel_arguments_keep_integers():
    assert parse_grpc_channel_arguments("grpc.max_concurrent_streams=100,grpc.x=abc") == [
        ("grpc.max_concurrent_streams", 100),
        ("grpc.x", "abc"),
    ]
    with pytest.raises(FlagError):
        parse_grpc_channel_arguments("novalue")


def test_relative_base_path_resolves_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resolved = validate_config(single_model_config("m", "models/m"), None)
    assert resolved.model_config_list.config[0].base_path == str(tmp_path / "models" / "m")


def test_unknown_flag_exits_non_zero_naming_it():
    result = run_graph_cli("--port=8500", "--bogus_flag=3")
    assert result.returncode != 0
    assert "bogus_flag" in result.stderr


def test_help_lists_flags():
    result = run_graph_cli("--help")
    assert result.returncode == 0
    assert "--model_config_file_poll_wait_seconds" in result.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_startup_config_errors_exit_non_zero_with_the_reason(tmp_path):
    # One subprocess per case costs a TensorFlow import; keep the list short.
    bad_syntax = write(tmp_path / "bad.config", "model_config_list { config { name: 'x' ")
    result = run_graph_cli("--port=0", f"--model_config_file={bad_syntax}")
    assert result.returncode != 0
    assert f"Invalid protobuf file: '{bad_syntax}'" in result.stderr

    no_platform = write(
        tmp_path / "noplatform.config",
        f"model_config_list {{ config {{ name: 'x' base_path: '{tmp_path}' }} }}",
    )
    result = run_graph_cli("--port=0", f"--model_config_file={no_platform}")
    assert result.returncode != 0
    assert "Illegal setting neither ModelServerConfig::model_type" in result.stderr


def test_missing_model_source_and_bad_monitoring_config(tmp_path):
    result = run_graph_cli("--port=0")
    assert result.returncode != 0
    assert "model_base_path and server_options.model_config_file are empty" in result.stderr

    monitoring = write(tmp_path / "monitoring.config", "prometheus_config { enable: maybe }")
    result = run_graph_cli(
        "--port=0",
        f"--model_base_path={tmp_path}",
        f"--monitoring_config_file={monitoring}",
    )
    assert result.returncode != 0
    assert f"Invalid protobuf file: '{monitoring}'" in result.stderr


def test_console_script_runs_the_same_cli():
    script = Path(sys.prefix) / "bin" / "tierkit-graph"
    result = subprocess.run(
        [str(script), "--unknown_flag"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Unknown command line flag 'unknown_flag'" in result.stderr
