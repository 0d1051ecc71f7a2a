"""Start-up and exit of the pipeline's commands, with and without the entry module's garbage-collector policy.

``ndvi-pipeline --help`` (it imports the whole pipeline, prints and exits) started two ways, alternated, each
in a fresh interpreter:

- ``entry``: the console script's way, ``dagster_project.entry.pipeline`` (imports with the cyclic collector
  paused, then frozen; frozen again before exit);
- ``plain``: ``dagster_project.cli.main`` called directly, as the console script did before.

Prints the median wall time from the interpreter's start to its end, and of that the exit: from the last
``atexit`` handler (registered first, so it runs last) to the end of the process, which is where the collector
walked every object once more. A real run adds its own objects on top (about 2 s of exit after a 96-area run
without the policy, 0.2 s with it; see the README).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

#: Each variant registers the exit stamp first, then runs the command; the stamp goes to stderr.
PRELUDE = "import atexit, sys, time\natexit.register(lambda: print(repr(time.time()), file=sys.stderr))\n"
VARIANTS = {
    "entry": "sys.argv = ['ndvi-pipeline', '--help']\nfrom dagster_project.entry import pipeline\npipeline()\n",
    "plain": "from dagster_project.cli import main\nmain(['--help'])\n",
}


def run_once(code: str) -> tuple[float, float]:
    """(wall seconds, exit seconds) of one fresh interpreter running ``code``."""
    started = time.time()
    proc = subprocess.run([sys.executable, "-c", PRELUDE + code], capture_output=True, text=True)
    ended = time.time()
    stamps = [line for line in proc.stderr.splitlines() if line.replace(".", "", 1).isdigit()]
    if not stamps:
        raise RuntimeError(f"no exit stamp; the command printed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return ended - started, ended - float(stamps[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant, alternated")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeat):
        for name in VARIANTS if repeat % 2 == 0 else reversed(VARIANTS):
            results[name].append(run_once(VARIANTS[name]))
    print(f"`ndvi-pipeline --help` in a fresh interpreter, median of {args.repeat} (alternated)\n")
    print("| start | wall s | of which exit s |")
    print("|---|---|---|")
    medians = {}
    for name, runs in results.items():
        medians[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        print(f"| {name} | {medians[name][0]:.2f} | {medians[name][1]:.2f} |")
    print(f"\nwall(entry) / wall(plain) = {medians['entry'][0] / medians['plain'][0]:.2f}; "
          f"exit {medians['plain'][1]:.2f} -> {medians['entry'][1]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
