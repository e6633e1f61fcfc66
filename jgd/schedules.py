"""Learning-rate schedules optax lacks; every optax schedule is accepted by jgd as well."""

from jgd._schedules import InverseTimeDecay, harmonic, inverse_time_decay

__all__ = ["InverseTimeDecay", "harmonic", "inverse_time_decay"]
