"""The paper's CRNN at full size: for GPU/TPU batch jobs (one train step takes 4.7-9.8 s on the
2-core reference CPU, by the day; docs/experiment.md projects the full experiment's time).

    python -m mer_jax.train --mode mixed --config configs/paper.py --store STORE --workdir WORK
    python -m mer_jax.train --mode mixed --config configs/paper.py --dry-run   # params: 5966116

Adam 1e-4, batch 8, MSE on (valence mean, arousal mean, valence std, arousal std), 4 epochs of
ceil(train songs / 8) steps (77 on the authors' PMEmo songs), validation loss every 7 steps,
10 Monte-Carlo iterations of an 80/20 shuffle split. Expected on PMEmo (paper Table 1, mixed):
mean KL about 0.7-1.2 per iteration, validation MSE converging near 0.04. The validation passes
only draw the loss curves; on a CPU they are 38% of the training time, and ``--set
eval_every=77`` (once an epoch) leaves the predictions the same.
On the authors' own test songs, compared with their CRNN song by song (docs/training.md,
"The authors' test songs"):

    python -m mer_jax.train --mode mixed --config configs/paper.py --store STORE --workdir WORK \
        --set "test_songs_from=../shared/data/paper_predictions/crnn_iteration_*.csv"
    python -m mer_jax.reference --predictions 'WORK/predictions/*_iteration_*.csv' \
        --reference '../shared/data/paper_predictions/crnn_iteration_*.csv' --out WORK/reference

Its last lines say, per input, whether ours and the authors' CRNN beat the calibrated constant on
those songs (the authors' mixed CRNN does, pooled p = 4.7e-5; their sep CRNN does not, p = 1).

Not from the paper: the validation passes and predictions evaluate 40 songs per call
(eval_batch_size; the same values as 8 per call up to float rounding, 4 GB of memory per model
on CPU): 1.19x faster per song on the 2-core CPU; on a GPU, where the batch-8 forward is
latency-bound, the expected gain is larger (not yet measured; BENCHMARKS.md).
"""
from mer_jax.model import ModelConfig
from mer_jax.training.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(model=ModelConfig(), time_bins=2048, batch_size=8, learning_rate=1e-4,
                       epochs=4, eval_every=7, eval_batch_size=40, loss="mse", iterations=10)
