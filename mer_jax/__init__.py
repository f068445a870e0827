"""mer-jax: music emotion recognition with respect to instrument combinations, in JAX/Flax.

The data's path through the package:
    audio (mer_jax.audio) -> datasets (mer_jax.data) -> stems (mer_jax.separation)
    -> spectrograms / openSMILE (mer_jax.features) -> Zarr store (mer_jax.preprocess, .store)
    -> CRNN (mer_jax.model, .training) and Random Forest (mer_jax.forest)
    -> prediction tables (mer_jax.predictions) -> KL (mer_jax.kl) -> statistics (mer_jax.stats)
    -> evaluation and report (mer_jax.evaluate, mer_jax.report).
"""
__version__ = "0.1.0"


def __getattr__(name):
    # mer_jax.predict_file without importing JAX for every ``import mer_jax``
    if name == "predict_file":
        from mer_jax.predict import predict_file
        return predict_file
    raise AttributeError(f"module 'mer_jax' has no attribute {name!r}")
