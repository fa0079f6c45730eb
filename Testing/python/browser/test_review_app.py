"""The web review app in a real browser: Debian's Chromium driven by Playwright against
`cervicalai review serve` on 127.0.0.1, started and stopped by the tests.

The tests follow one reader's session in order (open the worklist, paint, mark as reviewed,
restart, a second reader, the readout), on one synthetic cohort of 3 cases with real automatic
contours; each step writes a screenshot to test-artefacts/browser/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.io import measurements as measure
from CervicalAILib.review.worklist import REVIEW_DIR, open_worklist

from .harness import (
    ReviewServer,
    frame_stats,
    new_page,
    paint_stroke,
    select_effect,
    stable_frame,
    wait_for_frame,
)

READER_A, READER_B = "Dr Ada", "Dr Bo"
FIRST = 0  # the worklist opens on its first case
# a view showing an image, not a blank one (grey-level spread near 0): the first case's T2WI, opened on
# the largest section of its small cervical tumour, spreads 19.4 on the 0-255 scale; DWI/ADC from 10
IMAGE_STD = 10


def _open(page, server: ReviewServer):
    page.goto(server.url)
    page.wait_for_selector("#worklist-table tr[data-case]")
    return page


def _case_ids(cohort):
    return open_worklist(cohort).case_ids()


def _mask_voxels(path) -> int:
    return int(sitk.GetArrayViewFromImage(sitk.ReadImage(str(path))).astype(bool).sum())


def _wait_file_change(path, old_sha: str | None, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            sha = sha256_file(path)
            if sha != old_sha:
                return sha
        time.sleep(0.1)
    raise AssertionError(f"{path} did not change within {timeout} s")


def _wait_reviewed(page, text: str, artefacts) -> None:
    """Wait for the review summary; on a timeout keep a screenshot and say what the app said instead."""
    try:
        page.locator(f"#review-summary:has-text('{text}')").wait_for(timeout=60000)
    except Exception as exc:
        page.screenshot(path=str(artefacts / "failed-mark-reviewed.png"))
        message = page.locator("#message")
        said = message.inner_text() if message.count() else "(no message)"
        summary = page.locator("#review-summary").inner_text()
        raise AssertionError(f"no '{text}' in the review summary ({summary!r}); the app said: {said!r}") from exc


def _files(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def session_a(review_cohort, artefacts, browser):
    """Reader A's server and browser page for the first tests of the session."""
    with ReviewServer(review_cohort, READER_A, artefacts / "logs") as server, new_page(browser) as page:
        yield server, _open(page, server)


def test_first_frame_shows_the_t2wi_with_the_contour(session_a, review_cohort, artefacts):
    server, page = session_a
    first = _case_ids(review_cohort)[FIRST]
    assert page.locator("#worklist-table tr[data-case]").count() == 3
    # the T2WI frame: an image (grey levels spread out, not a blank view) with the red tumour contour on it
    # (the first frames are the server's default 300 x 300 until the page has told it the view's size)
    stats, _ = wait_for_frame(page, lambda s: s["std"] > IMAGE_STD and s["red"] > 200 and s["width"] > 400, index=0)
    assert stats["height"] > 400
    for index in (1, 2, 3):  # DWI, ADC, CE-T1WI beside it, the contour on each
        side, _ = wait_for_frame(page, lambda s: s["std"] > IMAGE_STD and s["red"] > 20, index=index)
    assert page.locator("#case-status").inner_text().startswith("Status: in progress")
    assert "automatic contour" in page.locator("#case-status").inner_text()
    assert page.evaluate("window.trame.state.get('active_case')") == first
    page.screenshot(path=str(artefacts / "01-first-frame.png"))


def test_slices_to_check_first_and_the_probability_map(session_a, review_cohort, artefacts):
    _server, page = session_a
    first = _case_ids(review_cohort)[FIRST]
    segmentation = review_cohort / first / "segmentation"
    flagged = [f["slice"] for f in json.loads((segmentation / "segmentation.json").read_text())["flagged_slices"]]
    automatic = sitk.GetArrayFromImage(sitk.ReadImage(str(segmentation / "tumor.nii.gz")))
    opened_on = int(np.argmax(automatic.reshape(automatic.shape[0], -1).sum(axis=1)))  # the largest section
    chips = page.locator(".flagged-slice")
    assert chips.count() == len(flagged)
    other = next(i for i, k in enumerate(flagged) if k != opened_on)
    assert chips.nth(other).inner_text().startswith(f"slice {flagged[other] + 1}:")
    before = [stable_frame(page, index)["hash"] for index in range(4)]
    chips.nth(other).click()
    for index in range(4):  # the T2WI jumps; DWI, ADC and CE-T1WI follow its slice
        wait_for_frame(page, lambda s, old=before[index]: s["hash"] != old, index=index)
    plain = stable_frame(page, 0)
    page.locator("#show-probability").check()
    # the coloured foreground layer (the contour drawn as an outline over it)
    wait_for_frame(page, lambda s: s["colour"] > plain["colour"] + 300, index=0)
    page.screenshot(path=str(artefacts / "01b-probability-map.png"))
    page.locator("#show-probability").uncheck()
    wait_for_frame(page, lambda s: s["colour"] < plain["colour"] + 150, index=0)


