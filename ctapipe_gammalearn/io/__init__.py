"""Reading DL1 files that ctapipe's readers do not open: lstchain's. Torch-free.

- `lstchain.LSTChainDL1File`: an lstchain DL1 file (0.7 to 0.10) as telescope-event tables
  in ctapipe's column names and units;
- `lstchain_instrument.read_lstchain_subarray`: its `~ctapipe.instrument.SubarrayDescription`;
- `ctapipe_dl1.write_ctapipe_dl1`: the same events rewritten as ctapipe DL1;
- `lstchain_cleaning.LSTChainImageCleaner`: lstchain's cleaning for ctapipe's ImageProcessor;
- `hdf5_tables.read_config_table`: astropy- or ctapipe-written tables without h5py.

The data layer (`ctapipe_gammalearn.data.inputs.dl1_format`) dispatches on the format.
"""

from .ctapipe_dl1 import write_ctapipe_dl1
from .lstchain import NO_IMAGES_HINT, LSTChainDL1Error, LSTChainDL1File, is_lstchain_dl1
from .lstchain_cleaning import LSTChainImageCleaner
from .lstchain_instrument import LST_SITE, read_lstchain_subarray

__all__ = [
    "LST_SITE",
    "NO_IMAGES_HINT",
    "LSTChainDL1Error",
    "LSTChainDL1File",
    "LSTChainImageCleaner",
    "is_lstchain_dl1",
    "read_lstchain_subarray",
    "write_ctapipe_dl1",
]
