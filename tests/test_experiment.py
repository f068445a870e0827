import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import zarr

from conftest import TINY_OVERRIDES
from mer_jax import forest
from mer_jax.predictions import read_iterations
from mer_jax.store import FeatureStore
from mer_jax.training.config import load_config
from mer_jax.training.splits import load_or_create_splits
from pipelines import experiment

HEADER = "iteration,E_mixed,E_sep,M_mixed,M_sep,W_mixed_sep"


def test_forest_is_the_papers():
    model = forest.make_forest(forest.ForestConfig(), iteration=3)
    params = model.get_params()
    assert params["n_estimators"] == 100 and params["criterion"] == "squared_error"
    assert params["max_features"] is None and params["min_samples_split"] == 2
    assert params["min_samples_leaf"] == 1 and params["max_depth"] is None
    assert params["n_jobs"] == -1 and params["random_state"] == forest.random_state(0, 3)


def test_forests_use_the_shared_splits(tiny_store, tmp_path):
    store = FeatureStore(tiny_store)
    splits = load_or_create_splits(tmp_path / "splits.json", store.ids, 2, 0.25, seed=4)
    paths = forest.train_forests(tiny_store, splits, "sep", tmp_path / "rf", progress=False)
    tables = read_iterations(paths)
    for table, split in zip(tables, splits):
        assert list(table.song_ids) == split["test"] and list(table.predictions) == ["sep"]
        assert np.all(table.predictions["sep"][:, 2:] > 0)  # averages of positive stds
    before = paths[0].stat().st_mtime_ns
    forest.train_forests(tiny_store, splits, "sep", tmp_path / "rf", progress=False)
    assert paths[0].stat().st_mtime_ns == before  # finished iterations are kept
    copy = shutil.copytree(tiny_store, tmp_path / "elsewhere.zarr")
    forest.train_forests(copy, splits, "sep", tmp_path / "rf", progress=False)
    assert paths[0].stat().st_mtime_ns == before  # the same features in another store: kept
    zarr.open_group(str(copy), mode="r+")["sources"][0] = "0:new audio"  # song redone
    forest.train_forests(copy, splits, "sep", tmp_path / "rf", progress=False)
    assert paths[0].stat().st_mtime_ns != before  # refitted


def test_forests_get_the_seeds_and_never_keep_stale_tables(tiny_store, tmp_path):
    store = FeatureStore(tiny_store)
    splits = load_or_create_splits(tmp_path / "splits.json", store.ids, 2, 0.25, seed=4)
    out = tmp_path / "rf"
    two = forest.train_forests(tiny_store, splits, "mixed", out, progress=False, seeds=[0, 1])
    assert [p.name for p in two] == [f"mixed_seed_{s}_iteration_{i}.csv"
                                     for s in (0, 1) for i in (1, 2)]
    a, b = (read_iterations([p])[0].predictions["mixed"] for p in two[:3:2])
    assert not np.allclose(a, b)           # seeds 0 and 1 of iteration 1 are other forests
    one = forest.train_forests(tiny_store, splits, "mixed", out, progress=False, seeds=[1])
    assert sorted(p.name for p in out.glob("mixed_*.csv")) == [p.name for p in one]
    assert np.allclose(read_iterations([one[0]])[0].predictions["mixed"], b)


def test_non_finite_features_are_an_error_naming_the_songs():
    features = np.ones((4, 3))
    features[2, 1] = np.nan
    with pytest.raises(forest.NonFiniteFeatures, match="song_c"):
        forest.check_features(features, ["a", "b", "song_c", "d"], np.arange(4), "test")


@pytest.fixture(scope="module")
def experiment_run(tiny_store, tmp_path_factory):
    work = tmp_path_factory.mktemp("experiment") / "work"
    args = ["--config", "configs/small.py", "--data-dir", str(tiny_store.parent.parent / "synth"),
            "--workdir", str(work), "--separator", "oracle", "--cache-dir",
            str(tiny_store.parent), "--clip-seconds", "3",
            *[f"--set={o}" for o in TINY_OVERRIDES]]
    return work, args


