import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import zarr

from conftest import TINY_OVERRIDES
from mer_jax import evaluate, files
from mer_jax.predictions import read_iterations
from mer_jax.store import FeatureStore
from mer_jax.training import data, steps
from mer_jax.training import workdir as workdir_lib
from mer_jax.training.config import TrainConfig, apply_overrides
from mer_jax.training.loop import train_and_evaluate
from mer_jax.training.splits import load_or_create_splits


def test_dry_run_prints_the_papers_parameter_count():
    result = subprocess.run([sys.executable, "-m", "mer_jax.train", "--config", "configs/paper.py",
                             "--mode", "mixed", "--dry-run"], capture_output=True, text=True,
                            check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "params: 5966116" and "(129, 2048, 1)" in lines[-2]


def test_overrides_are_typed_and_checked(tiny_config):
    assert tiny_config.model.lstm_units == (8, 8, 8) and tiny_config.time_bins == 128
    with pytest.raises(KeyError, match="unknown config field"):
        apply_overrides(tiny_config, ["model.nope=1"])


def _random_batch(models, config, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2, (models, config.batch_size, 129, config.time_bins, channels)).astype(np.float32)
    y = rng.uniform(0, 1, (models, config.batch_size, 4)).astype(np.float32)
    return x, y


def _states(config, models, channels=1):
    keys = jnp.stack([jax.random.PRNGKey(k) for k in range(models)])
    return steps.create_states(config.model, (129, config.time_bins, channels), keys,
                               config.learning_rate)


def test_create_states_stacks_one_state_per_key(tiny_config):
    """create_states == create_state per key, stacked (a vmapped initialisation can deadlock
    XLA:CPU: benchmarks/cpu_qr_deadlock.py)."""
    shape = (129, tiny_config.time_bins, 1)
    stacked = _states(tiny_config, 3)
    for k in range(3):
        one = steps.create_state(tiny_config.model, shape, jax.random.PRNGKey(k), 1e-3)
        for a, b in zip(jax.tree_util.tree_leaves(stacked.params),
                        jax.tree_util.tree_leaves(one.params)):
            np.testing.assert_array_equal(a[k], b)
    assert int(stacked.step[2]) == 0 and stacked.step.shape == (3,)


def test_train_step_compiles_once_and_donates_state(tiny_config):
    trainer = steps.MultiModel(tiny_config.model, tiny_config.learning_rate, "mse", 2, 1)
    groups = trainer.split(_states(tiny_config, 2))
    for k in range(3):
        old_leaf = jax.tree_util.tree_leaves(groups[0].params)[0]
        x, y = _random_batch(2, tiny_config, seed=k)
        groups, metrics = trainer.train(groups, x, y, jax.random.split(jax.random.PRNGKey(k), 2))
        assert old_leaf.is_deleted()  # the state is donated
        assert metrics["loss"].shape == (2,) and np.all(np.isfinite(metrics["loss"]))
    assert trainer._train._cache_size() == 1  # fixed shapes: one trace for every call and group
    assert trainer.merge(groups).step.tolist() == [3, 3]


def test_models_in_parallel_follow_free_device_memory(tiny_config):
    """Default: one model per call. "auto": on accelerators the vmapped group is as large as 80%
    of the free device memory allows, by the compiled train step's own memory analysis; on CPU it
    is 1 without measuring. An int is taken as it is (at most K)."""
    per_model = steps.train_step_bytes(tiny_config.model, (129, 128, 1), tiny_config.batch_size,
                                       1e-3, "mse")
    assert per_model > tiny_config.batch_size * 129 * 128 * 4      # at least its batch
    # a model needs the larger of its train step and its evaluation call (eval_batch_size songs)
    evals = [steps.eval_bytes(tiny_config.model, (129, 128, 1), b, "mse") for b in (8, 64)]
    assert 64 * 129 * 128 * 4 < evals[1] and evals[0] < evals[1]
    assert steps.model_bytes(tiny_config.model, (129, 128, 1), tiny_config.batch_size, 64, 1e-3,
                             "mse") == max(per_model, evals[1])
    assert steps.chunk_for_memory(9, per_model, int(per_model * 4 / 0.8) + 1) == 4
    assert steps.chunk_for_memory(9, per_model, 10 ** 15) == 9     # never more than K
    assert steps.chunk_for_memory(9, per_model, 1) == 1            # never fewer than 1
    assert steps.chunk_for_memory(9, None, 10 ** 12) == 9          # unknown: all K
    never = lambda: pytest.fail("measured on CPU")
    assert steps.default_chunk(9, None, never) == 1
    assert steps.default_chunk(9, "auto", never) == 1
    assert steps.default_chunk(9, 4, never) == 4 and steps.default_chunk(9, 20, never) == 9
    with pytest.raises(ValueError, match="models_in_parallel"):
        dataclasses.replace(tiny_config, models_in_parallel="all")


def test_one_vmapped_group_equals_groups_of_one(tiny_config):
    x, y = _random_batch(2, tiny_config, seed=5)
    rngs = jax.random.split(jax.random.PRNGKey(9), 2)
    results = []
    for chunk in (1, 2):
        trainer = steps.MultiModel(tiny_config.model, 1e-3, "mse", 2, chunk)
        groups, metrics = trainer.train(trainer.split(_states(tiny_config, 2)), x, y, rngs)
        results.append((np.asarray(metrics["loss"]),
                        jax.tree_util.tree_leaves(trainer.merge(groups).params)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_model_axis_is_sharded_over_several_devices(tmp_path):
    """Two virtual CPU devices: a group of 2 models is split one model per device; 3 models in
    a group of 3 are padded to 4 (never left unsharded), and the first two train exactly as the
    group of 2 did."""
    script = (
        "import jax, numpy as np\n"
        "from conftest import TINY_OVERRIDES\n"
        "from mer_jax.training import steps\n"
        "from mer_jax.training.config import TrainConfig, apply_overrides, load_config\n"
        "c = apply_overrides(load_config('configs/small.py'), TINY_OVERRIDES)\n"
        "states = [steps.create_state(c.model, (129, 128, 1), jax.random.PRNGKey(k), 1e-3) for k in range(3)]\n"
        "stack = lambda n: jax.tree_util.tree_map(lambda *a: jax.numpy.stack(a), *states[:n])\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.uniform(0, 2, (3, 8, 129, 128, 1)).astype(np.float32); y = rng.uniform(0, 1, (3, 8, 4)).astype(np.float32)\n"
        "keys = jax.random.split(jax.random.PRNGKey(0), 3)\n"
        "trainer = steps.MultiModel(c.model, 1e-3, 'mse', 2, 2)\n"
        "g2, m2 = trainer.train(trainer.split(stack(2)), x[:2], y[:2], keys[:2])\n"
        "leaf = jax.tree_util.tree_leaves(g2[0].params)[0]\n"
        "print(len(jax.devices()), len(leaf.sharding.device_set), np.isfinite(m2['loss']).all())\n"
        "three = steps.MultiModel(c.model, 1e-3, 'mse', 3, 3)\n"
        "groups, m = three.train(three.split(stack(3)), x, y, keys)\n"
        "leaf = jax.tree_util.tree_leaves(groups[0].params)[0]\n"
        "ours = jax.tree_util.tree_leaves(three.merge(groups).params)\n"
        "pair = jax.tree_util.tree_leaves(trainer.merge(g2).params)\n"
        "same = np.allclose(m['loss'][:2], m2['loss'], rtol=1e-5) and all(np.allclose(a[:2], b, rtol=1e-4, atol=1e-6) for a, b in zip(ours, pair))\n"
        "print(three.chunk, three.padded_models, len(leaf.sharding.device_set), m['loss'].shape[0], same)\n")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": os.pathsep.join([str(__import__("pathlib").Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.split() == ["2", "2", "True", "4", "4", "2", "3", "True"], out.stdout


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_the_models_of_one_process(tiny_store, tmp_path):
    """``mer_jax.train --distributed`` in two processes (jax.distributed over gloo, one CPU
    device each): 3 models sharded one per device (padded to 4), files written once, the same
    predictions as one process training them one at a time."""
    port = _free_port()
    args = [sys.executable, "-m", "mer_jax.train", "--mode", "mixed", "--config", "small",
            "--store", str(tiny_store), *(a for o in TINY_OVERRIDES for a in ("--set", o)),
            "--set", "iterations=3"]
    procs = [subprocess.Popen([*args, "--distributed", "--workdir", str(tmp_path / "dist")],
                              env={**os.environ, "MER_JAX_COORDINATOR": f"localhost:{port}",
                                   "MER_JAX_NUM_PROCESSES": "2", "MER_JAX_PROCESS_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    subprocess.run([*args, "--workdir", str(tmp_path / "one")], check=True, capture_output=True)
    record = json.loads((tmp_path / "dist" / "run_mixed.json").read_text())
    assert (record["processes"], record["devices"], record["models_in_parallel"],
            record["models_computed"]) == (2, 2, 2, 4)
    dist = read_iterations(sorted((tmp_path / "dist" / "predictions").glob("*.csv")))
    one = read_iterations(sorted((tmp_path / "one" / "predictions").glob("*.csv")))
    assert [t.iteration for t in dist] == [t.iteration for t in one] == [1, 2, 3]
    for a, b in zip(dist, one):
        assert a.song_ids == b.song_ids
        np.testing.assert_allclose(a.predictions["mixed"], b.predictions["mixed"], atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "dist" / "models").iterdir()) == [
        f"mixed_iteration_{i}" for i in (1, 2, 3)]


def test_gaussian_kl_loss_decreases_the_kl(tiny_config):
    """Steps on the Gaussian-KL loss lower the evaluation's KL (kl.kl_from_tables) of the
    predictions against the targets, and the loss is that KL (with the training std floor)."""
    from mer_jax.kl import kl_from_tables
    config = apply_overrides(tiny_config, ["loss='gaussian_kl'", "model.std_activation='softplus'",
                                           "model.dropout=0.0"])
    trainer = steps.MultiModel(config.model, 3e-3, config.loss, 1, 1)
    x, y = _random_batch(1, config, seed=1)
    y[..., 2:] = np.random.default_rng(2).uniform(0.08, 0.2, y[..., 2:].shape)
    groups = trainer.split(_states(config, 1))

    def kl(groups):
        return float(np.mean(kl_from_tables(y[0], np.asarray(trainer.predict(groups, x))[0])))

    before, losses = kl(groups), []
    for step in range(12):
        groups, metrics = trainer.train(groups, x, y, jax.random.split(jax.random.PRNGKey(step), 1))
        losses.append(float(metrics["loss"][0]))
    assert np.isfinite(losses).all()
    np.testing.assert_allclose(losses[0], before, rtol=1e-4)     # the loss is the KL
    assert np.all(np.diff(losses) < 0), losses                     # falls at every step
    assert kl(groups) < 0.6 * before, (before, kl(groups))


def test_batches_are_a_pure_function_of_the_step():
    a = data.batch_positions(10, 4, step=2, seed=(3, 1))
    assert np.array_equal(a, data.batch_positions(10, 4, step=2, seed=(3, 1)))
    # steps 0-1 and the first half of step 2 cover the first pass: every song once
    first_pass = np.concatenate([data.batch_positions(10, 4, s, (3, 1)) for s in range(3)])[:10]
    assert sorted(first_pass) == list(range(10))
    # the batch-order stream is not a split's stream (same entropy, a spawned child)
    order = np.random.default_rng([0, 1]).permutation(10)
    assert not np.array_equal(data.batch_positions(10, 10, 0, (0, 1)), order)


def test_random_crops_are_seeded_slices(tiny_config):
    x = np.arange(2 * 3 * 5 * 20 * 1, dtype=np.float32).reshape(2, 3, 5, 20, 1)  # (K, B, F, T, C)
    seeds = [(0, 1), (0, 2)]
    crops = data.random_crops(x, 8, step=4, seeds=seeds)
    assert crops.shape == (2, 3, 5, 8, 1)
    for k, seed in enumerate(seeds):
        for b, start in enumerate(data.crop_offsets(20, 8, 3, 4, seed)):
            assert 0 <= start <= 12
            np.testing.assert_array_equal(crops[k, b], x[k, b, :, start:start + 8])
    np.testing.assert_array_equal(crops, data.random_crops(x, 8, step=4, seeds=seeds))
    assert not np.array_equal(crops, data.random_crops(x, 8, step=5, seeds=seeds))
    with pytest.raises(ValueError, match="needs model.summary 'pool'"):
        apply_overrides(tiny_config, ["crop_bins=64"])          # the LSTMs need a fixed length
    with pytest.raises(ValueError, match="needs model.summary 'pool'"):
        apply_overrides(tiny_config, ["model.summary=pool", "crop_bins=256"])
    with pytest.raises(ValueError, match="long enough for the conv blocks"):
        apply_overrides(tiny_config, ["model.summary=pool", "crop_bins=64"])
    assert tiny_config.model.time_left(128) == 1 and tiny_config.model.time_left(64) == 0


def test_a_songs_new_audio_makes_a_new_run(tiny_store, tiny_config, tmp_path):
    """The run's identity (its fingerprint: checkpoints, predictions) holds the songs' audio: a
    song redone from new audio is never trained on from an old run's checkpoint."""
    store = FeatureStore(tiny_store)
    splits = load_or_create_splits(tmp_path / "splits.json", store.ids, 2, 0.25, seed=4)
    copy = shutil.copytree(tiny_store, tmp_path / "elsewhere.zarr")
    identity = workdir_lib.run_identity(tiny_config, store, "mixed", splits)
    assert workdir_lib.run_identity(tiny_config, FeatureStore(copy), "mixed", splits) == identity
    zarr.open_group(str(copy), mode="r+")["sources"][3] = "0:new audio"
    assert files.changed_keys(identity, workdir_lib.run_identity(
        tiny_config, FeatureStore(copy), "mixed", splits)) == ["inputs"]


def test_run_records_keep_every_start_and_say_when_kernels_change(tmp_path, capsys):
    """run_<mode>.json's ``starts``: a resumed run keeps its earlier starts (another fingerprint
    starts afresh); resuming in another setup (here other LSTM kernels) is said, restarting from
    step 0 is not."""
    env = {"resumed_from_step": 0, "git_commit": "c1", "jax": "0.10.2", "backend": "cpu",
           "convolutions": "onednn", "lstm": "scan", "models_in_parallel": 1}
    first = workdir_lib.starts(tmp_path, "mixed", "f1", env)
    assert [s["resumed_from_step"] for s in first] == [0] and first[0]["started"]
    files.write_json(tmp_path / "run_mixed.json", {"fingerprint": "f1", "starts": first})
    again = workdir_lib.starts(tmp_path, "mixed", "f1", {**env, "resumed_from_step": 4})
    assert [s["resumed_from_step"] for s in again] == [0, 4]
    assert capsys.readouterr().out == ""
    other = {**env, "resumed_from_step": 4, "lstm": "cudnn (MER_JAX_LSTM=cudnn)"}
    assert len(workdir_lib.starts(tmp_path, "mixed", "f1", other)) == 2
    said = capsys.readouterr().out
    assert "in another setup (lstm: scan -> cudnn (MER_JAX_LSTM=cudnn))" in said
    assert len(workdir_lib.starts(tmp_path, "mixed", "f1", {**other, "resumed_from_step": 0})) == 2
    assert len(workdir_lib.starts(tmp_path, "mixed", "f2", other)) == 1
    assert capsys.readouterr().out == ""
    files.write_json(tmp_path / "run_mixed.json", {"fingerprint": "f1", **env})   # older format
    assert workdir_lib.starts(tmp_path, "mixed", "f1", env)[0] == env


def test_mixup_mixes_inputs_linearly_and_labels_as_gaussian_mixtures():
    k_models, batch = 2, 6
    song = np.arange(1, batch + 1, dtype=np.float64)            # song b: time bins a, a^2
    x = np.zeros((k_models, batch, 3, 2, 1), np.float32)
    x[:, :, :, 0], x[:, :, :, 1] = song[:, None, None], song[:, None, None] ** 2
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.uniform(0, 1, (k_models, batch, 2)),
                        rng.uniform(0.05, 0.3, (k_models, batch, 2))], -1).astype(np.float32)
    seeds = [(0, 1), (1, 1)]
    mx, my = data.mixup(x, y, 0.4, step=5, seeds=seeds)
    np.testing.assert_array_equal(mx, data.mixup(x, y, 0.4, step=5, seeds=seeds)[0])  # seeded
    assert not np.array_equal(mx, data.mixup(x, y, 0.4, step=6, seeds=seeds)[0])
    assert not np.array_equal(mx[0], mx[1])                     # each model its own stream
    partners = 0
    for k in range(k_models):
        for b in range(batch):
            a = song[b]
            u, v = float(mx[k, b, 0, 0, 0]), float(mx[k, b, 0, 1, 0])
            if abs(u - a) < 1e-4:                               # mixed with itself (or lam = 1)
                p, lam = b, 1.0
            else:      # u = lam a + (1 - lam) c and v = lam a^2 + (1 - lam) c^2 give c and lam
                c = (v - a * a) / (u - a) - a
                p, lam = int(round(c)) - 1, 1 - (u - a) / (c - a)
                partners += 1
            assert 0 <= lam <= 1 and 0 <= p < batch
            mean = lam * y[k, b, :2] + (1 - lam) * y[k, p, :2]
            second = (lam * (y[k, b, 2:] ** 2 + y[k, b, :2] ** 2)
                      + (1 - lam) * (y[k, p, 2:] ** 2 + y[k, p, :2] ** 2))
            np.testing.assert_allclose(my[k, b, :2], mean, atol=1e-4)
            np.testing.assert_allclose(my[k, b, 2:], np.sqrt(second - mean ** 2), atol=1e-3)
    assert partners >= batch
    with pytest.raises(ValueError, match="mixup must be"):
        TrainConfig(mixup=0.0)


def test_one_epoch_smoke_run_and_determinism(tiny_store, tiny_config, tmp_path, monkeypatch):
    first = train_and_evaluate(tiny_config, tiny_store, tmp_path / "a", "sep", progress=False)
    work = tmp_path / "a"
    assert [p.name for p in first.predictions] == ["sep_iteration_1.csv", "sep_iteration_2.csv"]
    for name in ("splits.json", "metrics_sep.jsonl", "loss_sep.png", "run_sep.json"):
        assert (work / name).is_file(), name
    run = json.loads((work / "run_sep.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", run["git_commit"])
    assert run["config"]["time_bins"] == 128
    [start] = run["starts"]
    assert start["resumed_from_step"] == 0 and start["git_commit"] == run["git_commit"]
    assert start["finished"] and start["step_seconds"] == run["step_seconds"]
    assert (work / "models" / "sep_iteration_2" / "model.json").is_file()
    rows = [json.loads(line) for line in (work / "metrics_sep.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"train", "val"} and len(rows[0]["loss"]) == 2
    # the tables are the evaluation's format (a barely trained linear head can emit sigma <= 0,
    # which the evaluation refuses unless told to clamp)
    evaluation = evaluate.evaluate_iterations(read_iterations(first.predictions), min_std=1e-3)
    assert [r["iteration"] for r in evaluation.stats_rows] == [1, 2]
    assert np.isfinite(evaluation.stats_rows[0]["E_sep"])
    second = train_and_evaluate(tiny_config, tiny_store, tmp_path / "b", "sep", progress=False)
    for a, b in zip(first.predictions, second.predictions):
        assert a.read_bytes() == b.read_bytes()  # same seed, same predictions
    # the validation passes only log losses (the loss curves): one after every step instead of
    # one at the end leaves the trained models, and so the predictions, the same bit for bit
    often = train_and_evaluate(dataclasses.replace(tiny_config, eval_every=1), tiny_store,
                               tmp_path / "d", "sep", progress=False)
    assert len([line for line in (tmp_path / "d" / "metrics_sep.jsonl").read_text().splitlines()
                if '"val"' in line]) == often.steps > 1
    for a, d in zip(first.predictions, often.predictions):
        assert a.read_bytes() == d.read_bytes()
    # other evaluation batches (3 songs per call, padded: the test sets have 4) change the
    # validation losses and predictions by float rounding only; the run records the setting
    sizes, batches = [], data.padded_batches      # the real function, its batch sizes recorded
    monkeypatch.setattr(data, "padded_batches",
                        lambda idx, b, n=None: sizes.append(b) or batches(idx, b, n))
    third = train_and_evaluate(dataclasses.replace(tiny_config, eval_batch_size=3), tiny_store,
                               tmp_path / "c", "sep", progress=False)
    assert sizes and set(sizes) == {3}
    assert json.loads((tmp_path / "c" / "run_sep.json").read_text())["config"][
        "eval_batch_size"] == 3
    for a, c in zip(read_iterations(first.predictions), read_iterations(third.predictions)):
        assert a.song_ids == c.song_ids
        np.testing.assert_allclose(c.predictions["sep"], a.predictions["sep"], rtol=1e-5,
                                   atol=1e-6)
    losses = [[r["loss"] for r in map(json.loads, (work.parent / w / "metrics_sep.jsonl")
                                      .read_text().splitlines()) if r["kind"] == "val"]
              for w in ("a", "c")]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    with pytest.raises(ValueError, match="eval_batch_size"):
        dataclasses.replace(tiny_config, eval_batch_size=0)


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_from_its_checkpoint(tiny_store, tmp_path):
    """Both processes of a ``--distributed`` run die (kill -9 after their first finalized
    checkpoint, step 2); the rerun of both resumes from it and gives the predictions of one
    process training the same models without interruption."""
    args = ["mer_jax.train", "--mode", "mixed", "--config", "small", "--store", str(tiny_store),
            *(a for o in TINY_OVERRIDES + ["iterations=2", "epochs=4", "checkpoint_every=2"]
              for a in ("--set", o)), "--workdir"]
    kill = [str(Path(__file__).with_name("kill_after.py")), "mer_jax.training.loop:save_checkpoint",
            "1"]

    def pair(prefix: list[str], survivor_s: float) -> list[tuple[int, str]]:
        """(return code, output) of both processes; the second gets ``survivor_s`` more once
        the first has ended (a survivor of its partner's death is killed then)."""
        port = _free_port()
        procs = [subprocess.Popen(
            [sys.executable, *prefix, *args, str(tmp_path / "dist"), "--distributed"],
            env={**os.environ, "MER_JAX_COORDINATOR": f"localhost:{port}",
                 "MER_JAX_NUM_PROCESSES": "2", "MER_JAX_PROCESS_ID": str(i)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
        results = []
        try:
            for p, timeout in zip(procs, (600, survivor_s)):
                try:
                    out = p.communicate(timeout=timeout)[0]
                except subprocess.TimeoutExpired:
                    p.kill()
                    out = p.communicate()[0]
                results.append((p.returncode, out))
        finally:
            for p in procs:
                p.kill()
        return results

    died = pair(kill, 120)
    assert died[0][0] == -signal.SIGKILL, died
    assert not (tmp_path / "dist" / "predictions").exists()    # it died mid-training
    resumed = pair(["-m"], 600)
    assert [code for code, _ in resumed] == [0, 0], resumed
    assert json.loads((tmp_path / "dist" / "run_mixed.json").read_text())[
        "resumed_from_step"] >= 2
    subprocess.run([sys.executable, "-m", *args, str(tmp_path / "one")], check=True,
                   capture_output=True)
    dist = read_iterations(sorted((tmp_path / "dist" / "predictions").glob("*.csv")))
    one = read_iterations(sorted((tmp_path / "one" / "predictions").glob("*.csv")))
    assert [t.iteration for t in dist] == [t.iteration for t in one] == [1, 2]
    for a, b in zip(dist, one):
        np.testing.assert_allclose(a.predictions["mixed"], b.predictions["mixed"], atol=1e-5)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_predictions(tiny_store, tmp_path):
    overrides = [f"--set={o}" for o in TINY_OVERRIDES + ["epochs=4", "checkpoint_every=2"]]
    command = [sys.executable, "-m", "mer_jax.train", "--mode", "mixed", "--config",
               "configs/small.py", "--store", str(tiny_store), *overrides]
    subprocess.run(command + ["--workdir", str(tmp_path / "full")], check=True,
                   capture_output=True)
    killed = tmp_path / "killed"
    # kill -9 right after the first checkpoint (step 2) is finalized (tests/kill_after.py)
    crash = subprocess.run([sys.executable, str(Path(__file__).with_name("kill_after.py")),
                            "mer_jax.training.loop:save_checkpoint", "1",
                            *command[2:], "--workdir", str(killed)], capture_output=True)
    assert crash.returncode == -signal.SIGKILL
    assert not (killed / "predictions").exists()  # it really died mid-training
    subprocess.run(command + ["--workdir", str(killed)], check=True, capture_output=True)
    run = json.loads((killed / "run_mixed.json").read_text())
    assert run["resumed_from_step"] >= 2
    died, resumed = run["starts"]                # each start's record, the killed one's kept
    assert died["resumed_from_step"] == 0 and "finished" not in died
    assert resumed["resumed_from_step"] == run["resumed_from_step"] and resumed["finished"]
    for n in (1, 2):
        name = f"predictions/mixed_iteration_{n}.csv"
        assert (killed / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_seeds_times_splits_in_one_program(tiny_store, tiny_config, tmp_path):
    """S x I models: one compiled step; a seed's models equal a one-seed run of that seed; a
    rerun with a changed config in the same workdir gives the new config's results."""
    two = apply_overrides(tiny_config, ["seeds=2"])
    one = apply_overrides(tiny_config, ["seed=1"])
    single = train_and_evaluate(one, tiny_store, tmp_path / "w1", "mixed", progress=False)
    assert [p.name for p in single.predictions] == ["mixed_iteration_1.csv",
                                                    "mixed_iteration_2.csv"]
    both = train_and_evaluate(two, tiny_store, tmp_path / "w2", "mixed", progress=False)
    assert both.compilations == 1
    names = [p.name for p in both.predictions]
    assert names == [f"mixed_seed_{s}_iteration_{i}.csv" for s in (0, 1) for i in (1, 2)]
    tables = {p.name: read_iterations([p])[0].predictions["mixed"] for p in both.predictions}
    assert not np.allclose(tables["mixed_seed_0_iteration_1.csv"],
                           tables["mixed_seed_1_iteration_1.csv"])
    for i in (1, 2):   # same seed, same models
        assert (tmp_path / "w2" / "predictions" / f"mixed_seed_1_iteration_{i}.csv").read_bytes() \
            == (tmp_path / "w1" / "predictions" / f"mixed_iteration_{i}.csv").read_bytes()
    assert (tmp_path / "w2" / "models" / "mixed_seed_1_iteration_2" / "model.json").is_file()
    rerun = train_and_evaluate(two, tiny_store, tmp_path / "w1", "mixed", progress=False)
    assert sorted(p.name for p in (tmp_path / "w1" / "predictions").iterdir()) == names
    for a, b in zip(rerun.predictions, both.predictions):
        assert a.read_bytes() == b.read_bytes()
    assert not (tmp_path / "w1" / "models" / "mixed_iteration_1").exists()


def test_a_non_finite_loss_stops_training_naming_the_model(tiny_store, tiny_config, tmp_path):
    config = apply_overrides(tiny_config, ["learning_rate=1e30", "epochs=3"])
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step \d+ \(seed 0, "
                                                 r"iteration \d"):
        train_and_evaluate(config, tiny_store, tmp_path, "mixed", progress=False)
    assert not (tmp_path / "predictions").exists()


def test_git_commit_says_dirty_and_unknown(tmp_path):
    """A run records the commit it ran from, "+dirty" when tracked files were changed since, and
    "unknown" outside a checkout."""
    from mer_jax.training.workdir import git_commit

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    package = tmp_path / "pkg"
    package.mkdir()
    assert git_commit(package) == "unknown"
    git("init", "-q")
    (package / "a.py").write_text("x = 1\n")
    git("add", "pkg/a.py")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD").strip()
    (tmp_path / "notes.txt").write_text("untracked")
    assert git_commit(package) == head
    (package / "a.py").write_text("x = 2\n")
    assert git_commit(package) == head + "+dirty"
    ignored = tmp_path / "venv"                      # e.g. a wheel installed into a venv there
    ignored.mkdir()
    assert git_commit(ignored) == "unknown"
