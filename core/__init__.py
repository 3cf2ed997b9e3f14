"""TuneLab's engine: everything a run needs, usable from a script or the CLI (nothing here imports gradio).

The packages follow the flow of a run, and depend on each other in this order only:

    core (basics)  config, errors, messages (+ catalog/), events, home, runs, hardware, models
    core.data      rows from a source -> chat examples -> tokens with answer-only labels -> pre-flight report
    core.plan      will it fit, how long will it take, can this machine run it (before Start)
    core.infer     chat, side-by-side and batched generation, held-out evaluation, merge and export
    core.train     the training job on its thread, the one-job-per-device manager, the trainer loop

A basic module imports no package; a package imports the basics and the packages above it in this list
(core.train asks core.infer for probe answers and frees its chat models before a run).
"""

import logging

# On a CPU with AVX512-BF16, bitsandbytes 0.50 tries to fetch a 4-bit kernel from the Hub at import and
# logs a warning when it can't (always, offline); it falls back to its own kernel, so the line is noise to users.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