@pytest.mark.slow
def test_experiment_writes_the_report(experiment_run, capsys):
    work, args = experiment_run
    assert experiment.main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == str((work / "report" / "report.md").resolve())
    out = work / "report"
    for name in ("table1_crnn.csv", "table2_rf.csv"):
        lines = (out / name).read_text().splitlines()
        assert lines[0] == HEADER and [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
    for name in ("figure2_crnn_loss_mixed.png", "figure3_crnn_loss_sep.png",
                 "figure4_kl_histograms_crnn.png", "figure4_kl_histograms_rf.png"):
        assert (out / name).stat().st_size > 5_000, name
    text = (out / "report.md").read_text()
    assert "## Conclusion" in text and "Holm" in text and "Verdict:" in text
    assert "RMSE" in text and "Pearson r" in text
    assert "| calibrated baseline |" in text and "| constant baseline |" in text
    assert "Skill gate" in text and "Nadeau-Bengio" in text
    for model in ("crnn", "rf"):
        lines = (work / "evaluation" / model / "baselines.csv").read_text().splitlines()
        assert lines[0] == ("iteration,model,input,E_model,E_constant,E_calibrated,"
                            "W_model_constant,W_model_calibrated") and len(lines) == 5
    with open(out / "table1_crnn.csv") as f:
        first = next(csv.DictReader(f))
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert float(row.split("|")[2]) == pytest.approx(float(first["E_mixed"]), abs=5e-4)  # 3 dp
    assert set(json.loads((work / "stages.json").read_text())) == {
        "crnn_mixed", "crnn_sep", "rf_mixed", "rf_sep"}


@pytest.mark.slow
def test_rerun_skips_finished_stages(experiment_run, monkeypatch):
    work, args = experiment_run
    if not (work / "stages.json").is_file():
        experiment.main(args)

    def fail(*a, **k):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(experiment, "train_and_evaluate", fail)
    monkeypatch.setattr(experiment.forest, "train_forests", fail)
    assert experiment.main(args) == 0


@pytest.mark.slow
def test_forests_alongside_the_crnns_give_the_same_tables(experiment_run, tmp_path):
    """--forests-alongside (the default on a GPU/TPU), forced on CPU: the forests are fitted in a
    child process while the (here already trained) CRNNs would train; the same tables, byte for
    byte, and the stages recorded."""
    work, args = experiment_run
    if not (work / "stages.json").is_file():
        experiment.main(args)
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    shutil.rmtree(copy / "rf")
    stages = json.loads((copy / "stages.json").read_text())
    (copy / "stages.json").write_text(json.dumps(
        {k: v for k, v in stages.items() if not k.startswith("rf_")}))
    argv = [str(copy) if a == str(work) else a for a in args] + ["--forests-alongside"]
    settings, _ = experiment.parse_args(argv)
    assert settings.forests_alongside is True
    experiment.run_experiment(settings, progress=False)
    tables = sorted(p.relative_to(work) for p in (work / "rf").rglob("*.csv"))
    assert len(tables) == 4 and tables == sorted(
        p.relative_to(copy) for p in (copy / "rf").rglob("*.csv"))
    for name in tables:
        assert (copy / name).read_bytes() == (work / name).read_bytes(), name
    assert json.loads((copy / "stages.json").read_text()) == stages


def test_a_failure_of_the_forests_alongside_reaches_the_caller(tmp_path):
    import contextlib
    import functools
    fit = functools.partial(experiment._fit_forests, tmp_path / "missing.zarr", [],
                            tmp_path / "rf", forest.ForestConfig(), [0])
    with contextlib.ExitStack() as stack:
        future = experiment._start_alongside(stack, fit, ["mixed"])
        with pytest.raises(Exception, match="missing.zarr"):
            future.result()


@pytest.mark.slow
def test_stages_are_copied_from_a_workdir_that_did_them_from_the_same_inputs(
        experiment_run, tmp_path, monkeypatch, capsys):
    """``--reuse-from``: with the same settings every stage is copied; with mel bands instead of
    |STFT| the forests (openSMILE features, unchanged) are copied, the CRNNs are not."""
    work, args = experiment_run
    if not (work / "stages.json").is_file():
        experiment.main(args)
    settings, launch = experiment.parse_args(args)
    assert launch == (False, None)
    trained = []

    class Stop(Exception):
        pass

    def record_and_stop(config, store, workdir, mode, *rest, **kwargs):
        trained.append(mode)
        raise Stop

    monkeypatch.setattr(experiment, "train_and_evaluate", record_and_stop)
    same = [str(tmp_path / "same") if a == str(work) else a for a in args]
    with pytest.raises(SystemExit):     # a multi-host run copies nothing
        experiment.parse_args([*same, "--reuse-from", str(work), "--distributed"])
    with pytest.raises(SystemExit):     # a mistyped workdir would recompute everything
        experiment.parse_args([*same, "--reuse-from", str(work / "crnn")])
    assert "not an experiment's workdir" in capsys.readouterr().err
    assert experiment.main([*same, "--reuse-from", str(work)]) == 0
    assert trained == [] and (tmp_path / "same" / "report" / "report.md").is_file()
    assert capsys.readouterr().err.count(f"copied from {work}") == 4
    for table in ("crnn/predictions/sep_iteration_1.csv", "rf/predictions/mixed_iteration_2.csv"):
        assert (tmp_path / "same" / table).read_bytes() == (work / table).read_bytes()
    mel = experiment.ExperimentSettings(**{
        **settings.__dict__, "workdir": tmp_path / "mel",
        "config": dataclasses.replace(settings.config, spectrogram="mel")})
    with pytest.raises(Stop):
        experiment.run_experiment(mel, progress=False, reuse_from=work)
    assert trained == ["mixed"]
    assert sorted(p.name for p in (tmp_path / "mel" / "rf" / "predictions").glob("*.csv")) == [
        f"{mode}_iteration_{i}.csv" for mode in ("mixed", "sep") for i in (1, 2)]
    assert not (tmp_path / "mel" / "crnn" / "predictions").exists()


def test_stage_keys_follow_the_songs_audio(tiny_store, tmp_path):
    """A song whose audio changed (redone by preprocessing: a new ``sources`` entry) changes the
    key of every stage whose splits hold it; the same store elsewhere keeps them."""
    store = FeatureStore(tiny_store)
    splits = load_or_create_splits(tmp_path / "splits.json", store.ids, 2, 0.25, seed=4)
    config = load_config("configs/small.py")
    keys = experiment.stage_keys(store, config, 2, splits)
    copy = shutil.copytree(tiny_store, tmp_path / "elsewhere.zarr")
    assert experiment.stage_keys(FeatureStore(copy), config, 2, splits) == keys
    zarr.open_group(str(copy), mode="r+")["sources"][0] = "0:new audio"
    changed = experiment.stage_keys(FeatureStore(copy), config, 2, splits)
    assert all(changed[stage] != keys[stage] for stage in keys)


def test_pooled_tests_count_each_song_once():
    from mer_jax import verdict
    rng = np.random.default_rng(0)
    kl, songs = {}, {}
    for it in (1, 2):
        songs[it] = tuple(str(i) for i in range(it, it + 30))
        kl[it] = rng.uniform(0, 1, 30)
    per_song = verdict.per_song(kl, songs)
    assert len(per_song) == 31                      # songs 2-30 were tested twice
    assert per_song["5"] == pytest.approx((kl[1][4] + kl[2][3]) / 2)
