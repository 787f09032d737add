"""Topology loader and validation: pure unit tests, no servers.

Every invalid file must fail with a `TopologyError` whose text is
``<file>: <field>: <message>``; these tests pin the field path and the message.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.client.policies import POLICIES
from harness.toolchain import repo_root
from harness.topology import (
    ClientSpec,
    Timeouts,
    Topology,
    TopologyError,
    load_topology,
    parse_topology,
)

TOPOLOGIES = repo_root() / "scenarios" / "topologies"

# The exact shape from the issue.
ISSUE_EXAMPLE = """\
name: one-site
sites:
  site-a:
    replicas: [kms-a, kms-b, kms-c]
clients:
  vc-a:
    site: site-a
    order: [kms-a, kms-b, kms-c]   # optional; default: own site's replicas, then the rest
    policy: vcenter                # vcenter | pykmip
replication:
  profile: none
timeouts:
  response_s: 60
  connect_s: 5
time_scale: 1.0
"""

TWO_SITES = """\
name: two
sites:
  site-a:
    replicas: [kms-a, kms-b]
  site-b:
    replicas: [kms-c, kms-d]
  site-c:
    replicas: [kms-e]
clients:
  vc-a:
    site: site-a
  vc-b:
    site: site-b
    policy: pykmip
  vc-c:
    site: site-c
"""

# A minimal valid body that the error cases below extend or bend.
MINIMAL = """\
sites:
  site-a:
    replicas: [kms-a, kms-b, kms-c]
clients:
  vc-a:
    site: site-a
