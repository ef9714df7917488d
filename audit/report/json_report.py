"""JSON of design.md section 3: one report object for one path, {"reports": [...]} for several."""

from __future__ import annotations

import json

from audit.finding import Report


def render(reports: list[Report]) -> str:
    if len(reports) == 1:
        payload = reports[0].to_dict()
    else:
        payload = {"reports": [r.to_dict() for r in reports]}
    return json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n"
