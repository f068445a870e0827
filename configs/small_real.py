"""configs/small.py made to learn real songs: the 4Q development set (160 real 30 s clips).

    python benchmarks/real_music.py --config small_real --iterations 5 --seeds 3
    python -m pipelines.train_release            # the release model for `mer-jax predict`

Same widths and training recipe as configs/small.py (input standardisation per frequency fitted
on the training songs, log1p magnitudes, output prior, Gaussian-KL loss, Adam with warm-up and
cosine decay, 3 seeds), plus what the real-music levers showed (benchmarks/real_music.py's
CRNN rows; exploration with 5 Monte-Carlo iterations x 2 seeds on 4q-dev, mixed mode, quadrant
accuracy / Pearson r of valence; the constant quadrant scores 28.4% on the 109 songs tested):

    configs/small.py as it is                                  42.1% / r 0.13
    + time_pool "mean" (block averages of the stored frames)   40.4% / 0.14
    + summary "pool" (mean and max over time, no LSTMs)        45.7% / 0.19
    + 32 epochs                                                47.3% / 0.22
    + random crops of 128 time bins, 16 epochs                 43.9% / 0.20
    + random crops of 128 time bins, 32 epochs                 47.3% / 0.28
    + random crops, 64 epochs                                  47.2% / 0.27
    + random crops, 48 epochs at 2e-3 (this config)            48.6% / 0.32

The levers were chosen on these same 160 songs (no held-out set is shipped), so the chosen row
is an optimistic estimate; the seeds' spread (43.9-53.4% for the chosen row) is the noise.

Measured with 5 iterations x 3 seeds, mixed and sep, beside the Random Forest: see README.md
("Real music").
"""
from configs.small import get_config as small_config
from mer_jax.training.config import apply_overrides


def get_config():
    return apply_overrides(small_config(), [
        "time_pool=mean", "model.summary=pool", "crop_bins=128", "epochs=48",
        "learning_rate=2e-3"])
