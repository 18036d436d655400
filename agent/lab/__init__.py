"""A virtual NCM lab to close the loop on: hidden truth, noise, failures, real cycler files.

`VirtualLab` makes and tests recipes and writes vendor exports into an inbox;
`true_capacity` / `true_optimum` are its hidden ground truth; `generate_history` makes a
biased historical record like the paper's.
"""

from agent.lab.exports import FORMATS, CellRun, update_masses, write_export, write_result_sheet
from agent.lab.failures import Kind, synthesis_failure_probability
from agent.lab.history import generate_history, write_history
from agent.lab.lab import LabOutcome, VirtualLab
from agent.lab.truth import BASELINE, LABS, Lab, lab_named, true_capacity, true_optimum

__all__ = [
    "BASELINE",
    "FORMATS",
    "LABS",
    "Lab",
    "lab_named",
    "CellRun",
    "Kind",
    "LabOutcome",
    "VirtualLab",
    "generate_history",
    "synthesis_failure_probability",
    "true_capacity",
    "true_optimum",
    "update_masses",
    "write_export",
    "write_history",
    "write_result_sheet",
]
