"""A bounded, closed-loop HTTP load client for fault and operation tests.

One thread per target posts the same request again as soon as the previous one is answered
(after PAUSE_S), until the count or the time limit is reached or stop() is called: a test
cannot leave it running. Each request opens its own connection, so every outcome is
unambiguous (a kept-alive connection the server closed between two requests would leave the
client unsure whether its request was lost). Every request is recorded with its send time
(seconds since start()) and its outcome:

* ``ok``: a 2xx answer;
* ``http <status>``: any other answer (a 404 before a node routes, a 503 while it drains);
* ``refused``: the connection was refused (the port is closed: the node is down);
* ``unreachable``: no route to the address (the host itself is down: rebooting);
* ``reset``: the connection broke after the request was sent (a request lost in flight);
* ``timeout``: no answer within the request timeout (REQUEST_TIMEOUT_S);
* ``tls``: an https:// target's TLS handshake failed (its certificate is not trusted).

Each sample also records how long its request took, so a slow answer is seen (each report's
``slowest``) without being counted as lost.

Addresses are whatever the test passes: read them from the running containers, never
remember them.
"""

from __future__ import annotations

import errno
import http.client
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Seconds between a target's answer and its next request: several requests a second per
# target, enough to see any gap a fault leaves, and little CPU taken from the cluster under
# test (each request costs the load balancer, a Serve proxy and a replica their share).
PAUSE_S = 0.1
# A request unanswered this long is lost: the patience of a common HTTP client, and the lab load
# balancer's own `timeout client`. Within it, the load balancer may try a request on up to four
# nodes (`timeout server` 5 s each): a node whose ingress waits on a replica that died with
# its host's Ray holds a request until Ray declares that replica dead.
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Sample:
    target: str
    sent: float  # seconds since start()
    outcome: str
    took: float = 0.0  # seconds until the answer, or until the request failed


@dataclass
class TargetReport:
    """What one target saw from FROM (seconds since start) on."""

    target: str
    total: int
    failed: int
    outcomes: dict[str, int]
    # Seconds after FROM of the last failed request (None: none failed).
    last_failure: float | None
    # Seconds after FROM until the target answered 2xx and then never failed again
    # (None: it never did after FROM).
    recovered_after: float | None
    # Seconds the slowest of these requests took (answered or not).
    slowest: float = 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome.startswith("http"))


@dataclass
class LoadClient:
    """Posts BODY to every URL of TARGETS (name -> URL) until MAX_REQUESTS requests in all or
    MAX_SECONDS have gone by, whichever comes first."""

    targets: dict[str, str]
    body: bytes
    max_requests: int = 50_000
    max_seconds: float = 600.0
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    samples: list[Sample] = field(default_factory=list)
    # https:// targets are verified against this CA bundle (PEM), else the system's.
    cafile: str | None = None

    def __post_init__(self) -> None:
        # Why the client stopped sending by itself ("" while it has not): a test whose fault
        # outlasted the client has not seen the whole fault and must fail (see covered()).
        self.exhausted = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._tls = ssl.create_default_context(cafile=self.cafile)

    def now(self) -> float:
        """Seconds since start(), on the clock of the samples."""
        return time.monotonic() - self._t0

    def start(self) -> LoadClient:
        self._t0 = time.monotonic()
        for name, url in self.targets.items():
            thread = threading.Thread(target=self._run, args=(name, url), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 5)
        return list(self.samples)

    def __enter__(self) -> LoadClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, name: str, sent: float, outcome: str, took: float = 0.0) -> bool:
        with self._lock:
            self.samples.append(Sample(name, sent, outcome, took))
            if len(self.samples) >= self.max_requests:
                self.exhausted = self.exhausted or f"{self.max_requests} requests sent"
            elif self.now() >= self.max_seconds:
                self.exhausted = self.exhausted or f"{self.max_seconds:g} s gone by"
            return not self.exhausted

    def covered(self) -> None:
        """Raises AssertionError when the client stopped at its own limit: what came after
        was never measured, so nothing can be said of it."""
        assert not self.exhausted, (
            f"the load client stopped sending at its limit ({self.exhausted}) before the test "
            "was done: raise its limits"
        )

    def _run(self, name: str, url: str) -> None:
        parts = urlsplit(url)
        path = parts.path or "/"
        while not self._stop.is_set():
            sent = self.now()
            outcome = self._one(parts.scheme, parts.hostname, parts.port, path)
            if not self._record(name, sent, outcome, self.now() - sent):
                break
            self._stop.wait(PAUSE_S)

    def _one(self, scheme: str, hostname: str, port: int | None, path: str) -> str:
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                hostname, port or 443, timeout=REQUEST_TIMEOUT_S, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(hostname, port or 80, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request("POST", path, body=self.body, headers=self.headers)
            resp = conn.getresponse()
            resp.read()
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except (
            http.client.RemoteDisconnected,
            http.client.IncompleteRead,
            ConnectionResetError,
            BrokenPipeError,
        ):
            # Closed by the peer before the whole answer: as a node whose Ray dies does to a
            # request in flight (IncompleteRead: it had begun answering).
            return "reset"
        except ssl.SSLError:  # an OSError too
            return "tls"
        except OSError as err:
            if err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                return "unreachable"
            return "error"
        except http.client.HTTPException:
            return "error"
        finally:
            conn.close()
        return "ok" if 200 <= resp.status < 300 else f"http {resp.status}"


def report(samples: list[Sample], since: float = 0.0, until: float | None = None) -> dict:
    """Per target, what it saw between SINCE and UNTIL (seconds since start)."""
    out = {}
    for name in sorted({s.target for s in samples}):
        mine = [
            s
            for s in samples
            if s.target == name and s.sent >= since and (until is None or s.sent <= until)
        ]
        mine.sort(key=lambda s: s.sent)
        failures = [s for s in mine if s.outcome != "ok"]
        last_failure = failures[-1].sent - since if failures else None
        recovered = None
        if not failures:
            recovered = 0.0 if mine else None
        else:
            after = [s for s in mine if s.sent > failures[-1].sent]
            recovered = after[0].sent - since if after else None
        out[name] = TargetReport(
            target=name,
            total=len(mine),
            failed=len(failures),
            outcomes=dict(Counter(s.outcome for s in mine)),
            last_failure=last_failure,
            recovered_after=recovered,
            slowest=max((s.took for s in mine), default=0.0),
        )
    return out


def describe(reports: dict) -> str:
    """One line per target, for assertion messages and the test log."""
    lines = []
    for r in reports.values():
        recovered = "never" if r.recovered_after is None else f"{r.recovered_after:.1f} s"
        lines.append(
            f"{r.target}: {r.total} requests, {r.failed} failed {r.outcomes}, "
            f"serving for good after {recovered}, slowest {r.slowest:.1f} s"
        )
    return "\n".join(lines)
