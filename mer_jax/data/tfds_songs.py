"""Any dataset mer-jax reads, as a tensorflow-datasets dataset (manual download), stored as
array_record.

The user points the builder at a dataset folder in any layout of ``mer_jax.data`` (PMEmo2019,
emoMusic, DEAM, 4Q, an annotated csv folder); the builder config is the layout's name
(``mer_songs/pmemo``, ``mer_songs/deam``, ...). Each usable song becomes one example:

    song_id        Text
    audio          Tensor (samples,): mono float32, 44.1 kHz, cut/zero-padded to 45 s
    valence_mean, arousal_mean, valence_std, arousal_std    float32 on 0-1

Written as array_record and read with ``tfds.data_source`` - random access without TensorFlow
(mer-jax does not depend on TensorFlow). Songs the reader skips (no audio, no std) and files
that fail to decode are left out with a warning naming them.

    from mer_jax.data.tfds_songs import prepare_songs
    source = prepare_songs(manual_dir="/data/PMEmo2019", data_dir="~/tensorflow_datasets")
    example = source[0]
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from mer_jax import audio as audio_io
from mer_jax.data import DATASETS, detect_dataset, read_dataset
from mer_jax.data.songs import LABEL_NAMES

log = logging.getLogger(__name__)


class MerSongs(tfds.core.GeneratorBasedBuilder):
    """Static valence/arousal annotations (0-1) with 45 s mono clips, one config per layout."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "45 s mono clips and static mean/std valence-arousal labels."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name, description=f"{name} layout")
                       for name in DATASETS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download and extract the dataset (PMEmo2019: https://github.com/HuiZhangDB/PMEmo; "
        "DEAM: https://cvml.unige.ch/databases/DEAM/; ...) and pass its folder as manual_dir.")
    CLIP_SECONDS = audio_io.CLIP_SECONDS
    SAMPLE_RATE = audio_io.SAMPLE_RATE

    def _info(self) -> tfds.core.DatasetInfo:
        # A Tensor, not tfds.features.Audio: the Audio feature needs TensorFlow even to declare.
        features = {"song_id": tfds.features.Text(),
                    "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32)}
        features.update({name: tfds.features.Scalar(dtype=np.float32) for name in LABEL_NAMES})
        return tfds.core.DatasetInfo(builder=self, description=__doc__,
                                     features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(Path(dl_manager.manual_dir))}

    def _generate_examples(self, root: Path):
        dataset = read_dataset(root, self.builder_config.name)
        for skipped in dataset.skipped:
            log.warning("%s song %s left out: %s", dataset.name, skipped.song_id, skipped.reason)
        for song in dataset:
            try:
                clip = audio_io.load_clip(song.audio_path, seconds=self.CLIP_SECONDS)
            except audio_io.AudioError as err:
                log.warning("%s song %s left out: %s", dataset.name, song.song_id, err)
                continue
            example = {"song_id": song.song_id, "audio": clip.samples}
            example.update({name: np.float32(getattr(song, name)) for name in LABEL_NAMES})
            yield song.song_id, example


def prepare_songs(manual_dir: os.PathLike | str, data_dir: os.PathLike | str,
                  dataset: str = "auto"):
    """Build (once) and open the array_record data source of the ``train`` split; ``dataset``:
    the layout's name (``mer_jax.data.DATASETS``), detected from ``manual_dir`` by default."""
    name = detect_dataset(manual_dir) if dataset == "auto" else dataset
    builder = MerSongs(config=name, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return tfds.data_source(f"mer_songs/{name}", data_dir=str(data_dir), split="train")
