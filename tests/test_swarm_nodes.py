"""The swarm backend's refusals, on hand-built node lists and engine answers (pure logic:
`harness.swarm.nodes`): one line naming the site or node and the command that fixes it."""

from __future__ import annotations

from typing import Any

import pytest

from harness.swarm.nodes import (
    SwarmError,
    SwarmNode,
    find_node,
    node_engine,
    nodes_for_sites,
    require_manager,
)


def node(
    name: str,
    site: str | None,
    *,
    ready: bool = True,
    local: bool = False,
    engine: str | None = None,
) -> SwarmNode:
    return SwarmNode(f"{name}-id0123456789", name, "169.254.0.9", site, engine, ready, local)


class Engine:
    """What `require_manager` reads of an engine: `info()`."""

    def __init__(self, swarm: dict[str, Any]) -> None:
        self.swarm = swarm

    def info(self) -> dict[str, Any]:
        return {"Swarm": self.swarm}


def test_each_site_gets_its_ready_labelled_nodes() -> None:
    nodes = [node("a1", "site-a", local=True), node("b1", "site-b"), node("b2", "site-b")]
    got = nodes_for_sites(nodes, ["site-a", "site-b"])
    assert [n.name for n in got["site-a"]] == ["a1"]
    assert [n.name for n in got["site-b"]] == ["b1", "b2"]


def test_a_site_without_a_labelled_node_is_named_with_the_label_command() -> None:
    with pytest.raises(SwarmError) as e:
        nodes_for_sites([node("a1", "site-a")], ["site-a", "site-b"])
    assert "site site-b has no swarm node" in str(e.value)
    assert "no node is labelled kmschaos.site=site-b" in str(e.value)
    assert "`kmschaos swarm label NODE site-b`" in str(e.value)
    assert e.value.bad_input


def test_a_site_whose_nodes_are_down_names_them() -> None:
    with pytest.raises(SwarmError, match=r"its node\(s\) b1 are not ready and active"):
        nodes_for_sites([node("a1", "site-a"), node("b1", "site-b", ready=False)], ["site-b"])


def test_nodes_are_found_by_hostname_id_or_unique_id_prefix() -> None:
    nodes = [node("a1", "site-a"), node("b1", "site-b")]
    assert find_node(nodes, "b1").name == "b1"
    assert find_node(nodes, "a1-id0123456789").name == "a1"
    assert find_node(nodes, "b1-id01").name == "b1"
    with pytest.raises(SwarmError, match="no swarm node 'c9'.*a1 \\(a1-id0123456"):
        find_node(nodes, "c9")


def test_an_engine_in_no_swarm_or_a_worker_is_refused_with_what_to_run() -> None:
    with pytest.raises(SwarmError, match="not in a swarm: run `docker swarm init`"):
        require_manager(Engine({"LocalNodeState": "inactive"}), "unix:///x.sock")
    with pytest.raises(SwarmError, match="is a swarm worker: point DOCKER_HOST at a manager"):
        require_manager(Engine({"LocalNodeState": "active", "ControlAvailable": False}), "x")
    manager = Engine({"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "m1"})
    assert require_manager(manager, "x") == "m1"


def test_a_remote_node_without_an_engine_label_names_the_label_command() -> None:
    manager = object()
    assert node_engine(node("a1", "site-a", local=True), manager) is manager
    with pytest.raises(SwarmError) as e:
        node_engine(node("b1", "site-b"), manager)
    assert "node b1: no engine address" in str(e.value)
    assert "`kmschaos swarm label b1 site-b --engine ssh://USER@HOST`" in str(e.value)


def test_a_node_whose_engine_does_not_answer_names_node_and_url(tmp_path: Any) -> None:
    url = f"unix://{tmp_path}/none.sock"
    with pytest.raises(SwarmError) as e:
        node_engine(node("b1", "site-b", engine=url), object())
    assert f"node b1: its engine at {url} does not answer" in str(e.value)
    assert "`kmschaos swarm label b1 site-b --engine URL`" in str(e.value)
