"""The lab's first-cycle test protocol: what a test is judged against.

A plain dataclass that imports nothing of labloop's, so the settings can take their defaults
from it (and build it, `Settings.protocol`) without loading the cycler readers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    """The lab's first-cycle test protocol and what counts as a plausible result.

    Every field is the setting of the same name (README, settings), whose default is here.
    """

    charge_cutoff_v: float = 4.25
    discharge_cutoff_v: float = 2.75
    # a cutoff counts as reached within this much
    cutoff_tolerance_v: float = 0.05
    plausible_min_mah_g: float = 50.0
    plausible_max_mah_g: float = 300.0
    # a cathode's first discharge gives back less than its first charge put in; above this
    # coulombic efficiency the numbers are an artifact
    plausible_max_ce: float = 1.1
    # a first discharge that ends this far above discharge_cutoff_v ran another protocol
    discharge_end_margin_v: float = 0.2
    # a first "charge" below this is a residual current, not a charge
    min_charge_mah_g: float = 1.0
    # a discharge from open circuit before the first charge, at most this fraction of that
    # charge, is a conditioning step and skipped; a larger one means the test discharges first
    conditioning_max_fraction: float = 0.05
    # a test whose voltage never reaches this is not of a cathode (an anode half cell)
    cathode_min_v: float = 2.5
