"""How little light can a triggered proton image expect? The study behind `min_expected_pe`.

Simulates protons with the image cut switched off (every shower that passes the screens gets
its image drawn and its trigger evaluated) and records, per image: the light expected from
all emission points, from the points seen within the camera plus `screen_fov_margin`, whether
a muon hits the telescope, and whether it triggered. Prints the least light of the triggered
images without a muon and, for a few thresholds, the share of images a cut there would skip
and the triggered images it would lose.

    python benchmarks/proton_image_cut_study.py [--settings quickstart] [--n-events 300] [--seeds 11 12]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_simulation_speed import SETTINGS  # noqa: E402

from ctapipe_gammalearn.simulation import AirShowerSimEventSource  # noqa: E402

THRESHOLDS = (40, 60, 80, 100, 150)


class _Recording(AirShowerSimEventSource):
    """Draws every image the screens let through and records its expected light."""

    def setup_recording(self):
        self.records = []
        triggered = self.detector.triggered

        def recording_trigger(tel_id, image):
            result = triggered(tel_id, image)
            self.records[-1]["triggered"] = result
            return result

        self.detector.triggered = recording_trigger

    def _telescope_image(self, rng, tel_id, light, muon, expected=None, near_camera=None, conditions_rng=None):
        if expected is None:
            expected, near = self._light_in_view(light.points, tel_id)
            near_camera = expected[near].sum()
        self.records.append(dict(total=float(expected.sum()), near=float(near_camera), muon=bool(muon),
                                 triggered=False))
        cut, self.min_expected_pe = self.min_expected_pe, 0.0
        try:
            return super()._telescope_image(rng, tel_id, light, muon, expected, near_camera, conditions_rng)
        finally:
            self.min_expected_pe = cut


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="quickstart", choices=list(SETTINGS))
    parser.add_argument("--n-events", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    args = parser.parse_args()
    records = []
    for seed in args.seeds:
        source = _Recording(n_events=args.n_events, seed=seed, **SETTINGS[args.settings]["proton"])
        source.setup_recording()
        n_events = sum(1 for _ in source)
        records += source.records
        print(f"seed {seed}: {n_events} events, {source.n_thrown} thrown, {len(source.records)} images drawn")
    table = {key: np.array([r[key] for r in records]) for key in records[0]}
    light_only = table["triggered"] & ~table["muon"]
    print(f"{len(records)} images, {table['triggered'].sum()} triggered ({light_only.sum()} without a muon)")
    for key, name in (("total", "all the light"), ("near", "light seen near the camera")):
        least = np.sort(table[key][light_only])[:3]
        print(f"\n{name}: least of the triggered images without a muon {', '.join(f'{x:.1f}' for x in least)} p.e.")
        print("| cut (p.e.) | images skipped | triggered images lost |")
        print("|---|---|---|")
        for threshold in THRESHOLDS:
            skipped = (table[key] < threshold) & ~table["muon"]
            print(f"| {threshold} | {skipped.mean():.2f} | {(skipped & table['triggered']).sum()} |")


if __name__ == "__main__":
    main()
