"""The correctness check made before any load: one request to a target, its answer compared
in full with the scores the salience app must give."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def request_body(items: int) -> bytes:
    """The JSON body bench/lua/salience.lua sends for ``items`` features (same values).

    Feature i (from 1) has ``task_risk`` ((i * 37) mod 101) / 100 and ``failure_severity``
    ((i * 53) mod 97) / 96, both rounded to 4 places.
    """
    parts = [
        {
            "task_risk": round(((i * 37) % 101) / 100, 4),
            "failure_severity": round(((i * 53) % 97) / 96, 4),
        }
        for i in range(1, items + 1)
    ]
    return json.dumps({"features": parts}).encode()


def check_answer(url: str, path: str, items: int) -> str:
    """POST :func:`request_body` of ``items`` to ``url + path`` and check the answer in full.

    Returns "" when the answer has ``status`` "success" and one score per item, each within
    1e-9 of ``task_risk * failure_severity``; otherwise what is wrong, starting with the URL.
    Never raises for a failed request (30 s timeout): the error is the text returned.
    """
    body = request_body(items)
    want = [f["task_risk"] * f["failure_severity"] for f in json.loads(body)["features"]]
    req = urllib.request.Request(
        url + path, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url}{path}: {exc}"
    scores = answer.get("scores")
    if answer.get("status") != "success" or not isinstance(scores, list):
        return f"{url}{path}: unexpected answer {str(answer)[:200]}"
    if len(scores) != items or any(abs(a - b) > 1e-9 for a, b in zip(scores, want, strict=True)):
        return f"{url}{path}: wrong scores"
    return ""
