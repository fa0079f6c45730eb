"""Logic of the CervicalAI hub module (no Qt; tested with the slicer-core wheel).

- `workflow`: the workflow steps in order, the scene's progress along them, study loading.
- `dependencies`: the Python packages the engine needs in Slicer, what is missing, how to install.
- `settings`: device, model bundle folder and reviewer name (keys, defaults, checks).
- `bundles`: the chosen model bundles, verified, with their model cards.
"""
