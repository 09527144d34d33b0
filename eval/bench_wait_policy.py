"""Training steps/s on a CPU shared with other work: OpenMP threads that spin while they wait, or sleep.

torch's CPU kernels run in an OpenMP thread pool. With ``OMP_WAIT_POLICY=ACTIVE`` (GNU OpenMP spins
for a while by default) a thread that reaches the end of a parallel region busy-waits for the others;
when another process holds one of the cores, the waiting thread burns the time slice the late thread
needs, and every small parallel region (a caption model runs thousands per batch) costs a scheduler
quantum. ``PASSIVE`` makes waiting threads sleep. This script measures both, on an idle machine and
next to one busy process (a pure-Python loop standing in for another job), each through
``eval/bench_train.py`` (the trainer's own ``train_one_epoch``) in a fresh interpreter, because the
policy is read once when the OpenMP runtime starts. Rounds interleave the settings; medians are
reported, with the ratio of each setting to the default (the variable unset) in the same load.

    python eval/bench_wait_policy.py RECIPE.toml [--set KEY=VALUE ...] [--threads 2] [--rounds 3]
                                     [--steps 30] [--out eval/results/bench_wait_policy]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLICIES = ("default", "ACTIVE", "PASSIVE")
LOADS = ("idle", "one busy process")


def steps_per_second(recipe: str, overrides: list[str], policy: str, threads: int, steps: int) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, str(HERE / "bench_train.py"), recipe, "--amp", "off", "--device", "cpu",
               "--warmup", "3", "--steps", str(steps), "--out", str(out), "--set", f"train.threads={threads}"]
        for o in overrides:
            cmd += ["--set", o]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())[-1]["steps_per_s"]


def measure(args) -> dict[str, dict[str, list[float]]]:
    runs = {load: {p: [] for p in POLICIES} for load in LOADS}
    for _ in range(args.rounds):
        for load in LOADS:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
            try:
                for policy in POLICIES:
                    runs[load][policy].append(steps_per_second(args.recipe, args.overrides, policy,
                                                               args.threads, args.steps))
                    print(f"{load:>16} {policy:>8}: {runs[load][policy][-1]:.2f} steps/s", flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    return runs


def markdown(args, runs) -> str:
    lines = [f"# OpenMP wait policy: training steps/s ({args.recipe}, {args.threads} threads, "
             f"{args.steps} steps, median of {args.rounds} interleaved rounds)", "",
             "| load | OMP_WAIT_POLICY | steps/s | vs default |", "|---|---|---:|---:|"]
    for load in LOADS:
        base = statistics.median(runs[load]["default"])
        for policy in POLICIES:
            med = statistics.median(runs[load][policy])
            lines.append(f"| {load} | {policy if policy != 'default' else 'unset'} | {med:.2f} | {med / base:.2f}x |")
    return "\n".join(lines) + "\n\nCommand: `python eval/bench_wait_policy.py " + " ".join(sys.argv[1:]) + "`\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", default="eval/results/bench_wait_policy")
    args = p.parse_args(argv)
    runs = measure(args)
    md = markdown(args, runs)
    Path(args.out + ".md").write_text(md)
    Path(args.out + ".json").write_text(json.dumps({"args": vars(args), "steps_per_s": runs}, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
