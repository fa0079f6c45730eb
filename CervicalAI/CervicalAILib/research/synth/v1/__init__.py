"""Generator 1.x (geometric anatomy, fixed grey values), frozen so that 1.x cohorts stay reproducible.

Do not change these modules: the same (seed, parameters) must keep giving the same bytes as
cohorts made with generator 1.1.0. `SynthParams(generator_version="1.1.0")` selects it; new
work goes into generator 2 (the modules one level up).
"""

VERSION = "1.1.0"
