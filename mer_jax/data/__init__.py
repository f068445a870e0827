"""Dataset readers (PMEmo, emoMusic, quadrant-labelled folders such as 4Q) and the synthetic
default dataset."""
from mer_jax.data.emomusic import read_emomusic
from mer_jax.data.fourq import read_quadrant_folders
from mer_jax.data.pmemo import read_pmemo
from mer_jax.data.songs import LABEL_NAMES, Dataset, DatasetError, Skipped, Song

__all__ = ["read_pmemo", "read_emomusic", "read_quadrant_folders", "Dataset", "DatasetError",
           "Skipped", "Song", "LABEL_NAMES"]
