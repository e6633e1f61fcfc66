"""jgd: gradient descent in JAX, every way of getting a gradient, compiled and measured.

The public API; everything else lives in private modules. See README.md for a tour.
"""

from jgd import (
    data,
    io,
    losses,
    models,
    problems,
    schedules,
    timing,
    torch_baseline,
)
from jgd._blocks import scan_steps, with_data
from jgd._check import GradCheck, GradCheckRow, check_grads
from jgd._compile import compile_count
from jgd._curvature import StabilityBound, hvp, max_stable_learning_rate
from jgd._driver import Progress
from jgd._errors import DivergenceError, ProcessLostError
from jgd._fit import fit
from jgd._grad import MODES, TANGENTS, grad, value_and_grad
from jgd._guard import Stop, guard
from jgd._instruments import Series
from jgd._losses import per_example
from jgd._modes import ModeComparison, ModeCost, compare_modes, flops, jacobian
from jgd._modules import Stateful
from jgd._noise import NoiseScale, gradient_noise_scale
from jgd._parallel import data_mesh
from jgd._plans import shuffled_order
from jgd._recorders import Context, Recorder, View
from jgd._result import FitResult
from jgd._state import TrainState
from jgd._step import Step, make_step
from jgd._sweep import sweep
from jgd._sweep_result import SweepResult
from jgd._tangents import total_variance as forward_gradient_variance

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "TANGENTS",
    "Context",
    "DivergenceError",
    "FitResult",
    "GradCheck",
    "GradCheckRow",
    "ModeComparison",
    "ModeCost",
    "NoiseScale",
    "ProcessLostError",
    "Progress",
    "Recorder",
    "Series",
    "StabilityBound",
    "Stateful",
    "Step",
    "Stop",
    "SweepResult",
    "TrainState",
    "View",
    "check_grads",
    "compare_modes",
    "compile_count",
    "data",
    "data_mesh",
    "fit",
    "flops",
    "forward_gradient_variance",
    "grad",
    "gradient_noise_scale",
    "guard",
    "hvp",
    "io",
    "jacobian",
    "losses",
    "make_step",
    "max_stable_learning_rate",
    "models",
    "per_example",
    "problems",
    "scan_steps",
    "schedules",
    "shuffled_order",
    "sweep",
    "timing",
    "torch_baseline",
    "value_and_grad",
    "with_data",
]
