"""Site faults cut exactly the links they name: partition (both ways, one way),
isolate, site-down — checked with a real KMIP round trip on every link."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.client.operations import empty_client_config
from harness.client.transport import Endpoint
from harness.client.walker import VCenterPolicy
from harness.cluster.local import LocalCluster
from harness.faults import FaultError, make_fault

pytestmark = [pytest.mark.integration, pytest.mark.kms_topology("two-sites.yaml")]


def reachable(cluster: LocalCluster) -> set[tuple[str, str]]:
    """(client, replica) pairs whose link answers a KMIP Locate."""
    conf = empty_client_config(Path(cluster.state.state_dir) / "clients")
    ok = set()
    for link in cluster.state.link_objects():
        policy = VCenterPolicy(
            [Endpoint(link.replica, link.host, link.port)], cluster.client_tls(), 1.0, 5.0, conf
        )
        if policy.execute("locate", None).outcome == "ok":
            ok.add((link.client, link.replica))
    return ok


SITE_A = ["kms-a", "kms-b", "kms-c"]
SITE_B = ["kms-d", "kms-e", "kms-f"]
ALL = {(c, r) for c in ("vc-a", "vc-b") for r in SITE_A + SITE_B}


def test_partition_cuts_cross_site_links_both_ways(kms_cluster: LocalCluster) -> None:
    assert reachable(kms_cluster) == ALL
    with make_fault("partition", kms_cluster, "site-a site-b") as f:
        assert f.affected_replicas() == SITE_A + SITE_B
        expected = {("vc-a", r) for r in SITE_A} | {("vc-b", r) for r in SITE_B}
        assert reachable(kms_cluster) == expected
    assert reachable(kms_cluster) == ALL


def test_one_way_partition_cuts_only_the_first_group(kms_cluster: LocalCluster) -> None:
    with make_fault("partition", kms_cluster, "site-a site-b", one_way=True):
        assert reachable(kms_cluster) == ALL - {("vc-a", r) for r in SITE_B}


def test_partition_by_replica_lists_puts_the_rest_in_a_group(kms_cluster: LocalCluster) -> None:
    with make_fault("partition", kms_cluster, "kms-a,kms-b"):
        # vc-a (site-a) is with kms-a,kms-b; vc-b with the rest (kms-c..f)
        expected = {("vc-a", "kms-a"), ("vc-a", "kms-b")} | {
            ("vc-b", r) for r in ["kms-c", *SITE_B]
        }
        assert reachable(kms_cluster) == expected


def test_isolate_and_site_down(kms_cluster: LocalCluster) -> None:
    with make_fault("isolate", kms_cluster, "kms-e"):
        assert reachable(kms_cluster) == ALL - {("vc-a", "kms-e"), ("vc-b", "kms-e")}
    with make_fault("site-down", kms_cluster, "site-b"):
        assert reachable(kms_cluster) == {(c, r) for c in ("vc-a", "vc-b") for r in SITE_A}
    assert reachable(kms_cluster) == ALL


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("partition", "site-a site-zz", "neither a site"),
        ("partition", "site-a,site-b", "neither a site"),
        ("partition", "site-a kms-a", "in two groups"),
        ("site-down", "site-zz", "unknown site"),
        ("isolate", "kms-zz", "unknown replica"),
    ],
)
def test_bad_groups_are_refused_before_anything_is_cut(
    kms_cluster: LocalCluster, kind: str, target: str, message: str
) -> None:
    with pytest.raises(FaultError, match=message):
        make_fault(kind, kms_cluster, target)
    assert reachable(kms_cluster) == ALL
