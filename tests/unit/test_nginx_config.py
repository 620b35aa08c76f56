"""The local target's nginx config renderer: a pure function, tested without nginx."""

from __future__ import annotations

import re

from mlcicd.delivery.targets.nginx import ROUTER_PATH, Upstream, generation, render_config


def servers(text: str) -> list[str]:
    return [line.strip().split("  #")[0] for line in text.splitlines() if line.strip().startswith("server 127.")]


def test_split_between_stable_and_canary() -> None:
    text = render_config(8080, [Upstream("stable v1", 5001, 90), Upstream("canary v2", 5002, 10)])
    assert servers(text) == [
        "server 127.0.0.1:5001 weight=90 max_fails=1 fail_timeout=10s;",
        "server 127.0.0.1:5002 weight=10 max_fails=1 fail_timeout=10s;",
    ]
    assert "listen 127.0.0.1:8080;" in text
    assert "proxy_next_upstream error timeout non_idempotent;" in text
    assert "proxy_next_upstream_tries 2;" in text
    assert "keepalive 16;" in text and 'proxy_set_header Connection "";' in text
    assert "proxy_http_version 1.1;" in text
    # Nothing nginx writes may land outside the prefix (no /var/lib/nginx, no /run).
    assert not re.search(r"^\s*(pid|error_log|access_log|\w+_temp_path)\s+/", text, re.MULTILINE)
    assert "worker_processes 1;" in text


def test_a_zero_weight_server_is_marked_down() -> None:
    text = render_config(8080, [Upstream("stable v1", 5001, 100), Upstream("canary v2", 5002, 0)])
    assert servers(text) == ["server 127.0.0.1:5001 weight=100 max_fails=1 fail_timeout=10s;",
                             "server 127.0.0.1:5002 down;"]
    assert "weight=0" not in text


def test_no_live_backend_answers_503_instead_of_an_empty_upstream() -> None:
    for upstreams in ([], [Upstream("canary v1", 5002, 0)]):
        text = render_config(8080, upstreams)
        assert "upstream mlci_models" not in text and "proxy_pass" not in text
        assert "return 503" in text and "NO_BACKEND" in text


def test_binds_loopback_only() -> None:
    text = render_config(9999, [Upstream("stable v1", 5001, 100)])
    listens = re.findall(r"listen\s+(\S+);", text)
    assert listens == ["127.0.0.1:9999"]
    assert all(s.startswith("server 127.0.0.1:") for s in servers(text))


def test_generation_is_deterministic_and_tracks_every_change() -> None:
    base = [Upstream("stable v1", 5001, 90), Upstream("canary v2", 5002, 10)]
    text = render_config(8080, base)
    assert render_config(8080, list(base)) == text
    gen = generation(text)
    assert gen and re.fullmatch(r"[0-9a-f]{16}", gen)
    assert f'location = {ROUTER_PATH} {{ default_type text/plain; return 200 "{gen}\\n"; }}' in text
    variants = [
        render_config(8080, [Upstream("stable v1", 5001, 80), Upstream("canary v2", 5002, 20)]),
        render_config(8081, base),
        render_config(8080, [Upstream("stable v1", 5003, 90), Upstream("canary v2", 5002, 10)]),
        render_config(8080, base, user="mlci mlci"),
    ]
    gens = {generation(v) for v in variants}
    assert gen not in gens and len(gens) == len(variants)
    assert generation("events {}\nhttp {}\n") is None


def test_worker_user_only_when_asked() -> None:
    assert "user " not in render_config(8080, [Upstream("stable v1", 5001, 100)])
    assert "\nuser root root;\n" in render_config(8080, [Upstream("stable v1", 5001, 100)], user="root root")
