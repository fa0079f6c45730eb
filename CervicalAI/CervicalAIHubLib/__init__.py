"""Logic of the CervicalAI hub module, and the foundation the Segment and Predict modules build on
(no Qt; tested with the slicer-core wheel). It imports only itself and the engine (CervicalAILib).

- `scene`: the scene vocabulary of all three modules (node attributes, statuses, references) and
  small MRML helpers (node geometry, subject hierarchy).
- `volumes`: which loaded volume plays which sequence role; export of volumes as a case folder.
- `segmentation`: the tumour segment, and the engine's segmentation result as new nodes.
- `reviewed`: review state of a reviewed copy, its record, the export of the reviewed case.
- `runner`: the Python, environment and work folders of background engine runs.
- `workflow`: the workflow steps in order, the scene's progress along them, study loading.
- `worklist_panel`, `worklist_scene`: the review worklist (cohort of cases, scene of one case).
- `dependencies`: the Python packages the engine needs in Slicer, what is missing, how to install.
- `settings`: device, model bundle folder and reviewer name (keys, defaults, checks).
- `bundles`: the chosen model bundles, verified, with their model cards.
- `support`: which Slicer versions CervicalAI supports.
"""
