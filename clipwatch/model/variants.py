"""The names of inference variants and devices, owned here once: config, CLI and bench all
take them from this module, so a new variant is added in one place.

Production variants are the ones a service runs; research variants exist to be measured by
`clipwatch bench` (the transposed-convolution decoder the pixel-shuffle one replaced, and
int8, which changes the scores) and are refused by the service's config.
"""

from __future__ import annotations

from typing import Literal, get_args

Variant = Literal["auto", "full", "split", "staggered", "stateful", "split-convt", "split-int8"]
ProductionVariant = Literal["auto", "full", "split", "staggered", "stateful"]
Device = Literal["auto", "cpu", "cuda", "tensorrt"]

VARIANTS: tuple[str, ...] = get_args(Variant)
PRODUCTION_VARIANTS: tuple[str, ...] = get_args(ProductionVariant)
RESEARCH_VARIANTS: tuple[str, ...] = tuple(v for v in VARIANTS if v not in PRODUCTION_VARIANTS)
DEVICES: tuple[str, ...] = get_args(Device)
# What a model's parts manifest may name as the variant `auto` runs it with.
AUTO_VARIANTS: tuple[str, ...] = ("split", "staggered", "stateful")

VARIANT_HELP = ("full = the shipped graph on whole clips; split = the same scores with each "
                "frame encoded once (needs the model's parts); staggered = two ConvLSTM states "
                "restarted in turn, each frame decoded from the one that has seen 10-19 "
                "frames (close to split at a fifth of its cost); stateful = the ConvLSTM state "
                "carried frame to frame (a different model); auto = the variant the model's "
                "parts manifest names (split if it names none), full where there are no parts")
