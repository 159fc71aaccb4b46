"""One error type's findings: a count and up to `EXAMPLES_MAX` examples (Jepsen's report shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXAMPLES_MAX = 8


@dataclass
class Findings:
    """Accumulates one error type: every occurrence counts, the first `EXAMPLES_MAX` are kept."""

    count: int = 0
    examples: list[Any] = field(default_factory=list)

    def add(self, example: Any) -> None:
        """Count one occurrence, keeping it as an example while there is room."""
        self.count += 1
        if len(self.examples) < EXAMPLES_MAX:
            self.examples.append(example)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of the checker's output: {"count", "examples"}."""
        return {"count": self.count, "examples": list(self.examples)}
