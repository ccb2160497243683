"""The end-to-end benchmark on two git revisions, in alternating rounds, side by side.

    .venv/bin/python -m benchmarks.compare_revisions BEFORE AFTER [--rounds 3]
        [--once "benchmarks.dedup"] [--log-dir DIR] [-- BENCHMARK ARGS]

Each revision is checked out into a temporary worktree (``git worktree add --detach``,
``models/build`` and ``../shared`` linked to this checkout's), and ``benchmarks.pipeline`` runs
there, rounds alternating BEFORE, AFTER, BEFORE, AFTER, ... so that a slow or a fast stretch of
this shared machine falls on both. Each run imports its own revision's code: ``PYTHONPATH`` and
the working directory are its worktree (the shared venv's editable install points at
/work/main), and the script checks it on the ``mentions worker`` processes themselves (their
``/proc`` cwd and environment, and the bytecode their imports left in the worktree). The
benchmark arguments default to ``--quick --mentions 100000`` (the 1-worker row once per run).
Printed: per run the 1-worker rate, CPU per raw mention and the 1-minute load average, then the
medians per revision. ``--once MODULE`` runs another benchmark once per revision afterwards
(e.g. the held quality figures; ``{commit}`` in its arguments names the revision, for output
files to compare), its output's tail printed. The worktrees are removed at the
end; each run's full output stays in ``--log-dir``. Run it under ``flock /tmp/heavy.lock``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BENCHMARK_ARGS = ("--quick", "--mentions", "100000")
# benchmarks.pipeline's line for each 1-worker run (same wording since before #28)
ONE_WORKER_LINE = re.compile(
    r"^pipeline, 1 worker: (?P<rate>[\d,]+) mentions/s .* worker CPU (?P<cores>[\d.]+) cores "
    r"\((?P<us>\d+) us per raw mention\), load (?P<load>[\d.]+)$"
)
WORKDIR_LINE = re.compile(r"workdir (?P<path>\S+?)\)?$")
# imported by the workers only, never by the benchmark driver: its bytecode in a worktree
# shows that the workers ran that worktree's code
WORKER_ONLY_PACKAGE = Path("pipeline/agents")


@dataclass(slots=True)
class Revision:
    """A revision under test, checked out in its own worktree."""

    name: str
    commit: str
    tree: Path


@dataclass(slots=True)
class Run:
    """One benchmark run on one revision."""

    round: int
    revision: Revision
    load_1min: float
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    cores: list[float] = field(default_factory=list)
    workers_seen: list[str] = field(default_factory=list)
    seconds: float = 0.0


def git(*args: str, cwd: Path | None = None) -> str:
    """Output of a git command, stripped."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def check_out(name: str, repo: Path, scratch: Path) -> Revision:
    """A detached worktree of ``name`` under ``scratch``, with the built models linked in."""
    commit = git("rev-parse", "--short", f"{name}^{{commit}}", cwd=repo)
    tree = scratch / f"tree{len(list(scratch.glob('tree*')))}-{commit}"
    git("worktree", "add", "--detach", str(tree), commit, cwd=repo)
    models = (repo / "models" / "build").resolve()
    if not models.is_dir():
        raise SystemExit(f"no built models at {models}: build them first (make models)")
    (tree / "models" / "build").symlink_to(models)
    return Revision(name, commit, tree)


