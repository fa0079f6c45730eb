"""The trame page of the review app: worklist, views, Segment Editor, review and readout panels.

One server serves one reader (trame keeps one shared state per server process: every browser
tab of the server shows the same case). The page:

- left: the worklist (status of every case, n of N reviewed, previous/next), the case panel
  (automatic contour, slices to check first, probability map, organs, rating, comment,
  Mark as reviewed, Skip), the Segment Editor of trame-slicer (paint, erase, draw, scissors,
  logical operators, threshold, islands, smoothing, intensity mask, undo/redo) and the readout
  panel (clinical form, LNM risk, nomogram, staging, warnings);
- right: the T2WI large, DWI, ADC and CE-T1WI beside it (all on the T2WI grid, slices linked),
  the tumour contour on every view.

Every edit is saved to the reader's working copy within a second (`worklist.save_working`), so
closing the browser loses nothing. The browser can only name a case of the worklist: every
request that names a case goes through `Worklist.case`, which knows no paths.

Imports trame, trame-slicer and slicer at module level: import this module only inside functions
(heavy optional packages, see web/__init__.py).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

from trame.app import get_server
from trame.ui.vuetify3 import VAppLayout
from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task
from trame_slicer import module as trame_slicer_module
from trame_slicer.app.logic.segmentation import SegmentEditorLogic
from trame_slicer.app.ui.segmentation import SegmentEditorUI
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition, ViewProps, ViewType

from CervicalAILib import RESEARCH_USE_STATEMENT
from CervicalAILib.contracts.clinical import FIELDS, parse_value, validate_clinical
from CervicalAILib.contracts.readout import NOMOGRAM_IMAGE, READOUT_FILE, read_readout
from CervicalAILib.contracts.readout_text import LABELS, percent, summary_text
from CervicalAILib.contracts.review import EditMetrics
from CervicalAILib.core import atomic
from CervicalAILib.core.background import BackgroundRun, Step, engine_command, engine_environment
from CervicalAILib.core.errors import CervicalAIError, InputError
from CervicalAILib.review.worklist import IN_PROGRESS, RATINGS, REVIEWED, SKIPPED, ReaderWorklist
from CervicalAILib.web import scene as case_scene

log = logging.getLogger(__name__)

# The views: (singleton tag, view group, sequence role, colour). Each role has its own view group so
# that each view shows its own background volume; slices are linked by `_sync_slices`.
VIEWS = (("T2W", 0, "#F34A33"), ("DWI", 1, "#6DAD4A"), ("ADC", 2, "#EFD64D"), ("CET1", 3, "#5B9BD5"))
LAYOUT_ID = "review"
AUTOSAVE_SECONDS = 0.4  # quiet time after an edit before the working copy is written
READOUT_POLL_SECONDS = 0.3
CLINICAL_FORM = ("age", "figo_stage", "histology", "scc_ag", "ln_short_axis_mm", "ln_long_axis_mm",
                 "ln_necrosis", "confined_to_cervix", "center")
READOUT_DIR = "readout"
TUMOUR_FILL_OPACITY = 0.5  # Slicer's default fill of a segment in slice views
CLINICAL_FILE = "clinical.json"


def _view(tag: str, group: int, color: str) -> ViewLayoutDefinition:
    return ViewLayoutDefinition(tag, ViewType.SLICE_VIEW, ViewProps(label=tag, orientation="Axial", color=color, group=group))


def review_layout() -> Layout:
    """T2WI large on the left, DWI / ADC / CE-T1WI stacked on the right (3:1)."""
    t2, *others = (_view(*view) for view in VIEWS)
    return Layout(LayoutDirection.Horizontal, [t2, Layout(LayoutDirection.Vertical, others)], flex_sizes=["3", "1"])


def format_metrics(metrics: EditMetrics | None) -> str:
    """The edit metrics as the Segment module shows them (EditMetrics.summary), or why there are none."""
    return metrics.summary() if metrics is not None else "drawn by the reader (no automatic contour to compare)"


def slice_view_gutter(server, view_id: str, view) -> None:
    """Reset button, sequence name and slice slider over each slice view (no 3D view in this app)."""
    from trame_slicer.app.logic.slice_view_logic import connect_slice_view_slider_to_state
    from trame_slicer.app.ui.slider import Slider

    with html.Div(style="position: absolute; top: 0; left: 0; display: flex; align-items: center;"):
        with v3.VBtn(size="small", variant="text", click=view.reset_view, icon=True):
            v3.VIcon("mdi-fit-to-screen-outline", size="small", color="white")
        html.Span(view.get_singleton_tag(), classes="text-caption", style="color: white;")
    with html.Div(style="position: absolute; bottom: 0; left: 0; width: 100%;"):
        Slider(classes="slice-slider", typed_state=connect_slice_view_slider_to_state(server, view), theme="dark",
               dense=True)


class ReviewApp:
    """The server side of one reader's review session (see the module doc)."""

    def __init__(self, reader: ReaderWorklist, server=None, rca_encoder: str | None = None,
                 python: str | None = None):
        self.reader = reader
        self.worklist = reader.worklist
        self.python = python or sys.executable
        self.server = server or get_server(client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.state, self.ctrl = self.server.state, self.server.controller
        self.slicer = SlicerApp()
        self.scene = self.slicer.scene
        register_rca_factories(self.slicer.view_manager, self.server, rca_encoder=rca_encoder,
                               slice_view_ui_f=slice_view_gutter, three_d_view_ui_f=lambda *_: None)
        self.layout_manager = LayoutManager(self.scene, self.slicer.view_manager, self.server)
        self.layout_manager.register_layout(LAYOUT_ID, review_layout())
        self.editor_logic = SegmentEditorLogic(self.server, self.slicer)
        self.loaded: case_scene.LoadedCase | None = None
        self._autosave_handle: asyncio.TimerHandle | None = None
        self._segmentation_observer: tuple[Any, int] | None = None
        self._slice_observers: list[tuple[Any, int]] = []
        self._syncing = False
        self._readout_run: BackgroundRun | None = None
        self._init_state()
        self._build_ui()
        self.layout_manager.set_layout(LAYOUT_ID)
        self._bind()
        self.ctrl.on_server_ready.add(self._on_ready)

    # -- state ----------------------------------------------------------------------------------------
    def _init_state(self) -> None:
        s = self.state
        s.trame__title = f"CervicalAI review - {self.reader.reader_name}"
        s.reader = self.reader.reader_name
        s.cohort = str(self.worklist.source)
        s.cases = []
        s.progress_text = ""
        s.progress_value = 0
        s.active_case = ""
        s.case_lines = []
        s.case_notes = []
        s.started_from = ""
        s.case_status = ""
        s.flagged = []
        s.has_probability = False
        s.show_probability = False
        s.has_organs = False
        s.show_organs = False
        s.rating = None
        s.rating_items = [{"value": k, "title": f"{k} {v}"} for k, v in RATINGS.items()]
        s.comment = ""
        s.skip_reason = ""
        s.review_summary = ""
        s.saved_text = ""
        s.edit_count = 0
        s.message = ""
        s.message_kind = "info"
        s.clinical = {}
        s.clinical_fields = [self._field_description(name) for name in CLINICAL_FORM]
        s.readout_running = False
        s.readout_progress = 0
        s.readout_message = ""
        s.readout_text = ""
        s.readout_lnm = ""
        s.nomogram_src = ""
        s.statement = RESEARCH_USE_STATEMENT

    @staticmethod
    def _field_description(name: str) -> dict[str, Any]:
        field = FIELDS[name]
        items = list(field.choices) if field.kind == "choice" else (["yes", "no"] if field.kind == "bool" else [])
        label = field.label + (f" ({field.unit})" if field.unit else "")
        return {"name": name, "kind": field.kind, "label": label, "items": items}

    def _refresh_worklist(self) -> None:
        rows = []
        statuses = self.reader.statuses()
        for status in statuses:
            rating = status.latest.rating if status.latest is not None and status.status == REVIEWED else None
            text = status.status + (f": {status.skip_reason}" if status.status == SKIPPED and status.skip_reason else "")
            if status.problem:
                text += f" ({status.problem})"
            rows.append({"case_id": status.case_id, "status": status.status, "text": text,
                         "rating": rating or "", "active": status.case_id == self.state.active_case})
        reviewed = sum(1 for s in statuses if s.status == REVIEWED)
        skipped = sum(1 for s in statuses if s.status == SKIPPED)
        self.state.cases = rows
        self.state.progress_text = f"{reviewed} of {len(statuses)} reviewed" + (f", {skipped} skipped" if skipped else "")
        self.state.progress_value = round(100 * reviewed / len(statuses)) if statuses else 0

    def _say(self, text: str, kind: str = "info") -> None:
        self.state.message = text
        self.state.message_kind = kind

    # -- UI -------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        with VAppLayout(self.server, theme="dark") as self.ui:
            with v3.VAppBar(density="compact"):
                v3.VAppBarTitle("CervicalAI review - {{ reader }}")
                html.Div("{{ progress_text }}", id="progress-text", classes="mx-4 text-body-2")
                v3.VProgressLinear(model_value=("progress_value",), color="green", height=6,
                                   style="max-width: 200px;")
                v3.VBtn("Previous", id="previous-case", click=self.ctrl.previous_case, classes="ml-4", variant="tonal")
                v3.VBtn("Next", id="next-case", click=self.ctrl.next_case, classes="ml-2", variant="tonal")
            with v3.VNavigationDrawer(permanent=True, width=420, location="left"):
                self._build_side_panel()
            with v3.VMain(), html.Div(style="height: calc(100vh - 48px - 30px); display: flex;"):
                self.layout_manager.initialize_layout_grid(self.ui)
            with v3.VFooter(app=True, density="compact", classes="text-caption"):
                html.Span("{{ statement }}")

    def _build_side_panel(self) -> None:
        with v3.VAlert(v_if=("message",), type=("message_kind",), density="compact", closable=True,
                       id="message", classes="ma-2", click_close="message = ''"):
            html.Span("{{ message }}")
        with v3.VExpansionPanels(multiple=True, model_value=([0, 1, 2, 3],), variant="accordion"):
            with v3.VExpansionPanel(title="Worklist"), v3.VExpansionPanelText():
                with v3.VTable(density="compact", id="worklist-table"):
                    with html.Tbody():
                        with html.Tr(v_for="row in cases", key="row.case_id", click="trigger('open_case', [row.case_id])",
                                     style="cursor: pointer;",
                                     classes=("{ 'bg-blue-grey-darken-3': row.case_id === active_case }",),
                                     __properties=[("data_case", "data-case")], data_case=("row.case_id",)):
                            html.Td("{{ row.case_id }}")
                            html.Td("{{ row.text }}", classes="case-status")
                            html.Td("{{ row.rating }}")
            with v3.VExpansionPanel(title=("active_case ? 'Case ' + active_case : 'Case'",)), v3.VExpansionPanelText():
                html.Div("Status: {{ case_status }}; starts from the {{ started_from }}", id="case-status",
                         classes="text-body-2 mb-1", v_if=("active_case",))
                html.Div("{{ line }}", v_for="line in case_lines", classes="text-caption")
                html.Div("{{ note }}", v_for="note in case_notes", classes="text-caption text-warning")
                html.Div("Slices to check first", v_if=("flagged.length",), classes="text-subtitle-2 mt-2")
                with v3.VChipGroup(v_if=("flagged.length",), column=True):
                    v3.VChip("{{ item.label }}", v_for="(item, index) in flagged", key="index", size="small",
                             click="trigger('jump_to_flagged', [index])", classes="flagged-slice")
                with html.Div(classes="d-flex"):
                    v3.VCheckbox(v_model=("show_probability",), label="Probability map", density="compact",
                                 disabled=("!has_probability",), hide_details=True, id="show-probability")
                    v3.VCheckbox(v_model=("show_organs",), label="Organs", density="compact",
                                 disabled=("!has_organs",), hide_details=True, id="show-organs")
                html.Div("{{ saved_text }}", id="saved-text", classes="text-caption text-grey")
                html.Div("Rating of the automatic contour", classes="text-subtitle-2 mt-2")
                with v3.VRadioGroup(v_model=("rating",), density="compact", hide_details=True, id="rating"):
                    v3.VRadio(v_for="item in rating_items", key="item.value", value=("item.value",),
                              label=("item.title",), density="compact")
                v3.VTextarea(v_model=("comment",), label="Comment", rows=2, density="compact", hide_details=True,
                             classes="mt-2", id="comment")
                with html.Div(classes="d-flex mt-2"):
                    v3.VBtn("Mark as reviewed", id="mark-reviewed", color="green", click=self.ctrl.mark_reviewed,
                            disabled=("!active_case",))
                    v3.VBtn("Reopen", id="reopen-case", classes="ml-2", variant="tonal", click=self.ctrl.reopen_case,
                            disabled=("!active_case",))
                with html.Div(classes="d-flex mt-2"):
                    v3.VTextField(v_model=("skip_reason",), label="Reason to skip", density="compact", hide_details=True,
                                  id="skip-reason")
                    v3.VBtn("Skip", id="skip-case", classes="ml-2", variant="tonal", click=self.ctrl.skip_case,
                            disabled=("!active_case",))
                html.Div("{{ review_summary }}", id="review-summary", classes="text-body-2 mt-2")
            with v3.VExpansionPanel(title="Segment Editor"), v3.VExpansionPanelText(), \
                    html.Div(style="height: 520px; display: flex; flex-direction: column;"):
                self.editor_ui = SegmentEditorUI()
                with html.Div(classes="d-flex"):
                    self.editor_ui.build_undo_redo_buttons()
                self.editor_logic.set_ui(self.editor_ui)
            with v3.VExpansionPanel(title="Readout"), v3.VExpansionPanelText():
                html.Div("Mark the case as reviewed first: the readout uses the reviewed contour.",
                         v_if=("case_status !== 'reviewed'",), classes="text-caption")
                with html.Div(v_if=("case_status === 'reviewed'",)):
                    with html.Div(v_for="f in clinical_fields", key="f.name"):
                        v3.VSelect(v_if=("f.items.length",), v_model=("clinical[f.name]",), items=("f.items",),
                                   label=("f.label",), density="compact", hide_details=True, clearable=True,
                                   classes="mb-1", update_modelValue="flushState('clinical')")
                        v3.VTextField(v_if=("!f.items.length",), v_model=("clinical[f.name]",), label=("f.label",),
                                      density="compact", hide_details=True, classes="mb-1",
                                      update_modelValue="flushState('clinical')",
                                      __properties=[("data_field", "data-field")], data_field=("f.name",))
                    v3.VBtn("Compute readout", id="compute-readout", click=self.ctrl.compute_readout,
                            disabled=("readout_running",), classes="mt-2")
                    v3.VProgressLinear(v_if=("readout_running",), model_value=("readout_progress",), height=8,
                                       classes="mt-2", id="readout-progress")
                    html.Div("{{ readout_message }}", classes="text-caption")
                    html.Div("{{ readout_lnm }}", id="readout-lnm", classes="text-h6 mt-2")
                    html.Pre("{{ readout_text }}", id="readout-text", style="white-space: pre-wrap; font-size: 11px;")
                    html.Img(v_if=("nomogram_src",), src=("nomogram_src",), style="width: 100%;", id="nomogram")

    # -- controller -------------------------------------------------------------------------------------
    def _bind(self) -> None:
        self.ctrl.trigger("open_case")(self.guarded(self.open_case))
        self.ctrl.trigger("jump_to_flagged")(self.guarded(self.jump_to_flagged))
        self.ctrl.next_case = self.guarded(self.next_case)
        self.ctrl.previous_case = self.guarded(self.previous_case)
        self.ctrl.mark_reviewed = self.guarded(self.mark_reviewed)
        self.ctrl.skip_case = self.guarded(self.skip_case)
        self.ctrl.reopen_case = self.guarded(self.reopen_case)
        self.ctrl.compute_readout = self.guarded(self.compute_readout)
        self.state.change("show_probability")(self._on_show_probability)
        self.state.change("show_organs")(self._on_show_organs)

    def guarded(self, function):
        """A controller call: engine errors become the message line, never a crash of the server."""
        def call(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except CervicalAIError as exc:
                self._say(str(exc), "error")
            except Exception as exc:  # a bug: say so, keep serving the reader's other cases
                log.exception("review app: %s failed", function.__name__)
                self._say(f"{function.__name__} failed: {exc}", "error")
            return None
        call.__name__ = function.__name__
        return call

    def _on_ready(self, **_):
        self._refresh_worklist()
        first = self.reader.next_case() or self.worklist.case_ids()[0]
        self.guarded(self.open_case)(first)

    # -- cases ------------------------------------------------------------------------------------------
    def open_case(self, case_id: str) -> None:
        case = self.worklist.case(case_id)  # the only door to a case: ids of the worklist, no paths
        if self.loaded is not None and self.loaded.case_id == case.case_id:
            return
        self._save_now()
        self._stop_observing()
        self.slicer.segmentation_editor.deactivate_effect()
        case_scene.unload_case(self.scene, self.loaded)
        self.loaded = None
        loaded = case_scene.load_case(self.scene, self.reader, case.case_id)
        self.loaded = loaded
        status = self.reader.start(case.case_id)
        self._show(loaded)
        s = self.state
        s.active_case = case.case_id
        s.case_status = status.status
        s.started_from = loaded.started_from
        s.case_lines = case_scene.summary_lines(loaded)
        s.case_notes = loaded.notes
        s.flagged = [{"label": f"slice {f['slice'] + 1}: confidence {f['confidence']:.2f}"} for f in loaded.flagged]
        s.has_probability = loaded.probability is not None
        s.has_organs = loaded.organs is not None
        s.show_probability = False
        s.show_organs = False
        latest = status.latest
        s.rating = latest.rating if latest is not None else None
        s.comment = latest.comment if latest is not None else ""
        s.skip_reason = status.skip_reason
        s.review_summary = self._review_text(status)
        s.saved_text = ""
        s.message = ""
        self._load_readout_panel()
        self._refresh_worklist()

    def _show(self, loaded: case_scene.LoadedCase) -> None:
        display = self.slicer.display_manager
        for tag, group, _color in VIEWS:
            node = loaded.volumes.get(tag)
            display.show_volume_in_slice_background(node, view_group=group)
            display.show_volume_in_slice_foreground(None, view_group=group)
        self.slicer.segmentation_editor.set_active_segmentation(loaded.tumour, loaded.volumes["T2W"])
        self.slicer.segmentation_editor.set_active_segment_id(loaded.tumour_segment_id)
        display.reset_views()
        self._observe(loaded)
        if loaded.focus_ras is not None:
            self._jump(loaded.focus_ras)

    def _views(self):
        return [self.slicer.view_manager.get_view(tag) for tag, _group, _color in VIEWS]

    def _jump(self, ras) -> None:
        for view in self._views():
            if view is not None:
                view.get_view_node().JumpSliceByOffsetting(*[float(c) for c in ras])

    def jump_to_flagged(self, index) -> None:
        if self.loaded is None or not isinstance(index, int) or not 0 <= index < len(self.loaded.flagged):
            raise InputError(f"no slice to check number {index!r}")
        self._jump(self.loaded.flagged[index]["ras"])

    def _neighbour(self, step: int) -> str | None:
        ids = self.worklist.case_ids()
        if not self.state.active_case:
            return ids[0]
        index = ids.index(self.state.active_case)
        return ids[(index + step) % len(ids)]

    def next_case(self) -> None:
        """The next case still to review (not reviewed, not skipped), else simply the next one."""
        target = self.reader.next_case(after=self.state.active_case or None) or self._neighbour(+1)
        self.open_case(target)

    def previous_case(self) -> None:
        self.open_case(self._neighbour(-1))

    # -- views ------------------------------------------------------------------------------------------
    def _on_show_probability(self, show_probability=False, **_):
        if self.loaded is None or self.loaded.probability is None:
            return
        view = self.slicer.view_manager.get_view("T2W")
        view.set_foreground_volume_id(self.loaded.probability.GetID() if show_probability else None)
        view.set_foreground_opacity(0.5)
        # the tumour as an outline over the probability, so the probability inside the contour shows
        display = self.loaded.tumour.GetDisplayNode()
        if display is not None:
            display.SetOpacity2DFill(0.0 if show_probability else TUMOUR_FILL_OPACITY)
        view.schedule_render()

    def _on_show_organs(self, show_organs=False, **_):
        if self.loaded is None or self.loaded.organs is None:
            return
        self.loaded.organs.GetDisplayNode().SetVisibility(bool(show_organs))

    def _observe(self, loaded: case_scene.LoadedCase) -> None:
        import slicer

        segmentation = loaded.tumour.GetSegmentation()
        tag = segmentation.AddObserver(slicer.vtkSegmentation.SourceRepresentationModified, self._on_edit)
        self._segmentation_observer = (segmentation, tag)
        for view in self._views():
            node = view.get_view_node()
            self._slice_observers.append((node, node.AddObserver("ModifiedEvent", self._sync_slices)))

    def _stop_observing(self) -> None:
        if self._segmentation_observer is not None:
            obj, tag = self._segmentation_observer
            obj.RemoveObserver(tag)
            self._segmentation_observer = None
        for obj, tag in self._slice_observers:
            obj.RemoveObserver(tag)
        self._slice_observers = []

    def _sync_slices(self, caller, _event) -> None:
        """Keep the four views on the same slice (they share the T2WI grid)."""
        if self._syncing:
            return
        self._syncing = True
        try:
            source = next((v for v in self._views() if v.get_view_node() is caller), None)
            if source is None:
                return
            offset = source.get_slice_value()
            for view in self._views():
                if view is not source and abs(view.get_slice_value() - offset) > 1e-3:
                    view.set_slice_value(offset)
        finally:
            self._syncing = False

    # -- autosave ---------------------------------------------------------------------------------------
    def _on_edit(self, *_):
        self.state.edit_count += 1
        if self._autosave_handle is not None:
            self._autosave_handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._save_now()
            return
        self._autosave_handle = loop.call_later(AUTOSAVE_SECONDS, self.guarded(self._autosave))

    def _autosave(self) -> None:
        self._autosave_handle = None
        self._save_now()
        self.state.flush()

    def _save_now(self) -> None:
        """Write the working copy now if an edit is waiting for its autosave."""
        if self.loaded is None or (self._autosave_handle is None and self.state.edit_count == 0):
            return
        if self._autosave_handle is not None:
            self._autosave_handle.cancel()
            self._autosave_handle = None
        self.reader.save_working(self.loaded.case_id, case_scene.current_mask(self.loaded))
        self.state.edit_count = 0
        self.state.saved_text = f"Working copy saved {_dt.datetime.now().strftime('%H:%M:%S')}"
        if self.state.case_status not in (REVIEWED, SKIPPED):
            self.state.case_status = IN_PROGRESS

    # -- review -----------------------------------------------------------------------------------------
    @staticmethod
    def _review_text(status) -> str:
        latest = status.latest
        if status.status != REVIEWED or latest is None:
            return ""
        record = latest.record
        return (f"Reviewed by {record.reviewer} at {record.reviewed_at} ({latest.folder.name}): "
                f"{format_metrics(record.edit_metrics)}")

    def _require_case(self) -> str:
        if self.loaded is None:
            raise InputError("open a case first")
        return self.loaded.case_id

    def mark_reviewed(self) -> None:
        case_id = self._require_case()
        self.slicer.segmentation_editor.deactivate_effect()  # finish an open edit first
        self._save_now()
        entry = self.reader.mark_reviewed(case_id, case_scene.current_mask(self.loaded), self.state.rating,
                                          self.state.comment or "")
        status = self.reader.status(case_id)
        self.state.case_status = status.status
        self.state.review_summary = self._review_text(status)
        self._say(f"{case_id}: reviewed ({entry.folder.name}); {format_metrics(entry.record.edit_metrics)}", "success")
        self._load_readout_panel()
        self._refresh_worklist()

    def skip_case(self) -> None:
        case_id = self._require_case()
        status = self.reader.skip(case_id, self.state.skip_reason or "")
        self.state.case_status = status.status
        self._say(f"{case_id}: skipped ({status.skip_reason})", "info")
        self._refresh_worklist()

    def reopen_case(self) -> None:
        case_id = self._require_case()
        status = self.reader.reopen(case_id)
        self.state.case_status = status.status
        self.state.review_summary = ""
        self._refresh_worklist()

    # -- readout ----------------------------------------------------------------------------------------
    def _reader_case_folder(self) -> Path:
        return self.reader.case_folder(self._require_case())

    def _load_readout_panel(self) -> None:
        """The clinical form (the reader's values, else the case's clinical.json) and any readout."""
        case_id = self._require_case()
        case = self.worklist.case(case_id)
        values: dict[str, Any] = {}
        for path in (self._reader_case_folder() / CLINICAL_FILE, case.folder / CLINICAL_FILE):
            if path.is_file():
                try:
                    values = json.loads(path.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    raise InputError(f"not valid JSON ({exc})", path) from exc
                break
        form = {}
        for name in CLINICAL_FORM:
            value = values.get(name)
            if FIELDS[name].kind == "bool" and value is not None:
                try:  # the one yes/no reading ("Yes", "positive", 0.0 ... as the readout reads them)
                    given = parse_value(FIELDS[name], value)
                    value = None if given is None else "yes" if given else "no"
                except InputError:
                    value = str(value)  # shown as it is; submitting names the value and the rule
            form[name] = "" if value is None else value
        self.state.clinical = form
        self.state.readout_progress = 0
        self.state.readout_message = ""
        self._show_readout(self._reader_case_folder() / READOUT_DIR)

    def _show_readout(self, folder: Path) -> None:
        readout_path = folder / READOUT_FILE
        status = self.reader.status(self._require_case())
        if not readout_path.is_file() or status.latest is None:
            self.state.readout_text = self.state.readout_lnm = self.state.nomogram_src = ""
            return
        _, readout = read_readout(readout_path)
        mask = readout.inputs.mask
        if mask is not None and mask.sha256 not in (None, status.latest.record.mask_sha256):
            self.state.readout_text = "The readout below was computed on an earlier review: compute it again."
        else:
            self.state.readout_text = ""
        self.state.readout_text += summary_text(readout)
        self.state.readout_lnm = f"{LABELS['lnm']}: {percent(readout.probability)}"
        nomogram = folder / ((readout.nomogram.image if readout.nomogram is not None else None) or NOMOGRAM_IMAGE)
        self.state.nomogram_src = ("data:image/png;base64," + base64.b64encode(nomogram.read_bytes()).decode()
                                   if nomogram.is_file() else "")

    def compute_readout(self) -> None:
        """`cervicalai predict` on the reviewed contour, in a background process with progress."""
        case_id = self._require_case()
        if self._readout_run is not None and not self._readout_run.finished:
            raise InputError("a readout is already being computed")
        status = self.reader.status(case_id)
        if status.status != REVIEWED or status.latest is None or not status.latest.record.reviewed:
            raise InputError(f"{case_id}: mark the case as reviewed first (the readout uses the reviewed contour)")
        form = {name: value for name, value in (self.state.clinical or {}).items() if name in CLINICAL_FORM}
        clinical = validate_clinical({k: v for k, v in form.items() if v not in ("", None)})
        case = self.worklist.case(case_id)
        folder = self._reader_case_folder()
        clinical_path = atomic.write_json(folder / CLINICAL_FILE, {"case_id": case_id, **clinical})
        command = ["predict", case.folder, "--mask", status.latest.mask_path, "--clinical", clinical_path,
                   "--out", folder / READOUT_DIR, "--overwrite"]
        if case.segmentation is not None:
            command += ["--transforms", case.segmentation]
        self._readout_run = BackgroundRun([Step(engine_command(self.python, *command), "readout")],
                                          env=engine_environment()).start()
        self._readout_case = case_id
        self.state.readout_running = True
        self.state.readout_progress = 0
        self.state.readout_message = "starting"
        create_task(self._poll_readout())

    async def _poll_readout(self) -> None:
        run = self._readout_run
        while True:
            state = run.poll()
            with self.state:
                self.state.readout_progress = round(100 * state.fraction)
                self.state.readout_message = state.message
            if state.finished:
                break
            await asyncio.sleep(READOUT_POLL_SECONDS)
        with self.state:
            self.state.readout_running = False
            if state.status == "succeeded":
                self.state.readout_message = f"readout computed in {run.seconds:.0f} s"
                if self.loaded is not None and self.loaded.case_id == self._readout_case:
                    self.guarded(self._show_readout)(self._reader_case_folder() / READOUT_DIR)
            else:
                self._say(f"readout failed: {run.error_message()}", "error")

    # -- life cycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Save a pending edit and stop a running readout (the server is stopping)."""
        try:
            self._save_now()
        finally:
            if self._readout_run is not None and not self._readout_run.finished:
                self._readout_run.cancel()
