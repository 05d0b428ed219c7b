"""CAM++ speaker embedding (3D-Speaker, Chinese + English, 192-d) as a pyannote.audio `Model`.

pyannote's diarization pipeline calls its embedding model as `model(waveforms, weights=masks)`:
waveforms (batch, 1, samples) are 10 s chunks and masks (batch, frames) say, frame by frame, where
one local speaker of that chunk talks. This wrapper computes 80-dim Kaldi fbank features with mean
normalisation (what CAM++ was trained on) and, by default, runs the network on the masked frames
only; with `select_frames=False` it runs the whole chunk and pools the masked frames instead.

The architecture comes from `camplusplus.py` in the model directory (3D-Speaker's code as shipped
next to the weights), loaded with importlib rather than copied here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pyannote.audio import Model
from torchaudio.compliance import kaldi

ARCHITECTURE_FILE = "camplusplus.py"
WEIGHTS_FILE = "campplus_cn_en_common.pt"


def _load_architecture(path: Path):
    """Import the CAM++ architecture file as a private module and return its `CAMPPlus` class."""
    name = "sanyu_campplus_arch"
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(path):
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the CAM++ architecture from {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return module.CAMPPlus


def _weighted_stats(frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean and unbiased standard deviation over time.

    frames: (batch, channels, time); weights: (batch, time), non-negative. Rows whose weights sum
    to zero give NaN, which pyannote's clustering reads as "no embedding".
    """
    weights = weights.unsqueeze(1)
    v1 = weights.sum(dim=2)
    mean = (frames * weights).sum(dim=2) / v1
    dx2 = (frames - mean.unsqueeze(2)).square()
    v2 = weights.square().sum(dim=2)
    var = (dx2 * weights).sum(dim=2) / (v1 - v2 / v1 + 1e-8)
    return torch.cat([mean, var.clamp_min(0.0).sqrt()], dim=1)


class CAMPPlusEmbedding(Model):
    """CAM++ speaker embedding model for pyannote.audio pipelines.

    Build it with `CAMPPlusEmbedding.from_directory(path)`, which also loads the weights and puts
    the model in eval mode.
    """

    def __init__(
        self,
        architecture: str | Path,
        sample_rate: int = 16000,
        num_channels: int = 1,
        num_mel_bins: int = 80,
        embedding_size: int = 192,
        select_frames: bool = True,
        task=None,
    ):
        super().__init__(sample_rate=sample_rate, num_channels=num_channels, task=task)
        self.save_hyperparameters("num_mel_bins", "embedding_size")
        self.select_frames = select_frames
        CAMPPlus = _load_architecture(Path(architecture))
        self.net = CAMPPlus(feat_dim=num_mel_bins, embedding_size=embedding_size)
        # 3D-Speaker's CAM++ ends with a batch norm without affine parameters and no ReLU
        # ("batchnorm_"); the shipped architecture file adds a ReLU there, which would clip
        # the embedding to the positive orthant (measured on 5 single-speaker clips: cosine
        # between clips of different speakers 0.32 on average with it, 0.04 without; between
        # halves of one clip 0.83 and 0.80). Restore the original head.
        dense = self.net.xvector.dense
        if hasattr(dense, "nonlinear") and hasattr(dense.nonlinear, "relu"):
            dense.nonlinear.relu = torch.nn.Identity()

    @classmethod
    def from_directory(cls, directory: str | Path, **kwargs) -> CAMPPlusEmbedding:
        """Load CAM++ from a directory holding `camplusplus.py` and the state_dict."""
        directory = Path(directory)
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        embedding_size, num_mel_bins = _shapes(state)
        model = cls(
            directory / ARCHITECTURE_FILE,
            num_mel_bins=num_mel_bins,
            embedding_size=embedding_size,
            **kwargs,
        )
        model.net.load_state_dict(state, strict=True)
        model.eval()
        return model

    @property
    def dimension(self) -> int:
        return self.hparams.embedding_size

    @property
    def min_num_samples(self) -> int:
        """Shortest input that yields an embedding: one fbank window (25 ms)."""
        return int(0.025 * self.hparams.sample_rate)

    def fbank(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> (batch, frames, mel bins) Kaldi fbank, not normalised."""
        return torch.stack(
            [
                kaldi.fbank(
                    waveform,
                    num_mel_bins=self.hparams.num_mel_bins,
                    sample_frequency=self.hparams.sample_rate,
                    dither=0.0,
                )
                for waveform in waveforms[:, :1]
            ]
        )

    def frame_features(self, fbank: torch.Tensor) -> torch.Tensor:
        """Mean-normalised fbank (batch, frames, mel bins) -> (batch, channels, frames/2), the
        network's output before statistics pooling."""
        x = self.net.head((fbank - fbank.mean(dim=1, keepdim=True)).permute(0, 2, 1))
        for name, layer in self.net.xvector.named_children():
            if name in ("stats", "dense"):
                break
            x = layer(x)
        return x

    def embed(self, frames: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Frame features (batch, channels, frames) -> embeddings (batch, dimension)."""
        if weights is None:
            weights = torch.ones(frames.shape[0], frames.shape[-1], device=frames.device)
        return self.net.xvector.dense(_weighted_stats(frames, weights.to(frames.dtype)))

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings (batch, dimension) of (batch, 1, samples) waveforms, of the frames that
        `weights` (batch, any number of frames) mark; rows with no marked frame give NaN.

        With `select_frames` (the default) only the marked fbank frames go through the network,
        so that the other speakers of a chunk do not colour the embedding; otherwise the whole
        chunk goes through and the marked frames are pooled. pyannote sends each chunk once per
        local speaker: fbank (and, when pooling, the network) is computed once per distinct
        waveform of the batch.
        """
        batch = waveforms.shape[0]
        unique: list[int] = []
        row_of: list[int] = []
        for i in range(batch):
            for j, u in enumerate(unique):
                if waveforms[i].shape == waveforms[u].shape and torch.equal(
                    waveforms[i], waveforms[u]
                ):
                    row_of.append(j)
                    break
            else:
                row_of.append(len(unique))
                unique.append(i)
        fbank = self.fbank(waveforms[unique])
        num_frames = fbank.shape[1]
        if weights is None:
            weights = torch.ones(batch, num_frames, device=fbank.device)
        weights = _resample(weights.to(fbank.dtype), num_frames)
        if not self.select_frames:
            frames = self.frame_features(fbank)
            return self.embed(frames[row_of], _resample(weights, frames.shape[-1]))
        out = torch.full(
            (batch, self.dimension), float("nan"), device=fbank.device, dtype=fbank.dtype
        )
        for i in range(batch):
            keep = weights[i] > 0.5
            if not keep.any():
                continue
            frames = self.frame_features(fbank[row_of[i], keep][None])
            out[i] = self.embed(frames)[0]
        return out


def _resample(weights: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(batch, frames) weights stretched to `num_frames` by nearest neighbour."""
    if weights.shape[-1] == num_frames:
        return weights
    return F.interpolate(weights[:, None], size=num_frames, mode="nearest")[:, 0]


def _shapes(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Embedding size and mel bins a CAM++ state_dict was trained with."""
    dense = state["xvector.dense.linear.weight"]  # (embedding, 2 * channels, 1)
    head_channels = state["xvector.tdnn.linear.weight"].shape[1]  # 32 * (mel bins // 8)
    return int(dense.shape[0]), int(np.round(head_channels / 32 * 8))