def revision_env(revision: Revision) -> dict[str, str]:
    """The environment a run on ``revision`` gets: its own code first on the path."""
    return {**os.environ, "PYTHONPATH": str(revision.tree), "HF_HUB_OFFLINE": "1"}


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def worker_origin(pid: int) -> str | None:
    """``cwd PYTHONPATH`` of a ``mentions worker`` process, None for any other process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"pipeline.cli" not in cmdline:
            return None
        cwd = os.readlink(f"/proc/{pid}/cwd")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    paths = [item[len(b"PYTHONPATH="):].decode() for item in environ
             if item.startswith(b"PYTHONPATH=")]
    return f"cwd={cwd} PYTHONPATH={paths[0] if paths else ''}"


def watch_workers(process: subprocess.Popen[str], seen: list[str]) -> threading.Thread:
    """A thread that notes the origin of every worker the benchmark starts, until it exits."""

    def watch() -> None:
        while process.poll() is None:
            for pid in children(process.pid):
                origin = worker_origin(pid)
                if origin and origin not in seen:
                    seen.append(origin)
            time.sleep(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def check_origin(revision: Revision, run: Run) -> None:
    """Fail unless the run's workers ran ``revision``'s worktree code."""
    expected = f"cwd={revision.tree} PYTHONPATH={revision.tree}"
    if not run.workers_seen:
        raise SystemExit(f"no mentions worker seen in the run on {revision.commit}")
    stray = [origin for origin in run.workers_seen if origin != expected]
    if stray:
        raise SystemExit(f"workers of the run on {revision.commit} ran elsewhere: {stray}")
    writes_bytecode = not os.environ.get("PYTHONDONTWRITEBYTECODE")
    bytecode = (revision.tree / WORKER_ONLY_PACKAGE / "__pycache__").glob("*.pyc")
    if writes_bytecode and not any(bytecode):
        raise SystemExit(f"the workers left no bytecode in {revision.tree}/"
                         f"{WORKER_ONLY_PACKAGE}: they imported another copy")


def run_benchmark(revision: Revision, round_index: int, benchmark_args: list[str],
                  log_dir: Path) -> Run:
    """One ``benchmarks.pipeline`` run in ``revision``'s worktree; its 1-worker figures."""
    run = Run(round_index, revision, os.getloadavg()[0])
    log_path = log_dir / f"round{round_index}-{revision.commit}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.pipeline", *benchmark_args],
            cwd=revision.tree, env=revision_env(revision), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        watcher = watch_workers(process, run.workers_seen)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            line = line.rstrip()
            if (match := ONE_WORKER_LINE.match(line)) is not None:
                run.rates.append(float(match["rate"].replace(",", "")))
                run.cpu_us.append(float(match["us"]))
                run.cores.append(float(match["cores"]))
            elif "workdir" in line and (found := WORKDIR_LINE.search(line)) is not None:
                remove_workdir(Path(found["path"]))
        process.wait()
        watcher.join()
    run.seconds = time.monotonic() - started
    if process.returncode != 0 or not run.rates:
        raise SystemExit(f"the benchmark failed on {revision.commit} (rc {process.returncode}),"
                         f" see {log_path}")
    check_origin(revision, run)
    return run


def remove_workdir(path: Path) -> None:
    """Delete a benchmark's scratch folder (broker and worker state), which it leaves behind."""
    if path.name.startswith("bench-pipeline-") and path.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(path, ignore_errors=True)


def run_once(module_args: str, revision: Revision, log_dir: Path, tail: int) -> None:
    """Another benchmark module once in ``revision``'s worktree; the tail of its output."""
    module, *args = shlex.split(module_args.replace("{commit}", revision.commit))
    source = revision.tree / Path(*module.split(".")).with_suffix(".py")
    print(f"\n== {module_args} on {revision.name} ({revision.commit})", flush=True)
    if not source.exists():
        print(f"   not present at this revision ({source.relative_to(revision.tree)})")
        return
    log_path = log_dir / f"{module}-{revision.commit}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        result = subprocess.run([sys.executable, "-m", module, *args], cwd=revision.tree,
                                env=revision_env(revision), stdout=log,
                                stderr=subprocess.STDOUT, check=False)
    lines = log_path.read_text().splitlines()
    print("\n".join(f"   {line}" for line in lines[-tail:]))
    print(f"   rc {result.returncode}, {time.monotonic() - started:.0f} s, full output "
          f"{log_path}", flush=True)