def test_paint_stroke_changes_the_saved_mask(session_a, review_cohort, artefacts):
    server, page = session_a
    first = _case_ids(review_cohort)[FIRST]
    reader = open_worklist(review_cohort).reader(READER_A)
    working = reader.working_mask_path(first)
    automatic_voxels = _mask_voxels(review_cohort / first / "segmentation" / "tumor.nii.gz")
    before = frame_stats(page, 0)
    select_effect(page, "mdi-brush")
    # a stroke across the lower left of the view, away from the tumour in the middle
    paint_stroke(page, (0.25, 0.70), (0.40, 0.75))
    _wait_file_change(working, None)
    painted = _mask_voxels(working)
    assert painted > automatic_voxels + 20, (painted, automatic_voxels)
    # the frame shows it: more red than before the stroke
    wait_for_frame(page, lambda s: s["red"] > before["red"] + 200, index=0)
    page.locator("#saved-text").wait_for()
    assert "Working copy saved" in page.locator("#saved-text").inner_text()
    page.screenshot(path=str(artefacts / "02-paint-stroke.png"))


def test_mark_as_reviewed_writes_the_record_with_the_edit_metrics(session_a, review_cohort, artefacts):
    server, page = session_a
    first = _case_ids(review_cohort)[FIRST]
    page.get_by_label("2 minor edits").check()
    page.locator("#comment").fill("extended to the left")
    page.locator("#comment").blur()
    time.sleep(0.3)
    page.locator("#mark-reviewed").click()
    _wait_reviewed(page, "Reviewed by", artefacts)
    folder = review_cohort / REVIEW_DIR / "dr_ada" / first / "reviewed-1"
    record = json.loads((folder / "tumor.nii.gz.review.json").read_text())
    assert record["reviewer"] == READER_A and record["reviewed"] is True and record["origin"] == "edited"
    assert record["mask_sha256"] == sha256_file(folder / "tumor.nii.gz")
    automatic = sitk.ReadImage(str(review_cohort / first / "segmentation" / "tumor.nii.gz"))
    reviewed = sitk.ReadImage(str(folder / "tumor.nii.gz"))
    expected = measure.edit_metrics(automatic > 0, reviewed > 0)  # recomputed from the files
    assert record["edit_metrics"]["dice"] == pytest.approx(expected.dice, abs=1e-9)
    assert record["edit_metrics"]["dice"] < 0.99
    assert record["edit_metrics"]["volume_change_ml"] == pytest.approx(expected.volume_change_ml, abs=1e-9)
    assert record["edit_metrics"]["volume_change_ml"] > 0
    assert record["automatic_model"] == json.loads(
        (review_cohort / first / "segmentation" / "segmentation.json").read_text())["model"]["label"]
    notes = json.loads((folder / "review_notes.json").read_text())
    assert notes == {"rating": 2, "rating_text": "minor edits", "comment": "extended to the left"}
    assert "1 of 3 reviewed" in page.locator("#progress-text").inner_text()
    page.screenshot(path=str(artefacts / "03-marked-reviewed.png"))


def test_path_traversal_through_the_app_is_refused(session_a, review_cohort, artefacts):
    server, page = session_a
    first = _case_ids(review_cohort)[FIRST]
    for attempt in ("../../etc", "/etc", str(review_cohort / first), f"{first}/../..", REVIEW_DIR):
        page.evaluate("(name) => window.trame.trigger('open_case', [name])", attempt)
        # this attempt's own refusal (the message line may still show the previous step's message)
        page.locator("#message", has_text=f"case {attempt!r} is not in the worklist").wait_for(timeout=60000)
        assert page.evaluate("window.trame.state.get('active_case')") == first
    # state the browser may write cannot name a file either: the jump list takes indices only
    page.evaluate("window.trame.trigger('jump_to_flagged', ['../../etc/passwd'])")
    page.locator("#message:has-text('no slice to check')").wait_for(timeout=60000)
    page.screenshot(path=str(artefacts / "04-traversal-refused.png"))


def test_a_browser_without_the_secret_gets_nothing(session_a, review_cohort, artefacts, browser):
    server, _page = session_a
    with new_page(browser) as page:
        page.goto(server.url.split("?")[0])  # the address without ?secret=
        time.sleep(4)
        assert page.locator("#worklist-table tr[data-case]").count() == 0
        assert page.locator("img[src^='blob:']").count() == 0
        page.screenshot(path=str(artefacts / "05-no-secret.png"))


@pytest.fixture(scope="module")
def restarted_a(review_cohort, artefacts, browser):
    """Reader A's server started again (after test_restart... stopped the first one)."""
    with ReviewServer(review_cohort, READER_A, artefacts / "logs") as server, new_page(browser) as page:
        yield server, _open(page, server)


