"""TuneLab's engine: configs, models, data, training jobs, chat and export.

Nothing here imports gradio; every part is usable from a script or the CLI.
"""
