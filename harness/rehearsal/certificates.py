"""A rehearsal's ``certificates`` steps: planned operator actions on the cluster's PKI
(`harness.pki_rotation`), read from the file and performed.

    - certificates: new-ca
    - certificates: {action: trust, cas: [old, new]}
    - certificates: {action: rotate-server-cert, replicas: all, ca: new, gap: 1s}
    - certificates: {action: rotate-client-cert}
    - certificates: {action: trust, cas: [new]}
    - certificates: {action: expire-ca, ca: old}
    - certificates: restore

`CertificateStepReader` is the part of the rehearsal validator that knows these steps:
every error names file, line and field (an unknown action or replica, a `new` CA used
before a `new-ca` step, an external KMS whose certificates are not kmschaos's). The
actions, their fields and help are declared in `harness.rehearsal.fileformat`.
`perform` runs one step on a `PkiRotation`.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.pki_rotation import PkiRotation
from harness.rehearsal.fileformat import CA, CERT_ACTIONS, CERT_FIELDS, NEW_CA, OLD_CA
from harness.rehearsal.model import CertificatesStep
from harness.topology import Topology
from harness.yamlfile import Duration, Reader, Y, describe, unknown


class CertificateStepReader:
    """Reads ``certificates`` steps in file order with `reader`; remembers whether a
    new CA was made (the default CA of later steps, and the only way to name `new`)."""

    def __init__(self, reader: Reader, topology: Topology) -> None:
        self.r = reader
        self.topology = topology
        self.new_ca_step: int | None = None

    def step(self, index: int, line: int, y: Y) -> CertificatesStep:
        """An action's name alone (its defaults), or its mapping."""
        r = self.r
        external = self.topology.external_replicas
        if external:
            raise r.problem(
                y,
                f"certificates act on kmschaos's own PKI, but {', '.join(external)} "
                + ("is an external KMS" if len(external) == 1 else "are external KMSs")
                + " (their certificates and the client identity are yours)",
                at_key=True,
            )
        if isinstance(y.value, dict):
            hint = f"name the action ({', '.join(CERT_ACTIONS)})"
            action_y = r.required(dict(y.value), y, "action", hint)
        elif isinstance(y.value, str):
            action_y = y
        else:
            raise r.problem(
                y,
                f"must be an action ({', '.join(CERT_ACTIONS)}) or a mapping like "
                f"{{action: rotate-server-cert, replicas: all}}, got {describe(y.plain())}",
            )
        action = action_y.value
        if not isinstance(action, str) or action not in CERT_ACTIONS:
            word = action if isinstance(action, str) else ""
            message = unknown(
                f"unknown action {describe(action_y.plain())}", word, tuple(CERT_ACTIONS)
            )
            raise r.problem(action_y, message)
        fields = {f.key: f for f in CERT_FIELDS[action]}
        body = r.mapping(y, ("action", *fields)) if isinstance(y.value, dict) else {}
        for f in fields.values():
            if f.required and f.key not in body:
                raise r.missing(y, f.key, f"{action} needs {f.key}: {f.help}, e.g. [old, new]")
        if action == "new-ca":
            if self.new_ca_step is not None:
                message = f"a new CA was already made by steps[{self.new_ca_step}]"
                raise r.problem(y, message, at_key=True)
            self.new_ca_step = index
            return CertificatesStep(index=index, line=line, action=action)
        ca = self.ca(body["ca"]) if "ca" in body else self.newest
        cas: list[str] = []
        for item in r.items(body["cas"], what="CAs") if "cas" in body else []:
            c = self.ca(item)
            if c in cas:
                raise r.problem(item, f"CA '{c}' listed twice")
            cas.append(c)
        replicas = self.replicas(body.get("replicas")) if action == "rotate-server-cert" else ()
        gap = r.take(body["gap"], Duration()) if "gap" in body else 0.0
        return CertificatesStep(
            index=index,
            line=line,
            action=action,
            ca=ca,
            cas=tuple(cas),
            replicas=replicas,
            gap_s=gap,
        )

    @property
    def newest(self) -> str:
        return NEW_CA if self.new_ca_step is not None else OLD_CA

    def ca(self, y: Y) -> str:
        ca = str(self.r.take(y, CA))
        if ca == NEW_CA and self.new_ca_step is None:
            raise self.r.problem(y, "no new CA yet: make it first with `- certificates: new-ca`")
        return ca

    def replicas(self, y: Y | None) -> tuple[str, ...]:
        """The replicas a rotation names, in its order (absent or `all`: every one)."""
        known = list(self.topology.replicas)
        if y is None or y.value == "all":
            return tuple(known)
        if isinstance(y.value, str):
            return (self.r.choice(y, known, "replica"),)
        names: list[str] = []
        for item in self.r.items(y, what="replicas"):
            name = self.r.choice(item, known, "replica")
            if name in names:
                raise self.r.problem(item, f"replica '{name}' listed twice")
            names.append(name)
        return tuple(names)


def perform(rotation: PkiRotation, step: CertificatesStep, hold: Callable[[float], None]) -> None:
    """Do `step`'s action; `hold(seconds)` paces a rolling rotation."""
    if step.action == "new-ca":
        rotation.new_ca()
    elif step.action == "trust":
        rotation.trust(step.cas)
    elif step.action == "rotate-server-cert":
        rotation.rotate_server_certs(step.replicas, step.ca, step.gap_s, hold)
    elif step.action == "rotate-client-cert":
        rotation.rotate_client_cert(step.ca)
    elif step.action == "expire-ca":
        rotation.expire_ca(step.ca)
    elif step.action == "restore":
        rotation.restore()
    else:  # pragma: no cover - the reader makes only the actions above
        raise ValueError(f"unknown certificates action {step.action!r}")
