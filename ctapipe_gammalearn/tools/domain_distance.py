"""``ctapipe-gammalearn-domain-distance``: how far target DL1 events lie from the source, seen by a model."""

import contextlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
from astropy.table import vstack
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Bool, CaselessStrEnum, Int, List, Unicode, flag
from ctapipe.core.traits import Path as PathTrait

from ..atomic import AtomicOutput
from ..data import InputFile, TrainingQualityQuery, build_cache
from ..data.inputs import check_target_inputs
from ..evaluation.domain_distance import a_distance, dl1_statistics, embedding_figure, feature_shift_table
from .base import GammaLearnTool
from .train import _expand

__all__ = ["DomainDistanceTool", "main", "RESULT_NAME", "SHIFT_NAME", "EMBEDDING_NAME"]

RESULT_NAME = "domain_distance.json"
SHIFT_NAME = "feature_shift.ecsv"
EMBEDDING_NAME = "embedding.png"


class DomainDistanceTool(GammaLearnTool):
    """Measures the shift between source and target DL1 events (images) as a trained γ-PhysNet sees it.

    The network's backbone features of both domains feed a linear classifier (scikit-learn
    logistic regression, k-fold): its error ε gives the proxy A-distance 2 (1 - 2 ε), about 0
    for one domain and 2 for separable ones. Also written: a t-SNE embedding of the features
    coloured by domain, and the per-feature shift of the DL1 parameters and image statistics
    (intensity, width, length, NSB level). Run it on each observed run against the training
    set to monitor the shift (share ``--cache-dir`` between the runs).
    """

    name = "ctapipe-gammalearn-domain-distance"
    description = __doc__
    examples = """
    ctapipe-gammalearn-domain-distance --source 'gamma_*.dl1.h5' --target run_2969.dl1.h5 \\
        --model run1 --output-dir shift_2969 --cache-dir caches
    """

    source = List(Unicode(), default_value=[], help="source-domain DL1 files with images (e.g. the training set)").tag(
        config=True)
    target = List(Unicode(), default_value=[], help="target-domain DL1 files with images (e.g. one observed run)").tag(
        config=True)
    model_path = PathTrait(default_value=None, allow_none=True,
                           help="training checkpoint, or a training run directory (its best checkpoint)"
                           ).tag(config=True)
    output_path = PathTrait(default_value=None, allow_none=True, help="output directory").tag(config=True)
    cache_dir = PathTrait(default_value=None, allow_none=True, help="DL1 cache directory (default: OUTPUT_DIR/cache)"
                          ).tag(config=True)
    max_events = Int(5000, help="events per domain: drawn from the cache for the features, read for the DL1 statistics"
                     ).tag(config=True)
    embedding_events = Int(1000, help="events per domain in the t-SNE figure").tag(config=True)
    folds = Int(5, help="cross-validation folds of the domain classifier").tag(config=True)
    seed = Int(0, help="seed of the event draws, folds and t-SNE").tag(config=True)
    batch_size = Int(256, help="images per forward pass").tag(config=True)
    device = CaselessStrEnum(["auto", "cpu", "cuda"], default_value="cpu", help="where the network runs").tag(
        config=True)
    chunk_size = Int(1000, help="subarray events per chunk when reading DL1").tag(config=True)
    progress_bar = Bool(True, help="show progress bars").tag(config=True)

    aliases = {
        "source": "DomainDistanceTool.source",
        "target": "DomainDistanceTool.target",
        "model": "DomainDistanceTool.model_path",
        ("o", "output-dir"): "DomainDistanceTool.output_path",
        "cache-dir": "DomainDistanceTool.cache_dir",
        "max-events": "DomainDistanceTool.max_events",
        "seed": "DomainDistanceTool.seed",
        "device": "DomainDistanceTool.device",
    }
    flags = {
        **flag("overwrite", "Tool.overwrite", "replace existing outputs", "keep them"),
        **flag("progress", "DomainDistanceTool.progress_bar", "show progress bars", "no progress bars"),
    }
    classes = [TrainingQualityQuery]

    def setup(self):
        from ..training.checkpoint import CheckpointError
        from ..training.distributed import choose_device
        from ..training.domain import load_network

        if not self.source or not self.target:
            raise ToolConfigurationError("give --source and --target DL1 files")
        if self.model_path is None or self.output_path is None:
            raise ToolConfigurationError("--model and --output-dir are required")
        self.output_path = Path(self.output_path).absolute()
        for name in (RESULT_NAME, SHIFT_NAME, EMBEDDING_NAME):
            self.check_output(self.output_path / name)
        self.torch_device = choose_device(self.device)
        try:
            self.model, self.telescope_type, lattice, self.checkpoint = load_network(self.model_path, self.torch_device)
        except CheckpointError as err:
            raise ToolConfigurationError(str(err)) from None
        self.inputs = {role: [InputFile(p, -1) for p in _expand(getattr(self, role), role)]
                       for role in ("source", "target")}
        check_target_inputs(self.inputs["source"] + self.inputs["target"], self.telescope_type, lattice.fingerprint)
        for role, items in self.inputs.items():
            for item in items:
                Provenance().add_input_file(str(item.path), role=f"DL1 {role}-domain events")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no ctapipe reference metadata in a checkpoint
            Provenance().add_input_file(str(self.checkpoint), role="γ-PhysNet checkpoint")

    def start(self):
        from ..training.domain import FEATURES_DESCRIPTION, cache_features, learnt_feature_count

        self.features_description = FEATURES_DESCRIPTION

        quality = TrainingQualityQuery(parent=self)
        cache_dir = Path(self.cache_dir) if self.cache_dir is not None else self.output_path / "cache"
        rng = np.random.default_rng(self.seed)
        self.features, self.statistics = {}, {}
        for role, items in self.inputs.items():
            cache = build_cache(items, cache_dir, self.telescope_type, quality, self.chunk_size,
                                progress=self.progress_bar, log=self.log, labelled=False)
            rows = rng.choice(len(cache), min(len(cache), self.max_events), replace=False)
            self.features[role] = cache_features(self.model, cache, rows, self.batch_size, self.torch_device)
            per_file = -(-self.max_events // len(items))  # the DL1 statistics of as many events, from every file
            self.statistics[role] = vstack([dl1_statistics(i.path, self.telescope_type, quality, self.chunk_size,
                                                           per_file) for i in items])
        # the learnt columns (what adaptation can move), and all the heads' inputs (with the
        # image moments, computed from the cleaned charge)
        head_inputs = self.features
        n = learnt_feature_count(self.model)
        self.features = {role: features[:, :n] for role, features in head_inputs.items()}
        try:
            self.result = a_distance(self.features["source"], self.features["target"], self.seed, self.folds)
            self.result["a_distance_head_inputs"] = a_distance(
                head_inputs["source"], head_inputs["target"], self.seed, self.folds)["a_distance"]
        except ValueError as err:
            raise ToolConfigurationError(f"{', '.join(str(i.path) for i in self.inputs['target'])}: {err}") from None
        self.shift = feature_shift_table(self.statistics["source"], self.statistics["target"])
        self.log.info("A-distance %.3f (classifier error %.3f, %d + %d events; %.3f with the image moments)",
                      self.result["a_distance"], self.result["classifier_error"], self.result["n_source"],
                      self.result["n_target"], self.result["a_distance_head_inputs"])

    def finish(self):
        out = self.output_path
        names = (EMBEDDING_NAME, SHIFT_NAME, RESULT_NAME)
        with contextlib.ExitStack() as stack:  # all three written, then all three renamed
            figure, shift, result = (stack.enter_context(AtomicOutput(out / name)) for name in names)
            embedding_figure(self.features["source"], self.features["target"], figure.tmp, self.seed,
                             self.embedding_events, title=f"A-distance {self.result['a_distance']:.2f}")
            self.shift.write(shift.tmp, format="ascii.ecsv", overwrite=True)  # the temporary exists, empty
            result.tmp.write_text(json.dumps(self._summary(), indent=1, allow_nan=False))
            for output in (figure, shift, result):
                output.commit()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no ctapipe reference metadata in JSON, ECSV, PNG
            for name in names:
                Provenance().add_output_file(str(out / name), role="domain distance")
        self.log.info("written %s", out / RESULT_NAME)

    def _summary(self):
        shift = [{name: _plain(row[name]) for name in self.shift.colnames} for row in self.shift]
        return {**{key: _plain(value) for key, value in self.result.items()},
                "model": str(self.checkpoint), "telescope_type": self.telescope_type,
                "features": self.features_description,
                "source": [str(i.path) for i in self.inputs["source"]],
                "target": [str(i.path) for i in self.inputs["target"]],
                "feature_shift": shift, "seed": self.seed}


def _plain(value):
    """JSON-ready: numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main():
    DomainDistanceTool().run()


if __name__ == "__main__":
    main()
