"""Faster forms of the same network, for live scoring on a CPU (torch; used only at export).

- `ConvPixelShuffle`: a stride-s transposed convolution rewritten exactly as a convolution
  followed by a pixel shuffle (each of the s*s output phases is an ordinary convolution with
  every s-th kernel tap), so the CPU runs dense convolutions instead of a scatter-add.
- The network split into parts, so that live scoring can encode each frame once (not once per
  clip it appears in) and decode only the frames a score needs:
  `FrameEncoder` (N,1,S,S) -> (N,C,26,26), `Temporal` (B,T,C,26,26) -> the ConvLSTM stack's
  hidden states at every step, `FrameDecoder` (N,C,26,26) -> (N,1,S,S).
- `StatefulStep`: one ConvLSTM step with the states as inputs and outputs, for carrying the
  state forward from frame to frame instead of restarting it for every clip. This one is a
  different model (its context is all frames so far, not the last 10); it is measured, and
  only used where its accuracy is shown.
- `CellStep`: the same step without the encoder and decoder (features and states in, hidden
  and states out), for the staggered variant, which steps several states per frame from
  one encoding and decodes only one of them.

Shapes are those of `SpatiotemporalAutoencoder`, whose weights every part reuses unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from clipwatch.model.network import SpatiotemporalAutoencoder


class ConvPixelShuffle(nn.Module):
    """Exactly a ConvTranspose2d(stride=s, padding=0), as conv + pixel shuffle + crop.

    y[s*q + r] = sum_j x[q - j] * w[s*j + r] for each phase r < s: a full correlation of x
    with the flipped taps w[r], w[r+s], ... So one convolution with s*s*Cout outputs (one per
    phase and output channel) over x padded by J-1 (J = ceil(k/s) taps per phase), a pixel
    shuffle that interleaves the phases, and a crop to the transposed convolution's size.
    """

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        (s, s2), (k, k2) = deconv.stride, deconv.kernel_size
        if s != s2 or k != k2 or deconv.padding != (0, 0) or deconv.output_padding != (0, 0) \
                or deconv.dilation != (1, 1) or deconv.groups != 1:
            raise ValueError("only square, unpadded, undilated, ungrouped transposed convs")
        self.stride, self.kernel = s, k
        taps = math.ceil(k / s)
        weight = deconv.weight.detach()  # (Cin, Cout, k, k)
        c_in, c_out = weight.shape[:2]
        # Zero-pad the kernel to taps*s so every phase has `taps` taps, then pick phase r's
        # taps (every s-th, starting at r) and flip them (correlation, not convolution).
        padded = functional.pad(weight, (0, taps * s - k, 0, taps * s - k))
        phases = padded.reshape(c_in, c_out, taps, s, taps, s)  # (ci, co, j, ry, i, rx)
        phases = phases.flip(2, 4).permute(1, 3, 5, 0, 2, 4)  # (co, ry, rx, ci, j, i)
        self.conv = nn.Conv2d(c_in, c_out * s * s, taps, padding=taps - 1)
        with torch.no_grad():
            self.conv.weight.copy_(phases.reshape(c_out * s * s, c_in, taps, taps))
            bias = deconv.bias.detach() if deconv.bias is not None else torch.zeros(c_out)
            self.conv.bias.copy_(bias.repeat_interleave(s * s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size_h = (x.shape[-2] - 1) * self.stride + self.kernel
        size_w = (x.shape[-1] - 1) * self.stride + self.kernel
        y = functional.pixel_shuffle(self.conv(x), self.stride)  # (N, Cout, s*(n+J-1), ...)
        return y[..., :size_h, :size_w]


def pixel_shuffle_decoder(decoder: nn.Sequential) -> nn.Sequential:
    """The decoder with each ConvTranspose2d replaced by its exact ConvPixelShuffle form."""
    return nn.Sequential(*(ConvPixelShuffle(m) if isinstance(m, nn.ConvTranspose2d) else m
                           for m in decoder))


class FrameEncoder(nn.Module):
    def __init__(self, model: SpatiotemporalAutoencoder) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)  # (N, 1, S, S) -> (N, C, 26, 26)


class Temporal(nn.Module):
    def __init__(self, model: SpatiotemporalAutoencoder) -> None:
        super().__init__()
        self.temporal = model.temporal

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.temporal(features)  # (B, T, C, 26, 26) -> (B, T, C, 26, 26)


class FrameDecoder(nn.Module):
    def __init__(self, model: SpatiotemporalAutoencoder, pixel_shuffle: bool = True) -> None:
        super().__init__()
        self.decoder = pixel_shuffle_decoder(model.decoder) if pixel_shuffle else model.decoder

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(hidden)  # (N, C, 26, 26) -> (N, 1, S, S)


class CellStep(nn.Module):
    """One step of each ConvLSTM layer from the given states: (B, C, 26, 26) features in,
    the top layer's hidden state and the new states out."""

    def __init__(self, model: SpatiotemporalAutoencoder) -> None:
        super().__init__()
        self.cells = nn.ModuleList(layer.cell for layer in model.temporal)

    def forward(self, features: torch.Tensor, h1: torch.Tensor, c1: torch.Tensor,
                h2: torch.Tensor, c2: torch.Tensor, h3: torch.Tensor, c3: torch.Tensor):
        x, states = features, []
        for cell, state in zip(self.cells, ((h1, c1), (h2, c2), (h3, c3)), strict=True):
            h, c = cell(x, state)
            states += [h, c]
            x = h
        return (x, *states)  # hidden (B, C, 26, 26), then h1 c1 .. h3 c3


class StatefulStep(nn.Module):
    """Encoder, one step of each ConvLSTM layer from the given states, decoder of that frame."""

    def __init__(self, model: SpatiotemporalAutoencoder, pixel_shuffle: bool = True) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.cells = nn.ModuleList(layer.cell for layer in model.temporal)
        self.decoder = pixel_shuffle_decoder(model.decoder) if pixel_shuffle else model.decoder

    def forward(self, frame: torch.Tensor, h1: torch.Tensor, c1: torch.Tensor, h2: torch.Tensor,
                c2: torch.Tensor, h3: torch.Tensor, c3: torch.Tensor):
        x = self.encoder(frame)  # (B, 1, S, S) -> (B, C, 26, 26)
        states = []
        for cell, state in zip(self.cells, ((h1, c1), (h2, c2), (h3, c3)), strict=True):
            h, c = cell(x, state)
            states += [h, c]
            x = h
        return (self.decoder(x), *states)  # reconstruction (B, 1, S, S), then h1 c1 .. h3 c3
