"""rayforge benchmark driver (standard library only; bench/run.sh is the front end).

serve      wrk against the Serve endpoint and the same app under bare uvicorn, alternating
           (S,B then B,S ...), one-item requests at 1 and 32 connections and large batches;
           writes a markdown report and a JSON file of every run. Called by
           playbooks/benchmark.yml with the context it collected on the head.
render     prints a report again from its .json.
provision  destroys and creates a lab (playbooks/lab.yml) with each worker count, times a
           cold site.yml and no-change re-runs, counts bytes downloaded into the controller's
           wheelhouse cache and bytes shipped to the hosts, and ranks the re-run's tasks; then
           measures the lab itself: CPU use, the cluster at rest, and bench/floor.yml (no-op
           module runs only), so the re-run's growth can be read against the lab's.
machine    prints the controller's description (CPU, RAM, kernel, Docker).
docs       copies a report into docs/benchmarks.md between its markers.

Numbers are medians of the alternating runs; a ratio is the median of the ratios of runs made
back to back on the same hosts, which is what stays meaningful on a shared machine. Nothing
here asserts a timing: the targets are printed with their status, never enforced.

Where each behaviour lives:

cli.py               the command line: subcommands, arguments, defaults
serve.py             the serve subcommand: the loads, the alternating runs, the report files
render.py            the render subcommand
provision.py         the provision subcommand: lab sizes, cold rollout, re-runs, floor
machine.py           the machine subcommand; the controller's description and git commit
docs.py              the docs subcommand: a report into docs/benchmarks.md's section
wrk.py               load generation: one wrk run, and wrk's output read back
answer_check.py      the correctness check: one request, its scores compared in full
stats.py             medians, summaries, Serve/bare ratios of back-to-back pairs
serve_report.py      the serve report (markdown) and its targets
provision_report.py  the provisioning report (markdown), its targets and the floor table
cells.py             how a value is written in a table cell (ms, rates, %, MB)
playbook.py          one timed ansible-playbook run, and its log read back
cpu_load.py          the machine's CPU use; waiting for the cluster to be at rest
wheelhouse.py        bytes downloaded, built and shipped (the wheelhouse cache)
options.py           comma-separated options read as integers
progress.py          progress lines (stderr and the run's .log)
files.py             the repository files used (wrk script, floor playbook, docs page)
bench.py             the same command line, run as a file (playbooks/benchmark.yml)
"""
