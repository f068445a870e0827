"""mer-jax: music emotion recognition with respect to instrument combinations, in JAX/Flax.

The data's path through the package:
    audio (mer_jax.audio) -> datasets (mer_jax.data) -> predictions tables (mer_jax.predictions)
    -> KL divergence (mer_jax.kl) -> statistics (mer_jax.stats) -> report (mer_jax.evaluate).
"""
__version__ = "0.1.0"