def report(runs: list[Run], revisions: list[Revision]) -> None:
    """The table of runs, then medians per revision and the last one against the first."""
    print("\n| round | revision | 1-worker mentions/s | CPU us per raw mention | worker cores "
          "| load 1-min at start | run s |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        print(f"| {run.round} | {run.revision.name} ({run.revision.commit}) | "
              f"{' / '.join(f'{rate:,.0f}' for rate in run.rates)} | "
              f"{' / '.join(f'{us:.0f}' for us in run.cpu_us)} | "
              f"{' / '.join(f'{cores:.2f}' for cores in run.cores)} | "
              f"{run.load_1min:.2f} | {run.seconds:.0f} |")
    medians = {}
    for revision in revisions:
        mine = [run for run in runs if run.revision is revision]
        rate = statistics.median(r for run in mine for r in run.rates)
        cpu = statistics.median(us for run in mine for us in run.cpu_us)
        medians[revision.commit] = (rate, cpu)
        print(f"| median | {revision.name} ({revision.commit}) | **{rate:,.0f}** | **{cpu:.0f}** "
              f"| | | |")
    (rate_a, cpu_a), (rate_b, cpu_b) = (medians[r.commit] for r in (revisions[0], revisions[-1]))
    if rate_a and cpu_a:
        print(f"\n{revisions[-1].commit} against {revisions[0].commit}: rate "
              f"{(rate_b / rate_a - 1) * 100:+.1f} %, CPU per raw mention "
              f"{(cpu_b / cpu_a - 1) * 100:+.1f} %")
    for revision in revisions:
        origins = {o for run in runs if run.revision is revision for o in run.workers_seen}
        print(f"workers of {revision.commit}: {', '.join(sorted(origins))}")


def main() -> None:
    argv = sys.argv[1:]
    benchmark_args = list(DEFAULT_BENCHMARK_ARGS)
    if "--" in argv:
        benchmark_args = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the baseline revision (any git revision)")
    parser.add_argument("after", help="the revision compared with it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--once", action="append", default=[],
                        help="a benchmark module (with its arguments; {commit} is replaced by "
                        "the revision's) to run once per revision after the rounds; repeatable")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where each run's full output goes (default: a new temp folder)")
    parser.add_argument("--tail", type=int, default=25, help="lines printed of --once output")
    args = parser.parse_args(argv)
    repo = Path(git("rev-parse", "--show-toplevel"))
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="compare-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="compare-trees-"))
    # the benchmarks find their data sets at ../shared/data from the repository root
    if (repo.parent / "shared").is_dir():
        (scratch / "shared").symlink_to(repo.parent / "shared")
    revisions: list[Revision] = []
    try:
        revisions = [check_out(name, repo, scratch) for name in (args.before, args.after)]
        print(f"{', '.join(f'{r.name} ({r.commit})' for r in revisions)}: {args.rounds} rounds "
              f"of benchmarks.pipeline {shlex.join(benchmark_args)}; logs in {log_dir}",
              flush=True)
        runs = []
        for round_index in range(1, args.rounds + 1):
            for revision in revisions:
                run = run_benchmark(revision, round_index, benchmark_args, log_dir)
                runs.append(run)
                print(f"round {round_index}, {revision.name} ({revision.commit}): "
                      f"{' / '.join(f'{rate:,.0f}' for rate in run.rates)} mentions/s, "
                      f"{' / '.join(f'{us:.0f}' for us in run.cpu_us)} us per raw mention, "
                      f"load {run.load_1min:.2f}, {run.seconds:.0f} s", flush=True)
        if runs:  # --rounds 0: only the --once benchmarks
            report(runs, revisions)
        for module_args in args.once:
            for revision in revisions:
                run_once(module_args, revision, log_dir, args.tail)
    finally:
        for revision in revisions:
            git("worktree", "remove", "--force", str(revision.tree), cwd=repo)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
