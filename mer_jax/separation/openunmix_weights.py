"""Open-Unmix's released weights: where to get them, how they are pinned, how they are read.

mer-jax never downloads: the user downloads the four files of a model into one folder and names
it with ``--weights-dir DIR`` or ``MER_JAX_WEIGHTS=DIR`` (the files may also sit in
``DIR/<model>/``).

    umxhq   UMX-HQ, trained on MUSDB18-HQ, MIT licence: https://zenodo.org/records/3370489
    umxl    UMX-L, trained on extra data, CC BY-NC-SA 4.0: https://zenodo.org/records/5069601

Pinning, from what the releases publish: each file name carries the first 8 hex digits of the
file's sha256 (torch.hub's convention, which the ``openunmix`` package checks), and Zenodo lists
an MD5 per file of UMX-HQ; both are checked before a file is read. The files are PyTorch state
dicts, read by ``mer_jax.separation.torch_state`` without torch and without running code.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from mer_jax.separation.openunmix import TARGETS
from mer_jax.separation.spleeter_weights import WeightsError
from mer_jax.separation.torch_state import TorchFileError, read_state_dict

ENV = "MER_JAX_WEIGHTS"
MAX_BIN = 1487                # 16 kHz at n_fft 4096: the bins both released models read
MODELS = {  # model -> record, hidden size, {target: (file name, Zenodo's MD5 or None)}
    "umxhq": ("https://zenodo.org/records/3370489", 512, {
        "vocals": ("vocals-b62c91ce.pth", "d918985fad0fedf6d9ce89e279aa7218"),
        "drums": ("drums-9619578f.pth", "cebf76e196e73e85d247f462c31e36fc"),
        "bass": ("bass-8d85a5bd.pth", "8cc37d31903fe48306468ee968f4b1b6"),
        "other": ("other-b52fbbf7.pth", "8637606623ed7c74986789c3b1f94bc6")}),
    "umxl": ("https://zenodo.org/records/5069601", 1024, {
        "vocals": ("vocals-bccbd9aa.pth", None),
        "drums": ("drums-69e0ebd4.pth", None),
        "bass": ("bass-2ca1ce51.pth", None),
        "other": ("other-c8c5b3e6.pth", None)}),
}


def weights_dir(explicit: os.PathLike | str | None = None) -> Path | None:
    value = explicit or os.environ.get(ENV)
    return Path(value).expanduser() if value else None


def _missing_message(model: str, folder: Path | None) -> str:
    record, _, files = MODELS[model]
    where = f"into {folder}" if folder else f"into a folder named by --weights-dir or {ENV}"
    urls = " ".join(f"{record}/files/{name}" for name, _ in files.values())
    return (f"separator {model} needs Open-Unmix's released weights: download {urls} {where} "
            "(mer-jax never downloads)")


def _digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def check_file(path: Path, md5: str | None) -> None:
    """The release's pins: the sha256 prefix in the file name, and Zenodo's MD5 if listed."""
    prefix = path.stem.rsplit("-", 1)[-1]
    sha, actual_md5 = _digests(path)
    if not sha.startswith(prefix) or (md5 is not None and actual_md5 != md5):
        raise WeightsError(f"{path}: sha256 {sha} / md5 {actual_md5} differ from the release's "
                           f"(sha256 {prefix}..., md5 {md5 or 'not published'}): altered or "
                           "incomplete download")


def check_network(target: str, state: dict[str, np.ndarray], hidden: int | None) -> None:
    """Keys and shapes of one OpenUnmix state dict (hidden size ``hidden`` if given)."""
    needed = ("fc1.weight", "fc2.weight", "fc3.weight", "input_mean", "input_scale",
              "output_mean", "output_scale", "bn1.running_var", "lstm.weight_ih_l0")
    missing = [k for k in needed if k not in state]
    if missing:
        raise WeightsError(f"{target}: not an Open-Unmix state dict (missing {missing})")
    h, inputs = state["fc1.weight"].shape
    if (hidden is not None and h != hidden) or inputs != 2 * state["input_mean"].shape[0]:
        raise WeightsError(f"{target}: fc1 {state['fc1.weight'].shape}, expected hidden "
                           f"{hidden} x 2 channels x {state['input_mean'].shape[0]} bins")


def load_weights(model: str, folder: os.PathLike | str | None = None,
                 pinned: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """target -> state dict for ``model`` (MODELS) from ``folder`` (or $MER_JAX_WEIGHTS).

    ``pinned=False`` (tests, your own trained models) reads ``<target>*.pth`` without the
    release's digests and hidden size."""
    if model not in MODELS:
        raise ValueError(f"unknown Open-Unmix model {model!r}; choose from {', '.join(MODELS)}")
    root = weights_dir(folder)
    _, hidden, files = MODELS[model]
    if root is None:
        raise WeightsError(_missing_message(model, None))
    states = {}
    for target in TARGETS:
        name, md5 = files[target]
        candidates = ([root / name, root / model / name] if pinned else
                      [*sorted(root.glob(f"{target}*.pth")),
                       *sorted(root.glob(f"{model}/{target}*.pth"))])
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise WeightsError(f"{root}: no {name if pinned else target + '*.pth'}; "
                               + _missing_message(model, root))
        if pinned:
            check_file(path, md5)
        try:
            states[target] = read_state_dict(path)
        except TorchFileError as err:
            raise WeightsError(str(err)) from None
        check_network(target, states[target], hidden if pinned else None)
    return states
