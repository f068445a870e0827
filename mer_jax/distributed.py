"""Multi-host training: several processes (one per host, or per GPU) run one program together.

A cluster's launcher starts the same command in every process (Slurm: ``srun python -m
mer_jax.train --distributed ...``); :func:`initialize` joins them with
``jax.distributed.initialize()`` (which finds Slurm's, Open MPI's and the TPU pods' settings by
itself, or takes MER_JAX_COORDINATOR / MER_JAX_NUM_PROCESSES / MER_JAX_PROCESS_ID). Then
``jax.devices()`` lists the devices of every process, and ``training.steps.MultiModel`` shards
the model axis over all of them: each process computes its own models' steps on its own devices
(every process reads the same batches, a pure function of the split, seed and step, so nothing
but the results crosses the network). Results are gathered with :func:`to_local`; files are
written by the main process alone (:func:`is_main`); Orbax checkpoints are written by all
(each its own shards).
"""
from __future__ import annotations

import os

import jax
import numpy as np

ENV = ("MER_JAX_COORDINATOR", "MER_JAX_NUM_PROCESSES", "MER_JAX_PROCESS_ID")


def initialize() -> None:
    """Join the other processes of this job (see the module docstring); before anything else
    touches a device. CPU processes exchange results through gloo."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    coordinator, count, index = (os.environ.get(name) for name in ENV)
    if coordinator:
        if count is None or index is None:
            raise ValueError(f"MER_JAX_COORDINATOR needs {ENV[1]} and {ENV[2]} as well")
        jax.distributed.initialize(coordinator, int(count), int(index))
    else:
        jax.distributed.initialize()


def is_main() -> bool:
    """True in the process that writes files (process 0; the only one when not distributed)."""
    return jax.process_index() == 0


def to_local(tree):
    """The same values as arrays this process can read: an array sharded over other processes'
    devices is gathered from all of them (a collective: every process must call this); other
    leaves are returned as they are."""
    def local(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return a
    return jax.tree_util.tree_map(local, tree)


def host_values(tree):
    """NumPy copies of ``tree``'s leaves, for placing on devices of several processes (every
    process holds the same values)."""
    if jax.process_count() == 1:
        return tree
    return jax.tree_util.tree_map(np.asarray, tree)


def barrier(name: str) -> None:
    """Wait until every process has reached ``name`` (nothing to wait for in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)
