"""What a stage run did, for the person watching it in the Prefect UI: a markdown artifact per
stage run listing the transitions made, the errors with the vendor's message (masked), and the
journeys left waiting and why. Personal data never appears: leads are named by id, and every
reason passes through leadflow.privacy.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prefect.artifacts import acreate_markdown_artifact

from leadflow.privacy import mask_text
from tasks.journey import Move, MoveKind

__all__ = ["StageReport", "publish_report"]

ROWS_SHOWN = 50


@dataclass
class StageReport:
    """One stage run: every lead's move."""

    stage: str
    moves: list[Move] = field(default_factory=list)

    @property
    def advanced(self) -> Counter[str]:
        return Counter(
            str(m.to_state) for m in self.moves if m.kind is MoveKind.ADVANCE and m.to_state
        )

    def of_kind(self, kind: MoveKind) -> list[Move]:
        return [m for m in self.moves if m.kind is kind]

    def summary(self) -> str:
        parts = [f"{count} → {state}" for state, count in sorted(self.advanced.items())]
        for kind in (MoveKind.WAIT, MoveKind.RETRY, MoveKind.DEAD_LETTER, MoveKind.BUSY):
            if found := self.of_kind(kind):
                parts.append(f"{len(found)} {kind.value.replace('_', '-')}")
        return f"{self.stage}: " + (", ".join(parts) if parts else "nothing due")

    def markdown(self) -> str:
        lines = [f"# {self.stage}", "", self.summary(), ""]
        if self.advanced:
            lines += ["## Transitions", "", "| to | journeys |", "|---|---|"]
            lines += [f"| {state} | {count} |" for state, count in sorted(self.advanced.items())]
            lines.append("")
        for title, kind in (
            (
                "Dead-lettered (a person must act; `leadflow journeys retry ID`)",
                MoveKind.DEAD_LETTER,
            ),
            ("Retrying later", MoveKind.RETRY),
            ("Waiting", MoveKind.WAIT),
        ):
            found = self.of_kind(kind)
            if not found:
                continue
            lines += [f"## {title}", "", "| lead | why |", "|---|---|"]
            for move in found[:ROWS_SHOWN]:
                reason = mask_text(move.reason).replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {move.lead_id} | {reason} |")
            if len(found) > ROWS_SHOWN:
                lines.append(f"| … | {len(found) - ROWS_SHOWN} more |")
            lines.append("")
        return "\n".join(lines)


async def publish_report(report: StageReport) -> StageReport:
    """Publish the report as the stage run's markdown artifact (key `<stage>-run`)."""
    if report.moves:
        await acreate_markdown_artifact(
            markdown=report.markdown(), key=f"{report.stage}-run", description=report.summary()
        )
    return report
