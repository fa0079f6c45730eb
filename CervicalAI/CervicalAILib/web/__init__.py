"""The web review app: a reader reviews and corrects a cohort's tumour contours in the browser.

Built on trame-slicer (Kitware), which runs 3D Slicer's own MRML, segmentation and Segment
Editor logic and slice views (the `slicer-core` wheel) behind a trame web page, so the browser
and the Slicer modules edit with the same logic and write the same files (`CervicalAILib.review.worklist`,
`CervicalAILib.review.record`).

    security.py   who may connect: host, token, reader name (no trame, no Slicer)
    scene.py      a case in an MRML scene: volumes on the T2WI grid, working copy, probability, organs
    app.py        the trame page and its logic (imports trame and trame-slicer at module level)
    server.py     `cervicalai review serve`: checks, then one server for one reader

trame, trame-slicer and slicer are heavy optional packages: nothing outside this package imports
them, and nothing imports `web.app`/`web.scene`/`web.server` at module level (the CLI imports
them inside `run`).
"""
