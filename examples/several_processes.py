"""fit across several processes with jax.distributed: each process holds its share of the examples.

Run as is, it starts two processes of itself on this machine (CPU collectives through gloo), the
way a cluster launcher would start one per host, and each prints the same losses. On a cluster,
start one copy per host with::

    python several_processes.py --coordinator HOST0:1234 --num-processes N --process-id I

(on Slurm or Kubernetes, ``--auto``: ``jax.distributed.initialize()`` reads them from the
environment). Every process runs the same program; ``jax.devices()`` is then every process's
devices and ``jgd.data_mesh()`` spans them all.
"""

import argparse
import socket
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--coordinator")
parser.add_argument("--num-processes", type=int)
parser.add_argument("--process-id", type=int)
parser.add_argument("--auto", action="store_true", help="detect the cluster (Slurm, Kubernetes)")
args = parser.parse_args()

if not (args.coordinator or args.auto):  # a local "cluster" of two processes of this script
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    me = [sys.executable, __file__, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = [subprocess.Popen([*me, "--process-id", str(i)]) for i in range(2)]
    sys.exit(max(p.wait() for p in procs))

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across hosts
if args.auto:
    jax.distributed.initialize()
else:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)

import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import jgd  # noqa: E402

mlp = jgd.problems.mlp("digits")  # every process could read its own shard from disk instead
X, y = mlp.data
n, i = jax.process_count(), jax.process_index()
per = len(y) // n  # each process's share (the rest left out, so the shares are equal)
mine = slice(i * per, (i + 1) * per)
mesh = jgd.data_mesh()  # all devices of all processes
split = NamedSharding(mesh, PartitionSpec("data"))
data = tuple(jax.make_array_from_process_local_data(split, a[mine]) for a in (X, y))
result = mlp._replace(data=data).fit(batch_size=64, epochs=3, key=0, mesh=mesh)
losses = np.asarray(result.losses)  # replicated: every process holds the whole result
print(
    f"process {i} of {n}: {len(jax.devices())} devices, {result.steps} steps, "
    f"loss {losses[0]:.4f} -> {losses[-1]:.4f}",
    flush=True,
)
