"""The local target's nginx router against the real nginx binary."""

from __future__ import annotations

import socket

import pytest
from runners import require

from mlcicd.delivery.targets.nginx import NginxRouter, Upstream, find_nginx, render_config
from mlcicd.errors import ToolMissingError, UsageError

pytestmark = pytest.mark.integration


def test_a_taken_port_is_a_usage_error_that_names_the_key(tmp_path):
    try:
        find_nginx()
    except ToolMissingError as exc:
        require(False, str(exc))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        router = NginxRouter(tmp_path / "nginx", port)
        with pytest.raises(UsageError) as err:
            router.apply(render_config(port, [Upstream("stable v1", 1, 100)]))
    assert err.value.exit_code == 2
    assert err.value.where == "mlci.yaml: deploy.local.port"
    assert f"port {port} on 127.0.0.1 is taken by another program" in str(err.value)
    assert not router.running()
