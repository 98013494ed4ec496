"""Per-pixel noise of lstchain DL1 runs beside the simulator's nominal night-sky background.

For each file: the charge standard deviation per pixel in p.e. (camera median and 16-84 %
range), from the run's pedestal monitoring where it has one and from its images (pixels
away from the cleaning masks, calibration events left out); then the simulator's nominal
``sqrt(nsb_pe + electronic_noise_pe**2)`` and the NSB that would give the run's noise with
the simulator's electronic noise.

    python benchmarks/lstchain_noise.py                       # the files of ../shared/data/lstchain_dl1
    python benchmarks/lstchain_noise.py run.dl1.h5 [...]
"""

import argparse
import warnings
from pathlib import Path

import numpy as np

from ctapipe_gammalearn.data.noise import IMAGES, PEDESTAL, estimate_pixel_noise, nominal_simulator_noise

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lstchain_dl1"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=sorted(SHARED.glob("*.h5")))
    args = parser.parse_args()
    nominal = nominal_simulator_noise()
    print(
        f"simulator nominal: nsb_pe {nominal['nsb_pe']:.2f} p.e., electronic {nominal['electronic_noise_pe']:.2f} p.e."
        f" -> pixel std {nominal['pixel_std_pe']:.3f} p.e."
    )
    print(f"{'file':45s} {'estimate':9s} {'samples':>7s} {'median':>7s} {'16%':>6s} {'84%':>6s} "
          f"{'/nominal':>8s} {'NSB-eq':>7s}  source")
    for path in args.files:
        for method in (PEDESTAL, IMAGES):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _, s = estimate_pixel_noise(path, method=method)
            except ValueError as err:
                print(f"{path.name:45s} {method:9s} -- {err}")
                continue
            nsb_equivalent = s["median_pe"] ** 2 - nominal["electronic_noise_pe"] ** 2
            print(
                f"{path.name:45s} {method:9s} {s['n_samples']:7d} {s['median_pe']:7.3f} {s['p16_pe']:6.3f} "
                f"{s['p84_pe']:6.3f} {s['ratio_to_nominal']:8.3f} {nsb_equivalent:7.2f}  {s['source']}"
            )
            if method == PEDESTAL:
                print(
                    f"{'':45s} {'':9s} {'':7s} low gain {s['low_gain_median_pe']:.3f} p.e., calibration run "
                    f"{s['calibration_run_median_pe']:.3f} p.e., {s['n_pixels']} usable pixels"
                )
    print("NSB-eq: median**2 - electronic**2, the simulator's nsb_pe that gives that median (p.e.)")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
