"""The spatiotemporal autoencoder of Chong & Tay 2017, as one pure `nn.Module`.

"Abnormal Event Detection in Videos using Spatiotemporal Autoencoder" (ISNN 2017):
a spatial encoder (two strided convolutions, applied to every frame), a temporal
encoder-decoder of three ConvLSTM layers (64, 32, 64 channels) unrolled over the clip,
and a spatial decoder (two transposed convolutions) back to the input frames.

Shapes for the design's clip (T=10, 227x227): 227 -> 55 -> 26 -> (ConvLSTM at 26x26) -> 55 -> 227.
Training, export and inference live elsewhere; this module only defines the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetworkArgs:
    """Everything needed to rebuild the network; stored in every checkpoint."""

    clip_length: int = 10
    frame_size: int = 227
    enc_channels: tuple[int, int] = (128, 64)
    lstm_channels: tuple[int, int, int] = (64, 32, 64)
    lstm_kernel: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkArgs:
        fields = dict(data)
        for key in ("enc_channels", "lstm_channels"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step (Shi et al. 2015, without peepholes): all four gates from one conv."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel, padding=kernel // 2
        )

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state  # (B, Ch, H, W) each
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTMLayer(nn.Module):
    """A ConvLSTM cell unrolled over the time axis; returns every step's hidden state."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel: int) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(in_channels, hidden_channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _, height, width = x.shape  # (B, T, C, H, W)
        h = x.new_zeros(b, self.cell.hidden_channels, height, width)
        c = torch.zeros_like(h)
        steps = []
        # A plain Python loop: the clip length is fixed, so export unrolls it into the graph.
        for step in range(t):
            h, c = self.cell(x[:, step], (h, c))
            steps.append(h)
        return torch.stack(steps, dim=1)  # (B, T, Ch, H, W)


class SpatiotemporalAutoencoder(nn.Module):
    """Reconstructs a clip of normalized frames; input and output (B, T, 1, 227, 227) in [-1, 1]."""

    def __init__(self, args: NetworkArgs | None = None) -> None:
        super().__init__()
        self.args = args or NetworkArgs()
        c1, c2 = self.args.enc_channels
        l1, l2, l3 = self.args.lstm_channels
        k = self.args.lstm_kernel
        # Spatial encoder, per frame: 227 -> 55 -> 26.
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=11, stride=4), nn.Tanh(),
            nn.Conv2d(c1, c2, kernel_size=5, stride=2), nn.Tanh(),
        )
        # Temporal encoder-decoder at 26x26: 64 -> 32 (bottleneck) -> 64.
        self.temporal = nn.Sequential(
            ConvLSTMLayer(c2, l1, k), ConvLSTMLayer(l1, l2, k), ConvLSTMLayer(l2, l3, k)
        )
        # Spatial decoder, per frame: 26 -> 55 -> 227; tanh matches the [-1, 1] input range.
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(l3, c1, kernel_size=5, stride=2), nn.Tanh(),
            nn.ConvTranspose2d(c1, 1, kernel_size=11, stride=4), nn.Tanh(),
        )

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        b, t, ch, height, width = clip.shape  # (B, T, 1, 227, 227)
        features = self.encoder(clip.reshape(b * t, ch, height, width))  # (B*T, 64, 26, 26)
        features = features.reshape(b, t, *features.shape[1:])  # (B, T, 64, 26, 26)
        features = self.temporal(features)  # (B, T, 64, 26, 26)
        frames = self.decoder(features.reshape(b * t, *features.shape[2:]))  # (B*T, 1, 227, 227)
        return frames.reshape(b, t, ch, height, width)
