"""What compare_torch.py and compare_jax.py share: the step's options and minivae's side of a round.

Neither PyTorch nor JAX is imported here, so each comparison runs in its own virtualenv.
"""
import json
import os
import subprocess
import sys


def add_step_arguments(parser, twin):
    """The options of a step comparison (threads, rounds, the step's sizes, data, JSON output)."""
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both (default: all CPUs)")
    parser.add_argument("--rounds", type=int, default=3, help=f"minivae-then-{twin} rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=1, help="L")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST IDX folder (default: embedded subset)")
    parser.add_argument("--json", default=None, help="also write all rounds to this JSON file")


def run_minivae_bench(args, env=None):
    """`minivae bench --json` in a fresh process (environment ``env``, default this one's); its result."""
    command = [sys.executable, "-m", "minivae", "bench", "--json",
               "--batch-size", str(args.batch_size), "--n-samples", str(args.samples),
               "--steps", str(args.steps), "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--seed", str(args.seed)]
    if args.data:
        command += ["--data", args.data]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)
