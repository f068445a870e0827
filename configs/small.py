"""A small CPU config with the paper's topology: narrower channels, a 256-frame time axis.

    python -m mer_jax.train --mode mixed --config configs/small.py --store STORE --workdir WORK

Same five conv blocks (kernels 5, 5, 5, 5, 3; 1x1 convs; 2x2 pooling), LSTMs over the channel
axis and the dense head, at 1/8 of the conv widths (93,704 parameters for C = 1, 94,304 for
C = 4); the store's 2048 frames are resized once to 256 and log-compressed; Adam at 1e-3. Beyond
the paper, the two std outputs go through a softplus, so that a briefly trained model cannot
emit sigma <= 0 (which makes the KL undefined). Used by the tests and by `make demo`: on its 72
synthetic songs, 10 models train together at about 1.2 s per step (0.08 s per model-step) on
2 cores and reach a training MSE near 0.06.
"""
from mer_jax.model import ModelConfig
from mer_jax.training.config import TrainConfig


def get_config() -> TrainConfig:
    model = ModelConfig(conv_channels=((8, 4), (16, 8), (32, 16), (64, 32), (128, 64)),
                        lstm_units=(32, 16, 8), dense_units=(64, 32, 8), dropout=0.1,
                        std_activation="softplus")
    return TrainConfig(model=model, time_bins=256, log_input=True, batch_size=8,
                       learning_rate=1e-3, epochs=4, eval_every=7, loss="mse", iterations=10,
                       checkpoint_every=20)