def test_restart_keeps_the_status_and_the_reviewed_copy(session_a, review_cohort, artefacts, request):
    server, _page = session_a
    first = _case_ids(review_cohort)[FIRST]
    reviewed = review_cohort / REVIEW_DIR / "dr_ada" / first / "reviewed-1"
    before = _files(reviewed)
    server.stop()
    assert server.process.returncode is not None
    _again, page = request.getfixturevalue("restarted_a")
    row = page.locator(f"#worklist-table tr[data-case='{first}'] td.case-status")
    assert row.inner_text() == "reviewed"
    assert "1 of 3 reviewed" in page.locator("#progress-text").inner_text()
    # the worklist opens on the next case still to review: the first one is done
    assert page.evaluate("window.trame.state.get('active_case')") != first
    wait_for_frame(page, lambda s: s["std"] > IMAGE_STD and s["red"] > 50 and s["width"] > 400, index=0)
    page.screenshot(path=str(artefacts / "06-after-restart.png"))
    assert _files(reviewed) == before
    status = subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "review", "status", str(review_cohort)],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "dr_ada: 1 of 3 reviewed" in status.stdout


def test_readout_panel_shows_the_same_lnm_risk_as_cervicalai_predict(restarted_a, review_cohort, artefacts, tmp_path):
    first = _case_ids(review_cohort)[FIRST]
    _server, page = restarted_a
    page.evaluate("(name) => window.trame.trigger('open_case', [name])", first)
    page.locator("#compute-readout").wait_for(timeout=60000)
    page.locator("#compute-readout").scroll_into_view_if_needed()
    page.locator("#compute-readout").click()
    page.locator("#readout-progress").wait_for(timeout=10000)  # progress while the background process runs
    page.locator("#readout-lnm:has-text('LNM risk')").wait_for(timeout=180000)
    shown = page.locator("#readout-lnm").inner_text()
    page.locator("#nomogram").scroll_into_view_if_needed()
    page.screenshot(path=str(artefacts / "07-readout.png"))
    reader_folder = review_cohort / REVIEW_DIR / "dr_ada" / first
    cli = subprocess.run(
        [sys.executable, "-m", "CervicalAILib.cli", "predict", str(review_cohort / first),
         "--mask", str(reader_folder / "reviewed-1" / "tumor.nii.gz"), "--clinical", str(reader_folder / "clinical.json"),
         "--transforms", str(review_cohort / first / "segmentation"), "--out", str(tmp_path / "cli"), "--json"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert cli.returncode == 0, cli.stderr[-2000:]
    expected = json.loads(cli.stdout)["lnm"]["probability"]
    app = json.loads((reader_folder / "readout" / "readout.json").read_text())
    assert app["lnm"]["probability"] == pytest.approx(expected, abs=1e-12)
    assert shown == f"LNM risk (DLRC): {100 * expected:.1f}%"
    assert app["review"]["reviewed"] is True and app["review"]["reviewer"] == READER_A


def test_a_second_reader_does_not_touch_the_first_readers_files(review_cohort, artefacts, browser):
    first = _case_ids(review_cohort)[FIRST]
    folder_a = review_cohort / REVIEW_DIR / "dr_ada"
    before = _files(folder_a)
    with ReviewServer(review_cohort, READER_B, artefacts / "logs") as server, new_page(browser) as page:
        _open(page, server)
        page.evaluate("(name) => window.trame.trigger('open_case', [name])", first)
        page.locator("#case-status:has-text('automatic contour')").wait_for(timeout=60000)
        wait_for_frame(page, lambda s: s["std"] > IMAGE_STD and s["red"] > 200, index=0)
        # a brush stroke of its own (upper right): an eraser stroke can wipe out a small automatic
        # contour, and an empty contour cannot be marked as reviewed
        select_effect(page, "mdi-brush")
        paint_stroke(page, (0.60, 0.25), (0.75, 0.30))
        _wait_file_change(review_cohort / REVIEW_DIR / "dr_bo" / first / "working" / "tumor.nii.gz", None)
        page.locator("#mark-reviewed").click()
        _wait_reviewed(page, "Reviewed by Dr Bo", artefacts)
        page.screenshot(path=str(artefacts / "08-second-reader.png"))
    assert _files(folder_a) == before  # not one byte of reader A changed
    record_b = json.loads((review_cohort / REVIEW_DIR / "dr_bo" / first / "reviewed-1" / "tumor.nii.gz.review.json").read_text())
    assert record_b["reviewer"] == READER_B
    mask_a = sitk.GetArrayFromImage(sitk.ReadImage(str(folder_a / first / "reviewed-1" / "tumor.nii.gz")))
    mask_b = sitk.GetArrayFromImage(sitk.ReadImage(str(review_cohort / REVIEW_DIR / "dr_bo" / first / "reviewed-1" / "tumor.nii.gz")))
    assert not np.array_equal(mask_a, mask_b)  # A and B painted in different places: two reviewed copies
    agreement = subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "review", "agreement", str(review_cohort),
                                "--readers", READER_A, READER_B], capture_output=True, text=True, timeout=120)
    assert agreement.returncode == 0, agreement.stderr
    dice = 2 * np.logical_and(mask_a, mask_b).sum() / (mask_a.astype(bool).sum() + mask_b.astype(bool).sum())
    assert f"Dice mean {dice:.3f}" in agreement.stdout
