"""Faults on links: Toxiproxy toxics on every client link into one replica.

    client ──> listen ──[toxic(s) of this fault]──> replica

`LinkFault` adds its toxics (named after the fault id, so two faults never collide)
and removes them on heal.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness.cluster.base import CAP_LINKS
from harness.faults.base import Fault
from harness.links import Link, ToxiproxyError


class LinkFault(Fault):
    requires: ClassVar[frozenset[str]] = frozenset({CAP_LINKS})

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(toxic type, stream, attributes) to add on every link."""
        raise NotImplementedError

    def links(self) -> list[Link]:
        return self.cluster.links_into(self.target)

    def _inject(self) -> None:
        for link in self.links():
            for i, (kind, stream, attrs) in enumerate(self.toxics()):
                self.cluster.api.add_toxic(link.name, f"{self.fault_id}-{i}", kind, stream, attrs)

    def _heal(self) -> None:
        errors = []
        for link in self.links():
            for i in range(len(self.toxics())):
                try:
                    self.cluster.api.remove_toxic(link.name, f"{self.fault_id}-{i}")
                except ToxiproxyError as e:
                    errors.append(str(e))
        if errors:
            raise ToxiproxyError("; ".join(errors))
