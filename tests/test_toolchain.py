"""Finding the Toxiproxy server: env var, tool folder, PATH; version checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.toolchain import ToolchainError, find_toxiproxy_server


def fake_server(tmp_path: Path, version_line: str) -> Path:
    p = tmp_path / "toxiproxy-server"
    p.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    p.chmod(0o755)
    return p


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    empty = tmp_path / "empty-tools"
    empty.mkdir()
    monkeypatch.setenv("KMSCHAOS_TOOLS", str(empty))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("TOXIPROXY_SERVER", raising=False)
    return empty


def test_missing_server_says_run_make_setup(isolated: Path) -> None:
    with pytest.raises(ToolchainError) as e:
        find_toxiproxy_server()
    msg = str(e.value)
    assert "not found" in msg and "make setup" in msg and "\n" not in msg


def test_env_var_pointing_nowhere_is_named(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOXIPROXY_SERVER", "/no/such/toxiproxy")
    with pytest.raises(ToolchainError, match="TOXIPROXY_SERVER=/no/such/toxiproxy"):
        find_toxiproxy_server()


@pytest.mark.parametrize("line", ["toxiproxy-server version 1.2.1", "toxiproxy-server version git"])
def test_wrong_version_is_one_line_error(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    monkeypatch.setenv("TOXIPROXY_SERVER", str(fake_server(tmp_path, line)))
    with pytest.raises(ToolchainError) as e:
        find_toxiproxy_server()
    msg = str(e.value)
    assert "reports Toxiproxy version" in msg and "make setup" in msg and "\n" not in msg


def test_search_order_env_then_tool_folder_then_path(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = tmp_path / "bin"
    on_path.mkdir()
    fake_server(on_path, "toxiproxy-server version 2.9.0")
    monkeypatch.setenv("PATH", str(on_path))
    assert find_toxiproxy_server() == (str(on_path / "toxiproxy-server"), "2.9.0")
    fake_server(isolated, "toxiproxy-server version 2.12.0")
    assert find_toxiproxy_server() == (str(isolated / "toxiproxy-server"), "2.12.0")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setenv(
        "TOXIPROXY_SERVER", str(fake_server(env_dir, "toxiproxy-server version 2.10.1"))
    )
    assert find_toxiproxy_server()[1] == "2.10.1"
