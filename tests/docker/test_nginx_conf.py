"""Static checks of deploy/nginx/nginx.conf, parsed with crossplane (nginx's own grammar).

What matters for the stack: the upstream resolves every logic replica through
Docker's DNS and keeps resolving, the server listens where compose publishes,
requests carry an X-Request-ID, nginx's own errors keep the logic tier's
JSON error shape, and admin calls may wait for a version to load.
"""

from __future__ import annotations

import json
import re

import pytest
from docker_stack_files import directives, nginx_tree, one, service, with_defaults


def _http() -> list[dict]:
    return one(nginx_tree(), "http")["block"]


def _server() -> list[dict]:
    return one(_http(), "server")["block"]


def _location(*args: str) -> list[dict]:
    return one(_server(), "location", *args)["block"]


def test_replicas_are_found_per_request_through_docker_dns() -> None:
    """A variable in proxy_pass is resolved at request time (nginx 1.22 and 1.28 alike),
    so --scale changes and restarted replicas are followed without a reload."""
    assert not directives(_http(), "upstream"), "an upstream block is resolved once at start"
    root = _location("/")
    (target,) = [d["args"] for d in directives(root, "set") if d["args"][0] == "$logic_tier"]
    logic_port = with_defaults(str(service("logic")["environment"]["TIERKIT_PORT"]))
    assert target == ["$logic_tier", f"logic:{logic_port}"], "the compose service name"
    assert one(root, "proxy_pass")["args"] == ["http://$logic_tier"]
    (resolver,) = directives(_http(), "resolver")
    assert resolver["args"][0] == "127.0.0.11", "Docker's embedded DNS server"
    valid = next(a for a in resolver["args"] if a.startswith("valid="))
    assert int(valid.removeprefix("valid=").rstrip("s")) <= 2, "a stopped replica leaves fast"


def test_failures_move_to_the_next_replica_quickly_and_slow_answers_are_not_resent() -> None:
    root = _location("/")
    connect = one(root, "proxy_connect_timeout")["args"][0]
    assert connect.endswith("ms") and int(connect[:-2]) <= 500, "a gone address costs <= 0.5 s"
    assert set(one(root, "proxy_next_upstream")["args"]) == {"error", "timeout", "non_idempotent"}
    window = one(root, "proxy_next_upstream_timeout")["args"][0]
    read = one(root, "proxy_read_timeout")["args"][0]
    assert int(window.rstrip("s")) < int(read.rstrip("s")), "a read timeout is never retried"


def test_server_listens_where_compose_publishes_and_passes_the_request_id() -> None:
    (listen,) = directives(_server(), "listen")
    (mapping,) = service("nginx")["ports"]
    assert listen["args"] == [with_defaults(mapping).rpartition(":")[2]]
    root = _location("/")
    headers = {d["args"][0]: d["args"][1] for d in directives(root, "proxy_set_header")}
    assert headers["X-Request-ID"] == "$tierkit_request_id"
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"


def test_healthcheck_path_is_served_by_nginx_itself() -> None:
    url = service("nginx")["healthcheck"]["test"][-1]
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S+)", url)
    assert match, url
    (listen,) = directives(_server(), "listen")
    assert listen["args"] == [match.group(1)]
    assert one(_location("=", match.group(2)), "return")["args"][0] == "200"


def test_runs_on_a_read_only_root_with_tmp_as_scratch() -> None:
    assert one(nginx_tree(), "pid")["args"][0].startswith("/tmp/")
    temp_paths = [d for d in _http() if d["directive"].endswith("_temp_path")]
    assert len(temp_paths) == 5 and all(d["args"][0].startswith("/tmp/") for d in temp_paths)
    nginx = service("nginx")
    assert nginx["read_only"] is True and "/tmp" in nginx["tmpfs"]
    conf_mount = next(v for v in nginx["volumes"] if v["target"] == "/etc/nginx/nginx.conf")
    assert conf_mount["source"] == "./deploy/nginx/nginx.conf" and conf_mount["read_only"]


