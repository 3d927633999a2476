"""Load generation and the answer check of the serve benchmark (bench/wrk.py,
bench/answer_check.py).

Proves: a wrk duration in any of its units is read in milliseconds and anything else is
refused; parse_wrk reads requests, duration, req/s, p50/p99 (in ms and in seconds, with and
without wrk's ".000"), non-2xx and the socket errors summed from wrk's --latency output, and
marks a run without a completed request; request_body builds the same features as
bench/lua/salience.lua; check_answer passes a right answer and names a wrong score, a wrong
status and a refused connection, against a local HTTP server.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from bench.answer_check import check_answer, request_body
from bench.wrk import WrkRun, parse_wrk, wrk_duration_ms
from unit_support import LocalHTTPServer

REPO = Path(__file__).resolve().parents[2]

WRK_OUTPUT = """\
Running 10s test @ http://10.0.0.2:8000
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    25.92ms   10.11ms 120.33ms   71.23%
    Req/Sec   620.41     80.12   800.00     70.00%
  Latency Distribution
     50%   24.10ms
     75%   30.00ms
     90%   38.20ms
     99%    1.02s
  12345 requests in 10.01s, 2.10MB read
  Non-2xx or 3xx responses: 7
  Socket errors: connect 1, read 2, write 3, timeout 4
Requests/sec:   1233.27
Transfer/sec:    215.10KB
"""


def new_run() -> WrkRun:
    return WrkRun("serve", "1 item, 32 conn", 1, 32, 1)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("812.00us", 0.812),
        ("4.50ms", 4.5),
        (" 10.01s ", 10010.0),
        ("1.5m", 90000.0),
        ("2h", 7200000.0),
    ],
)
def test_wrk_duration_in_every_unit_is_read_in_ms(text, ms):
    assert wrk_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["4.50 ms", "12", "fast", "3d"])
def test_wrk_duration_refuses_what_wrk_does_not_print(text):
    with pytest.raises(ValueError, match="not a wrk duration"):
        wrk_duration_ms(text)


def test_parse_wrk_reads_every_measurement():
    run = parse_wrk(WRK_OUTPUT, new_run())
    assert run.requests == 12345
    assert run.duration_s == pytest.approx(10.01)
    assert run.rps == pytest.approx(1233.27)
    assert run.p50_ms == pytest.approx(24.10)
    assert run.p99_ms == pytest.approx(1020.0)
    assert run.non_2xx == 7
    assert run.socket_errors == 1 + 2 + 3 + 4
    assert run.error == ""
    assert run.items_per_s == pytest.approx(1233.27)


def test_parse_wrk_reads_percentiles_printed_with_decimals():
    output = WRK_OUTPUT.replace("     50%   24.10ms", "  50.000%  812.00us").replace(
        "     99%    1.02s", "  99.000%   45.60ms"
    )
    run = parse_wrk(output, WrkRun("bare", "1,000 items, 4 conn", 1000, 4, 2))
    assert run.p50_ms == pytest.approx(0.812)
    assert run.p99_ms == pytest.approx(45.6)
    assert run.items_per_s == pytest.approx(1233270.0)


def test_parse_wrk_without_errors_or_non_2xx_keeps_zeros():
    output = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "Non-2xx" not in line and "Socket" not in line
    )
    run = parse_wrk(output, new_run())
    assert (run.non_2xx, run.socket_errors, run.error) == (0, 0, "")


def test_parse_wrk_marks_a_run_without_a_completed_request():
    run = parse_wrk("  0 requests in 10.00s, 0.00B read\nRequests/sec:      0.00\n", new_run())
    assert run.requests == 0
    assert run.error == "no request completed"


def test_parse_wrk_keeps_an_earlier_error():
    run = new_run()
    run.error = "wrk did not finish in time"
    assert parse_wrk("", run).error == "wrk did not finish in time"


def test_request_body_matches_the_wrk_script():
    features = json.loads(request_body(3))["features"]
    # bench/lua/salience.lua: risk ((i * 37) % 101) / 100, severity ((i * 53) % 97) / 96.
    assert features == [
        {"task_risk": 0.37, "failure_severity": 0.5521},
        {"task_risk": 0.74, "failure_severity": 0.0938},
        {"task_risk": 0.1, "failure_severity": 0.6458},
    ]
    assert "((i * 37) % 101) / 100" in (REPO / "bench" / "lua" / "salience.lua").read_text()


class Scorer(BaseHTTPRequestHandler):
    """Answers like the salience app, or wrongly as the path asks (/wrong, /failed)."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        scores = [f["task_risk"] * f["failure_severity"] for f in body["features"]]
        answer = {"status": "success", "scores": scores}
        if self.path == "/wrong":
            answer["scores"][-1] += 0.001
        elif self.path == "/failed":
            answer = {"status": "error", "detail": "no model"}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def scorer():
    http = LocalHTTPServer(Scorer)
    yield f"http://127.0.0.1:{http.port}"
    http.close()


def test_check_answer_passes_right_scores(scorer):
    assert check_answer(scorer, "/score/salience", 50) == ""


def test_check_answer_names_a_wrong_score(scorer):
    assert check_answer(scorer, "/wrong", 50) == f"{scorer}/wrong: wrong scores"


def test_check_answer_names_an_unexpected_answer(scorer):
    problem = check_answer(scorer, "/failed", 1)
    assert problem.startswith(f"{scorer}/failed: unexpected answer ")
    assert "no model" in problem


def test_check_answer_names_a_refused_connection(closed_port):
    problem = check_answer(f"http://127.0.0.1:{closed_port}", "/score/salience", 1)
    assert problem.startswith(f"http://127.0.0.1:{closed_port}/score/salience: ")
    assert "refused" in problem.lower()
