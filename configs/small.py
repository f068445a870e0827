"""A small CPU config with the paper's topology: narrower channels, a 256-frame time axis.

    python -m mer_jax.train --mode mixed --config configs/small.py --store STORE --workdir WORK

Same five conv blocks (kernels 5, 5, 5, 5, 3; 1x1 convs; 2x2 pooling), LSTMs over the channel
axis and the dense head, at 1/8 of the widths (26,356 parameters for C = 1); the store's 2048
frames are resized once to 256 and log-compressed. Used by the tests and by `make demo`, where
on the synthetic default dataset it trains in about a second per step on 2 cores and beats the
training-mean baseline on arousal.
"""
from mer_jax.model import ModelConfig
from mer_jax.training.config import TrainConfig


def get_config() -> TrainConfig:
    model = ModelConfig(conv_channels=((8, 4), (16, 8), (32, 16), (64, 32), (128, 64)),
                        lstm_units=(32, 16, 8), dense_units=(64, 32, 8), dropout=0.1)
    return TrainConfig(model=model, time_bins=256, log_input=True, batch_size=8,
                       learning_rate=1e-3, epochs=4, eval_every=7, loss="mse", iterations=10,
                       checkpoint_every=20)