def _request_id_map() -> list[dict]:
    return one(_http(), "map", "$http_x_request_id", "$tierkit_request_id")["block"]


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("abc-123", True),
        ("3f2a9c0e6f1b4e8f", True),
        ('bad"id', False),
        ("a b", False),
        ("x" * 129, False),
    ],
)
def test_request_id_map_keeps_only_plain_ids(header: str, kept: bool) -> None:
    entries = {d["directive"]: d["args"] for d in _request_id_map()}
    (pattern,) = [k for k in entries if k.startswith("~")]
    assert entries[pattern] == ["$http_x_request_id"] and entries["default"] == ["$request_id"]
    assert bool(re.match(pattern[1:], header)) is kept


def test_nginx_errors_are_the_logic_tiers_json_error_shape() -> None:
    pages = {}
    for page in directives(_server(), "error_page"):
        *codes, target = page["args"]
        assert codes[-1] == "=" and target.startswith("@")
        for code in codes[:-1]:
            pages[code] = target
    assert set(pages) == {"413", "502", "503", "504"}
    for code, target in pages.items():
        block = _location(target)
        status, body = one(block, "return")["args"]
        assert status == ("503" if code == "502" else code)
        # nginx turns the quoted string's "\\n" into a newline.
        text = body.replace("\\n", "\n").replace("$tierkit_request_id", "0123abcd")
        error = json.loads(text)["error"]
        assert set(error) == {"code", "message", "request_id"}
        assert error["request_id"] == "0123abcd"
        added = {d["args"][0] for d in directives(block, "add_header")}
        assert "X-Request-ID" in added
        assert one(block, "default_type")["args"] == ["application/json"]


def _seconds(value: str) -> float:
    return float(value[:-2]) / 1000 if value.endswith("ms") else float(value.rstrip("s"))


def test_admin_calls_wait_longer_than_a_pin_and_are_never_sent_twice() -> None:
    """`rollout set` answers once its versions loaded (graph_config.pin_wait_s): nginx
    must not cut it at the predict path's 30 s, nor resend a PUT to another replica."""
    from logic_service.settings import GraphConfigSettings

    admin = _location("/admin/")
    read = _seconds(one(admin, "proxy_read_timeout")["args"][0])
    pin_wait = GraphConfigSettings().pin_wait_s
    assert read > pin_wait, f"read timeout {read} s <= pin_wait_s {pin_wait} s"
    assert read < 120, "below the rollout CLI's own 120 s timeout, so nginx answers first"
    assert one(admin, "proxy_next_upstream")["args"] == ["off"]
    assert _seconds(one(_location("/"), "proxy_read_timeout")["args"][0]) == 30  # unchanged


def test_admin_location_reaches_the_same_replicas_with_the_same_headers() -> None:
    root, admin = _location("/"), _location("/admin/")
    for directive in ("proxy_pass", "proxy_http_version", "proxy_connect_timeout"):
        assert one(admin, directive)["args"] == one(root, directive)["args"], directive
    assert [d["args"] for d in directives(admin, "set")] == [
        d["args"] for d in directives(root, "set")
    ]
    headers = [d["args"] for d in directives(admin, "proxy_set_header")]
    assert headers == [d["args"] for d in directives(root, "proxy_set_header")]


def test_admin_errors_keep_the_json_error_shape_and_name_the_admin_timeout() -> None:
    pages = {}
    for page in directives(_location("/admin/"), "error_page"):
        *codes, target = page["args"]
        for code in codes[:-1]:
            pages[code] = target
    assert pages == {
        "502": "@logic_unavailable",
        "503": "@logic_unavailable",
        "504": "@admin_timeout",
        "413": "@body_too_large",
    }
    block = _location("@admin_timeout")
    status, body = one(block, "return")["args"]
    error = json.loads(body.replace("\\n", "\n").replace("$tierkit_request_id", "0123abcd"))
    read = one(_location("/admin/"), "proxy_read_timeout")["args"][0]
    assert status == "504" and f"within {read.rstrip('s')} s" in error["error"]["message"]
    assert set(error["error"]) == {"code", "message", "request_id"}


def test_metrics_are_not_served_through_the_public_edge() -> None:
    block = _location("=", "/metrics")
    status, body = one(block, "return")["args"]
    assert status == "404"
    text = body.replace("\\n", "\n").replace("$tierkit_request_id", "0123abcd")
    assert json.loads(text)["error"]["code"] == "not_found"
    assert not directives(block, "proxy_pass")
