"""The command line that starts a graph tier as a child process, built in one place.

``./scripts/up`` (scripts/local_stack.py), ``python -m bench`` and the test
fixtures all start ``python -m graph_service`` on loopback ports; they must agree
on the interpreter, the module, the listeners and, for the local stack, the
polling flags, or a fixture tests another server than the one users run.
"""

from __future__ import annotations

import sys

# What ./scripts/up runs with, and so what `bench stack` measures.
LOCAL_STACK_FLAGS = (
    "--file_system_poll_wait_seconds=1",
    # Re-read models.config so label moves (export config, rollouts) apply live, and each
    # second: the logic tier's effective config names the versions to load (a new
    # version folder is loaded once it is there, docs/rollouts.md).
    "--model_config_file_poll_wait_seconds=1",
    # Labels in models.config may name a version that is still loading at start-up;
    # TF Serving refuses such a config without this flag.
    "--allow_version_labels_for_unavailable_models=true",
    # A version that fails to load is retried once after 5 s, then reported with its error
    # in GetModelStatus. TF Serving's default (5 retries a minute apart) hides the error
    # for 5 minutes, longer than a rollout set waits for a version it needs (60 s).
    "--max_num_load_retries=1",
    "--load_retry_interval_micros=5000000",
)


def graph_service_command(
    grpc_port: int, rest_port: int, *flags: str, host: str = "127.0.0.1"
) -> list[str]:
    """argv for ``python -m graph_service`` with this interpreter, gRPC and REST on ``host``."""
    return [
        sys.executable,
        "-m",
        "graph_service",
        f"--host={host}",
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        *flags,
    ]
