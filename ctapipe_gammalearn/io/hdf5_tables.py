"""Configuration tables of HDF5 files written by astropy or by ctapipe, read without h5py.

ctapipe before 0.17 wrote its instrument tables with astropy (``Table.write(...,
serialize_meta=True)``): units and metadata then sit in a YAML header stored next
to the table as ``<path>.__table_column_meta__``. astropy reads such tables only
through h5py, which this package does not need otherwise; PyTables and astropy's
YAML header parser read them just as well. Tables written by ctapipe's own
`~ctapipe.io.write_table` go to `~ctapipe.io.read_table`.
"""

import tables
from astropy.table import Column, Table
from astropy.table.meta import get_header_from_yaml
from ctapipe.io import read_table

__all__ = ["META_SUFFIX", "read_config_table", "read_old_ctapipe_table"]

#: astropy's node holding the YAML header of a table
META_SUFFIX = ".__table_column_meta__"


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read_config_table(h5file: tables.File, path: str) -> Table:
    """The table at ``path`` with column units and metadata, from either writer."""
    if path + META_SUFFIX not in h5file:
        return read_table(h5file, path)
    header = get_header_from_yaml(_decode(line) for line in h5file.get_node(path + META_SUFFIX).read())
    array = h5file.get_node(path).read()
    table = Table(meta=dict(header.get("meta", {})))
    for column in header["datatype"]:
        name = column["name"]
        values = array[name]
        if values.dtype.kind == "S":
            values = values.astype(str)
        table[name] = Column(values, unit=column.get("unit"))
    return table


def read_old_ctapipe_table(h5file: tables.File, path: str) -> Table:
    """A table written by ctapipe before 0.12's attribute scheme (``<column>_UNIT``).

    lstchain 0.7 to 0.9 store their simulation tables so; today's `~ctapipe.io.read_table`
    reads the values but not those units, which are attached here.
    """
    table = read_table(h5file, path)
    attrs = h5file.get_node(path).attrs
    names = set(attrs._f_list("user"))
    for column in table.colnames:
        key = f"{column}_UNIT"
        if table[column].unit is None and key in names and str(attrs[key]):
            table[column].unit = str(attrs[key])
    return table
