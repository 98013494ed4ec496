"""γ-PhysNet presets by name (timm-like), torch-free so that they can be listed anywhere;
the network is built from them in `ctapipe_gammalearn.nn.physnet`."""

__all__ = ["PRESETS", "PRESET_NAMES"]

#: timm-like presets; any key can be overridden in the constructor
PRESETS = {
    # for tests, the quickstart and CPU training
    "small": dict(
        channels=(8, 16, 32), blocks=(1, 1, 1), pool_steps=2, head_hidden=64, attention_reduction=4, cleaning=(8.0, 4.0)
    ),
    # GammaLearn-sized: 16/32/64 channels, three stages of three blocks
    "paper": dict(
        channels=(16, 32, 64),
        blocks=(3, 3, 3),
        pool_steps=2,
        head_hidden=64,
        attention_reduction=4,
        cleaning=(8.0, 4.0),
    ),
}

PRESET_NAMES = tuple(PRESETS)
