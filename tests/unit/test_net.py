"""One loopback test for every place that must stay on this machine (registries, server binds)."""

import pytest

from mlcicd.net import host_of, is_loopback


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.5:80", "localhost", "localhost:5000/ns", "::1",
                                     "[::1]:5000", "[::1]", "127.0.0.1:5000/team/x"])
def test_loopback(address):
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["ghcr.io", "10.0.0.1:5000", "docker.io", "0.0.0.0", "::", "[2001:db8::1]:443",
                                     "example.com/localhost", ""])
def test_not_loopback(address):
    assert not is_loopback(address)


def test_host_of():
    assert host_of("127.0.0.1:5000/ns") == "127.0.0.1"
    assert host_of("[::1]:8080") == "::1" and host_of("::1") == "::1"
    assert host_of("ghcr.io/org/x") == "ghcr.io"
