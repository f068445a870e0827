"""Dataset readers (PMEmo, emoMusic) and the synthetic default dataset."""
from mer_jax.data.emomusic import read_emomusic
from mer_jax.data.pmemo import read_pmemo
from mer_jax.data.songs import LABEL_NAMES, Dataset, DatasetError, Skipped, Song

__all__ = ["read_pmemo", "read_emomusic", "Dataset", "DatasetError", "Skipped", "Song",
           "LABEL_NAMES"]