"""


def write(tmp_path: Path, text: str, name: str = "topo.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def load_error(tmp_path: Path, text: str, name: str = "topo.yaml") -> TopologyError:
    p = write(tmp_path, text, name)
    with pytest.raises(TopologyError) as ei:
        load_topology(p)
    err = ei.value
    # the text is always "<file>: <field>: <message>" (or "<file>: <message>")
    assert str(err).startswith(f"{p}: ")
    assert err.source == str(p)
    expected = f"{p}: {err.field_path}: {err.message}" if err.field_path else f"{p}: {err.message}"
    assert str(err) == expected
    return err


# ---- valid files ------------------------------------------------------------------------


def test_issue_example_loads_exactly(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, ISSUE_EXAMPLE, "one-site.yaml"))
    assert topo.name == "one-site"
    assert topo.sites == {"site-a": ("kms-a", "kms-b", "kms-c")}
    assert topo.replicas == ("kms-a", "kms-b", "kms-c")
    assert topo.clients == {
        "vc-a": ClientSpec(
            name="vc-a",
            site="site-a",
            order=("kms-a", "kms-b", "kms-c"),
            policy=POLICIES["vcenter"],
        )
    }
    assert topo.replication_profile == "none"
    assert topo.timeouts == Timeouts(response_s=60.0, connect_s=5.0)
    assert topo.time_scale == 1.0
    assert topo.source == str(tmp_path / "one-site.yaml")
    assert topo.site_of("kms-b") == "site-a"


def test_issue_example_round_trips_through_to_dict(tmp_path: Path) -> None:
    import yaml

    topo = load_topology(write(tmp_path, ISSUE_EXAMPLE))
    again = parse_topology(yaml.safe_dump(topo.to_dict()), "again.yaml")
    assert again.to_dict() == topo.to_dict()
    assert again.clients == topo.clients


def test_default_order_is_own_site_first_then_other_sites_in_file_order(
    tmp_path: Path,
) -> None:
    topo = load_topology(write(tmp_path, TWO_SITES))
    assert topo.clients["vc-a"].order == ("kms-a", "kms-b", "kms-c", "kms-d", "kms-e")
    assert topo.clients["vc-b"].order == ("kms-c", "kms-d", "kms-a", "kms-b", "kms-e")
    assert topo.clients["vc-c"].order == ("kms-e", "kms-a", "kms-b", "kms-c", "kms-d")
    assert topo.site_of("kms-d") == "site-b"
    with pytest.raises(KeyError):
        topo.site_of("kms-x")


def test_defaults_for_optional_fields(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, MINIMAL, "my-topo.yaml"))
    assert topo.name == "my-topo"  # the file's stem
    assert topo.clients["vc-a"].policy.name == "vcenter"
    assert topo.clients["vc-a"].order == ("kms-a", "kms-b", "kms-c")
    assert topo.replication_profile == "none"
    assert topo.timeouts == Timeouts(response_s=60.0, connect_s=5.0)
    assert topo.time_scale == 1.0


def test_explicit_order_may_be_a_subset_in_any_order(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, MINIMAL + "    order: [kms-c, kms-a]\n"))
    assert topo.clients["vc-a"].order == ("kms-c", "kms-a")


# Shipped on purpose with a remote replica first (the linter's example): file -> clients.
MISORDERED = {"two-sites-misordered.yaml": {"vc-a"}}


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_topology_loads(path: Path) -> None:
    topo = load_topology(path)
    assert topo.name == path.stem
    assert topo.clients
    misordered = MISORDERED.get(path.name, set())
    assert misordered <= set(topo.clients)
    for client in topo.clients.values():
        assert set(client.order) <= set(topo.replicas) | set(topo.load_balancers)
        local_first = topo.site_of(client.order[0]) == client.site
        assert local_first is (client.name not in misordered)


def test_shipped_topologies_exist() -> None:
    names = {p.name for p in TOPOLOGIES.glob("*.yaml")}
    assert {
        "one-site.yaml",
        "two-sites.yaml",
        "one-site-pykmip.yaml",
        "single-kms.yaml",
        "two-sites-misordered.yaml",
    } <= names


def test_timeouts_scale_with_time_scale(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace("time_scale: 1.0", "time_scale: 0.05")
    topo = load_topology(write(tmp_path, text))
    assert topo.timeouts == Timeouts(response_s=60.0, connect_s=5.0)  # unscaled
    assert topo.response_timeout == pytest.approx(3.0)
    assert topo.connect_timeout == pytest.approx(0.25)


def test_with_time_scale_returns_a_rescaled_copy(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, ISSUE_EXAMPLE))
    quick = topo.with_time_scale(0.1)
    assert isinstance(quick, Topology)
    assert quick.time_scale == 0.1
    assert quick.response_timeout == pytest.approx(6.0)
    assert quick.connect_timeout == pytest.approx(0.5)
    # everything else is the same, and the original is untouched
    assert quick.sites == topo.sites
    assert quick.clients == topo.clients
    assert quick.timeouts == topo.timeouts
    assert quick.source == topo.source
    assert quick.to_dict() == {**topo.to_dict(), "time_scale": 0.1}
    assert topo.time_scale == 1.0
    assert topo.response_timeout == 60.0


@pytest.mark.parametrize("bad", [0, -1, 11, "fast"])
def test_with_time_scale_rejects_what_the_file_would_reject(tmp_path: Path, bad: object) -> None:
    topo = load_topology(write(tmp_path, ISSUE_EXAMPLE))
    with pytest.raises(TopologyError) as ei:
        topo.with_time_scale(bad)  # type: ignore[arg-type]
    assert ei.value.field_path == "time_scale"
    assert ei.value.source == topo.source


# ---- error cases ------------------------------------------------------------------------


def test_unknown_replica_in_order_names_index_and_known_replicas(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace("order: [kms-a, kms-b, kms-c]", "order: [kms-a, kms-b, kms-x]")
    err = load_error(tmp_path, text, "one-site.yaml")
    assert err.field_path == "clients.vc-a.order[2]"
    assert err.message == "unknown replica 'kms-x' (known: kms-a, kms-b, kms-c)"
    assert str(err) == (
        f"{tmp_path / 'one-site.yaml'}: clients.vc-a.order[2]: "
        "unknown replica 'kms-x' (known: kms-a, kms-b, kms-c)"
    )


def test_non_string_in_order_is_an_unknown_replica_not_a_crash(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    order: [kms-a, {x: 1}]\n")
    assert err.field_path == "clients.vc-a.order[1]"
    assert err.message.startswith("unknown replica {'x': 1} (known: kms-a, kms-b, kms-c)")


def test_replica_in_two_sites(tmp_path: Path) -> None:
    text = """\
    sites:
      site-a:
        replicas: [kms-a, kms-b]
      site-b:
        replicas: [kms-c, kms-a]
    clients:
      vc-a:
        site: site-a
    """
    err = load_error(tmp_path, text)
    assert err.field_path == "sites.site-b.replicas[1]"
    assert err.message == "replica 'kms-a' already listed in site 'site-a'"


def test_replica_twice_in_one_site(tmp_path: Path) -> None:
    text = MINIMAL.replace("[kms-a, kms-b, kms-c]", "[kms-a, kms-b, kms-a]")
    err = load_error(tmp_path, text)
    assert err.field_path == "sites.site-a.replicas[2]"
    assert err.message == "replica 'kms-a' already listed in site 'site-a'"


def test_replica_listed_twice_in_order(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    order: [kms-a, kms-b, kms-a]\n")
    assert err.field_path == "clients.vc-a.order[2]"
    assert err.message == "replica 'kms-a' listed twice"


@pytest.mark.parametrize("order", ["[]", "kms-a", "{kms-a: 1}"])
def test_order_must_be_a_non_empty_list(tmp_path: Path, order: str) -> None:
    err = load_error(tmp_path, MINIMAL + f"    order: {order}\n")
    assert err.field_path == "clients.vc-a.order"
    assert err.message == "must be a non-empty list of replica names"


def test_unknown_site_for_client(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL.replace("site: site-a", "site: site-z"))
    assert err.field_path == "clients.vc-a.site"
    assert err.message == "unknown site 'site-z' (known: site-a)"


@pytest.mark.parametrize("site", ["[site-a]", "{site-a: 1}"])
def test_non_string_site_for_client_is_unknown_not_a_crash(tmp_path: Path, site: str) -> None:
    err = load_error(tmp_path, MINIMAL.replace("site: site-a", f"site: {site}"))
    assert err.field_path == "clients.vc-a.site"
    assert err.message.startswith("unknown site ")
    assert err.message.endswith("(known: site-a)")


def test_missing_site_for_client(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL.replace("    site: site-a\n", "    policy: vcenter\n"))
    assert err.field_path == "clients.vc-a.site"
    assert err.message == "missing; name the client's site (site-a)"


def test_unknown_policy(tmp_path: Path) -> None:
    err = load_error(tmp_path, ISSUE_EXAMPLE.replace("policy: vcenter", "policy: vsphere"))
    assert err.field_path == "clients.vc-a.policy"
    assert (
        err.message
        == "unknown policy 'vsphere' (known: vcenter, pykmip, mongodb, ontap, kmip-go, retrying)"
    )


def test_unknown_top_level_key_typo(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace("timeouts:", "timeout:")
    err = load_error(tmp_path, text)
    assert err.field_path == "timeout"
    assert err.message == (
        "unknown key (known: name, sites, clients, load_balancers, replication, timeouts, "
        "time_scale, "
        "allow_external, tls)"
    )


def test_unknown_key_inside_a_client(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    oder: [kms-a]\n")
    assert err.field_path == "clients.vc-a.oder"
    assert err.message == "unknown key (known: site, order, policy)"


@pytest.mark.parametrize(
    "section, body, field, known",
    [
        ("sites", None, "sites.site-a.replica", "replicas"),
        ("timeouts", "  response_s: 60\n  read_s: 5\n", "timeouts.read_s", "response_s, connect_s"),
        (
            "replication",
            "  profile: none\n  mode: x\n",
            "replication.mode",
            "profile, interval_ms, primary",
        ),
    ],
)
def test_unknown_key_in_other_sections(
    tmp_path: Path, section: str, body: str | None, field: str, known: str
) -> None:
    if section == "sites":
        text = MINIMAL.replace("replicas:", "replica:")
    else:
        text = MINIMAL + f"{section}:\n{body}"
    err = load_error(tmp_path, text)
    assert err.field_path == field
    assert err.message == f"unknown key (known: {known})"


@pytest.mark.parametrize(("profile", "extra"), [("sync", {"primary": "kms-a"}), ("quorum", {})])
def test_sync_and_quorum_profiles_load(tmp_path: Path, profile: str, extra: dict) -> None:
    topo = load_topology(
        write(tmp_path, ISSUE_EXAMPLE.replace("profile: none", f"profile: {profile}"))
    )
    assert topo.replication_profile == profile
    assert topo.replication_implemented is True
    assert topo.to_dict()["replication"] == {"profile": profile, "interval_ms": 250.0, **extra}


def test_sync_primary_must_be_a_replica(tmp_path: Path) -> None:
    err = load_error(
        tmp_path, ISSUE_EXAMPLE.replace("profile: none", "profile: sync\n  primary: kms-x")
    )
    assert err.field_path == "replication.primary"
    assert err.message.startswith("unknown replica 'kms-x'")


def test_primary_only_for_sync(tmp_path: Path) -> None:
    err = load_error(
        tmp_path, ISSUE_EXAMPLE.replace("profile: none", "profile: async\n  primary: kms-a")
    )
    assert err.field_path == "replication.primary"


def test_async_profile_with_interval(tmp_path: Path) -> None:
    topo = load_topology(
        write(tmp_path, ISSUE_EXAMPLE.replace("profile: none", "profile: async\n  interval_ms: 80"))
    )
    assert topo.replication_profile == "async" and topo.replication_implemented
    assert topo.replication_interval_ms == 80.0
    assert topo.to_dict()["replication"] == {"profile": "async", "interval_ms": 80.0}


def test_bad_replication_interval_names_the_field(tmp_path: Path) -> None:
    err = load_error(
        tmp_path, ISSUE_EXAMPLE.replace("profile: none", "profile: async\n  interval_ms: -5")
    )
    assert err.field_path == "replication.interval_ms"
    assert err.message == "must be > 0 and <= 60000, got -5"


def test_profile_none_is_implemented(tmp_path: Path) -> None:
    assert load_topology(write(tmp_path, ISSUE_EXAMPLE)).replication_implemented is True
    assert load_topology(write(tmp_path, MINIMAL)).replication_implemented is True


def test_unknown_replication_profile(tmp_path: Path) -> None:
    err = load_error(tmp_path, ISSUE_EXAMPLE.replace("profile: none", "profile: raft"))
    assert err.field_path == "replication.profile"
    assert err.message == "unknown profile 'raft' (known: none, async, sync, quorum)"


@pytest.mark.parametrize(
    "line, field, message",
    [
        ("response_s: sixty", "timeouts.response_s", "must be a number, got a string"),
        ("response_s: '60'", "timeouts.response_s", "must be a number, got a string"),
        ("response_s: true", "timeouts.response_s", "must be a number, got a boolean"),
        ("response_s: -1", "timeouts.response_s", "must be > 0 and <= 3600, got -1"),
        ("response_s: 0", "timeouts.response_s", "must be > 0 and <= 3600, got 0"),
        ("response_s: 3601", "timeouts.response_s", "must be > 0 and <= 3600, got 3601"),
        ("connect_s: -0.5", "timeouts.connect_s", "must be > 0 and <= 600, got -0.5"),
        ("connect_s: []", "timeouts.connect_s", "must be a number, got a list"),
        ("connect_s:", "timeouts.connect_s", "must be a number, got nothing"),
    ],
)
def test_bad_timeouts(tmp_path: Path, line: str, field: str, message: str) -> None:
    key = line.split(":")[0]
    text = ISSUE_EXAMPLE.replace(
        f"  {key}: {'60' if key == 'response_s' else '5'}\n", f"  {line}\n"
    )
    assert line in text
    err = load_error(tmp_path, text)
    assert err.field_path == field
    assert err.message == message


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "must be > 0 and <= 10, got 0"),
        ("-1", "must be > 0 and <= 10, got -1"),
        ("11", "must be > 0 and <= 10, got 11"),
        ("fast", "must be a number, got a string"),
    ],
)
def test_bad_time_scale(tmp_path: Path, value: str, message: str) -> None:
    err = load_error(tmp_path, ISSUE_EXAMPLE.replace("time_scale: 1.0", f"time_scale: {value}"))
    assert err.field_path == "time_scale"
    assert err.message == message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    err = load_error(tmp_path, text)
    assert err.field_path == ""
    assert err.message == "file is empty; expected a mapping with 'sites' and 'clients'"


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    text = "sites:\n  site-a:\n    replicas: [kms-a, kms-b\nclients:\n  vc-a: {site: site-a}\n"
    err = load_error(tmp_path, text)
    assert err.field_path == ""
    assert err.message.startswith("line 4, column ")
    assert "invalid YAML: " in err.message
    assert "\n" not in str(err)


def test_yaml_bad_indentation_names_line(tmp_path: Path) -> None:
    text = "sites:\n  site-a:\n    replicas: [kms-a]\n clients:\n"
    err = load_error(tmp_path, text)
    assert err.message.startswith("line 4, column 2: invalid YAML: ")


@pytest.mark.parametrize(
    "text, kind",
    [("- a\n- b\n", "a list"), ("just a string\n", "a string"), ("42\n", "int")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    err = load_error(tmp_path, text)
    assert err.field_path == ""
    assert err.message == f"top level must be a mapping, got {kind}"


def test_missing_sites(tmp_path: Path) -> None:
    err = load_error(tmp_path, "clients:\n  vc-a:\n    site: site-a\n")
    assert err.field_path == "sites"
    assert err.message == "missing; add at least one site with its replicas"


def test_empty_sites(tmp_path: Path) -> None:
    err = load_error(tmp_path, "sites: {}\nclients:\n  vc-a:\n    site: site-a\n")
    assert err.field_path == "sites"
    assert err.message == "no sites; add at least one site with its replicas"


@pytest.mark.parametrize("replicas", ["[]", "kms-a", ""])
def test_site_needs_a_non_empty_replica_list(tmp_path: Path, replicas: str) -> None:
    err = load_error(tmp_path, MINIMAL.replace("[kms-a, kms-b, kms-c]", replicas))
    assert err.field_path == "sites.site-a.replicas"
    assert err.message == "must be a non-empty list of replica names"


def test_missing_clients(tmp_path: Path) -> None:
    err = load_error(tmp_path, "sites:\n  site-a:\n    replicas: [kms-a]\n")
    assert err.field_path == "clients"
    assert err.message == "missing; add at least one client with its site"


def test_empty_clients(tmp_path: Path) -> None:
    err = load_error(tmp_path, "sites:\n  site-a:\n    replicas: [kms-a]\nclients: {}\n")
    assert err.field_path == "clients"
    assert err.message == "no clients; add at least one client with its site"


def test_clients_must_be_a_mapping(tmp_path: Path) -> None:
    err = load_error(tmp_path, "sites:\n  site-a:\n    replicas: [kms-a]\nclients: [vc-a]\n")
    assert err.field_path == "clients"
    assert err.message == "must be a mapping, got a list"


NAME_HINT = "use 1-32 lowercase letters, digits and '-'"


@pytest.mark.parametrize(
    "old, new, field, message",
    [
        ("kms-b", "KMS-B", "sites.site-a.replicas[1]", "invalid replica name 'KMS-B'"),
        ("kms-b", "'kms b'", "sites.site-a.replicas[1]", "invalid replica name 'kms b'"),
        ("kms-b", "-kms", "sites.site-a.replicas[1]", "invalid replica name '-kms'"),
        ("kms-b", "'k' * 40", "sites.site-a.replicas[1]", None),
        ("kms-b", "7", "sites.site-a.replicas[1]", "invalid replica name 7"),
        ("  site-a:", "  Site-A:", "sites.Site-A", "invalid site name 'Site-A'"),
        ("  site-a:", "  site a:", "sites.site a", "invalid site name 'site a'"),
        ("  vc-a:", "  VC-A:", "clients.VC-A", "invalid client name 'VC-A'"),
        ("  vc-a:", "  vc a:", "clients.vc a", "invalid client name 'vc a'"),
    ],
)
def test_invalid_names(tmp_path: Path, old: str, new: str, field: str, message: str | None) -> None:
    if new == "'k' * 40":
        new, message = "k" * 40, f"invalid replica name '{'k' * 40}'"
    text = MINIMAL.replace(old, new, 1)
    err = load_error(tmp_path, text)
    assert err.field_path == field
    assert err.message == f"{message}: {NAME_HINT}"


def test_longest_valid_name_is_accepted(tmp_path: Path) -> None:
    name = "k" * 32
    topo = load_topology(write(tmp_path, MINIMAL.replace("kms-b", name)))
    assert name in topo.replicas


def test_non_string_keys_are_rejected(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL.replace("  site-a:", "  1:", 1))
    assert err.field_path == "sites"
    assert err.message == "keys must be strings, got 1"


def test_empty_name_is_rejected(tmp_path: Path) -> None:
    err = load_error(tmp_path, "name: ''\n" + MINIMAL)
    assert err.field_path == "name"
    assert err.message == "must be a non-empty string"


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TopologyError) as ei:
        load_topology(missing)
    assert str(ei.value) == f"{missing}: file not found"
    assert ei.value.field_path == ""


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as ei:
        load_topology(tmp_path)
    assert str(ei.value).startswith(f"{tmp_path}: cannot read file: ")


def test_error_is_a_value_error_with_attributes() -> None:
    err = TopologyError("x.yaml", "clients.vc-a", "boom")
    assert isinstance(err, ValueError)
    assert str(err) == "x.yaml: clients.vc-a: boom"
    assert str(TopologyError("x.yaml", "", "boom")) == "x.yaml: boom"


def test_parse_topology_without_a_file_uses_placeholder_source() -> None:
    topo = parse_topology(MINIMAL)
    assert topo.name == "topology"
    assert topo.source == "<topology>"
    with pytest.raises(TopologyError) as ei:
        parse_topology("sites: {}\n")
    assert str(ei.value) == "<topology>: sites: no sites; add at least one site with its replicas"
