"""CervicalAI hub module: the workflow in order, model cards, settings and Python packages.

A thin Qt layer. The behaviour that needs no Qt lives in CervicalAIHubLib (workflow state,
dependency plan, settings, bundle cards; tested with the slicer-core wheel) and in the engine
(CervicalAILib), which runs in a background process so that the GUI never freezes.

Supported: 3D Slicer 5.10, 5.12 and the 5.13 preview (Python 3.12). On an older Slicer (5.8 ships
Python 3.9.10) the widget shows one sentence saying so and does nothing else: this file imports,
and runs up to that check, on Python 3.9 (CervicalAIHubLib.support; a test checks it).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Annotated

import qt
import slicer
import vtk
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

POLL_MILLISECONDS = 250
STATE_REFRESH_MILLISECONDS = 500


def unsupportedSlicerReason() -> str:
    """One sentence when this Slicer cannot run CervicalAI (5.8 and older), else "" (all three modules ask)."""
    from CervicalAIHubLib.support import unsupported_reason

    return unsupported_reason((slicer.app.majorVersion, slicer.app.minorVersion), sys.version_info)


#
# CervicalAI
#


class CervicalAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CervicalAI"
        self.parent.categories = ["CervicalAI"]
        self.parent.dependencies = ["Segmentations", "SubjectHierarchy"]
        self.parent.contributors = ["CervicalAI contributors"]
        self.parent.helpText = (
            "Cervical cancer pelvic MRI workflow: load study, segment the primary tumour, review, "
            "predict lymph-node metastasis risk, export. Research use only: the shipped models were "
            "trained on synthetic data and are not for clinical use."
        )
        self.parent.acknowledgementText = "Built on 3D Slicer, pyradiomics, SimpleITK and onnxruntime."


#
# Parameter node
#


@parameterNodeWrapper
class CervicalAIParameterNode:
    """
    device, bundleFolder, reviewerName - the CervicalAI settings (kept in Slicer's settings too).
    """

    device: Annotated[str, Choice(["cpu", "gpu"])] = "cpu"
    bundleFolder: str = ""
    reviewerName: str = ""


#
# CervicalAIWidget
#


class CervicalAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # background `study register` of "Load study from folder"
        self._loadCase = ""
        self._pollTimer = None
        self._stateTimer = None
        self._dependenciesOffered = False
        self._unsupported = ""  # why this Slicer cannot run CervicalAI ("" when it can)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self._unsupported = unsupportedSlicerReason()
        if self._unsupported:  # an older Slicer: one sentence, nothing else is loaded
            label = qt.QLabel(self._unsupported)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CervicalAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CervicalAILogic()
        self.ui.statusLabel.text = self.logic.statusText()

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_MILLISECONDS)
        self._pollTimer.connect("timeout()", self.onPollLoad)
        self._stateTimer = qt.QTimer()  # the workflow state is refreshed once after a burst of scene changes
        self._stateTimer.setSingleShot(True)
        self._stateTimer.setInterval(STATE_REFRESH_MILLISECONDS)
        self._stateTimer.connect("timeout()", self.updateWorkflowState)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        for event in (slicer.mrmlScene.NodeAddedEvent, slicer.mrmlScene.NodeRemovedEvent, slicer.mrmlScene.EndImportEvent):
            self.addObserver(slicer.mrmlScene, event, self.onSceneChanged)

        self.ui.loadFolderButton.connect("clicked(bool)", self.onLoadFolderButton)
        self.ui.dicomDatabaseButton.connect("clicked(bool)", lambda: slicer.util.selectModule("DICOM"))
        self.ui.cancelLoadButton.connect("clicked(bool)", self.onCancelLoadButton)
        self.ui.segmentButton.connect("clicked(bool)", lambda: slicer.util.selectModule("CervicalAISegment"))
        self.ui.predictButton.connect("clicked(bool)", lambda: slicer.util.selectModule("CervicalAIPredict"))
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.updateModelCards)
        self.ui.browseBundleFolderButton.connect("clicked(bool)", self.onBrowseBundleFolder)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependencies)
        # the review worklist of a cohort (issue 15): same files as `cervicalai review` and the web app
        self.worklistSection = CervicalAIWorklistSection(
            self.layout, lambda: self._parameterNode.reviewerName if self._parameterNode else ""
        )

        self.initializeParameterNode()
        self.updateModelCards()
        self.updateDependencies()

    def cleanup(self) -> None:
        if self._unsupported:
            return
        if self._run is not None and not self._run.finished:
            self._run.cancel()
        for timer in (self._pollTimer, self._stateTimer):
            if timer is not None:
                timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        if self._unsupported:
            return
        self.initializeParameterNode()
        self.updateWorkflowState()
        if not self._dependenciesOffered:  # on first use in a session: offer to install what is missing
            self._dependenciesOffered = True
            if not self.logic.dependencyPlan(self._parameterNode.device).complete:
                self.ui.dependenciesCollapsibleButton.collapsed = False
                self.onInstallDependencies()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()
            self.updateWorkflowState()

    def onSceneChanged(self, caller=None, event=None) -> None:
        self._stateTimer.start()

    # -- settings (parameter node <-> Slicer settings) --------------------------------------------
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        settings = self.logic.settings()
        for name, value in settings.items():
            if getattr(self._parameterNode, name) != value:
                setattr(self._parameterNode, name, value)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        if not self._parameterNode:
            return
        values = {"device": self._parameterNode.device, "bundleFolder": self._parameterNode.bundleFolder,
                  "reviewerName": self._parameterNode.reviewerName}  # fmt: skip
        problems = self.logic.saveSettings(values)
        self.ui.settingsProblemsLabel.text = "\n".join(problems)

    def onBrowseBundleFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Model bundle folder", self._parameterNode.bundleFolder)
        if folder:
            self._parameterNode.bundleFolder = folder
            self.updateModelCards()

    # -- workflow ---------------------------------------------------------------------------------
    def updateWorkflowState(self) -> None:
        try:
            state, nextStep = self.logic.workflowState()
        except Exception as exc:  # a half-loaded scene must not break the hub
            logging.warning(f"CervicalAI workflow state: {exc}")
            return
        from CervicalAIHubLib.workflow import STEPS

        lines = []
        for step in STEPS:
            mark = "&#10003;" if state[step.key].done else "&#9675;"
            text = f"{mark} <b>{step.title}</b>: {state[step.key].detail}"
            if nextStep is not None and step.key == nextStep.key:
                text = f"<span style='color:#1565c0'>{text} (next)</span>"
            lines.append(text)
        self.ui.workflowStateLabel.text = "<br>".join(lines)

    def onLoadFolderButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Study folder (case folder or DICOM)")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Failed to load the study.", waitCursor=True):
            run, caseFolder = self.logic.startLoadStudy(folder)
            if run is None:  # a case folder: loaded at once
                self.ui.loadStatusLabel.text = f"Loaded {caseFolder}. Next: segment."
                self.updateWorkflowState()
                return
            self._run, self._loadCase = run, caseFolder
            self.ui.cancelLoadButton.enabled = True
            self.ui.loadProgressBar.value = 0
            self._pollTimer.start()

    def onCancelLoadButton(self) -> None:
        if self._run is not None and not self._run.finished:
            self._run.cancel()

    def onPollLoad(self) -> None:
        state = self._run.poll()
        self.ui.loadProgressBar.value = int(round(100 * state.fraction))
        self.ui.loadStatusLabel.text = state.message
        if not state.finished:
            return
        self._pollTimer.stop()
        self.ui.cancelLoadButton.enabled = False
        if state.status == "succeeded":
            with slicer.util.tryWithErrorDisplay("Failed to load the co-registered study.", waitCursor=True):
                self.logic.loadCaseFolder(self._loadCase)
                self.ui.loadStatusLabel.text = f"Loaded (roles recognised, sequences co-registered): {self._loadCase}. Next: segment."
        elif state.status == "cancelled":
            self.ui.loadStatusLabel.text = "Cancelled."
        else:
            self.ui.loadStatusLabel.text = "Loading failed."
            slicer.util.errorDisplay(f"Loading the study failed: {self._run.error_message()}",
                                     detailedText="\n".join(self._run.lines[-200:]))  # fmt: skip
        self.updateWorkflowState()

    def onExportButton(self) -> None:
        # dialogs first, then the busy cursor only while exporting (a modal dialog under it would keep it)
        with slicer.util.tryWithErrorDisplay("Failed to export the reviewed case."):
            node = self.logic.latestReviewed()
            if node is None:
                raise ValueError("There is no reviewed segmentation to export: mark one as reviewed first.")
        parent = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Export the reviewed case into")
        if not parent:
            return
        with slicer.util.tryWithErrorDisplay("Failed to export the reviewed case.", waitCursor=True):
            folder = self.logic.exportCase(node, parent)
            self.ui.loadStatusLabel.text = f"Exported {node.GetName()} to {folder}."
            self.updateWorkflowState()

    # -- models and packages ----------------------------------------------------------------------
    def updateModelCards(self) -> None:
        self.ui.modelCardsTextEdit.setPlainText(self.logic.modelCardsText())

    def updateDependencies(self) -> None:
        self.ui.dependenciesLabel.text = self.logic.dependencyPlan(self.logic.settings()["device"]).message()

    def onInstallDependencies(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to install the Python packages.", waitCursor=False):
            self.logic.ensureDependencies(self.logic.settings()["device"])
        self.updateDependencies()


#
# CervicalAIWorklistSection
#


class CervicalAIWorklistSection:
    """The hub's "Review worklist" section, built in code (the hub's .ui stays as it is).

    Choose a cohort (folder or CSV), see every case's status for the reader named in the settings,
    load a case into the Segment module (its automatic result, or where the reader stopped, in
    Slicer or in the browser), correct it there, come back, rate it, Mark as reviewed, Next. The
    logic is CervicalAIHubLib.worklist_panel (no Qt) and worklist_scene (MRML): same files as
    `cervicalai review` and the web review app. `reader()` gives the hub's reviewer name.
    """

    def __init__(self, layout, reader):
        import ctk  # only this section uses ctk

        self._reader = reader
        self.panel = None
        self.current = None  # case id loaded in the scene
        self.draft = None
        self.button = ctk.ctkCollapsibleButton()
        self.button.text = "Review worklist"
        self.button.collapsed = True
        layout.addWidget(self.button)
        form = qt.QFormLayout(self.button)
        self.cohortEdit = ctk.ctkPathLineEdit()
        self.cohortEdit.filters = ctk.ctkPathLineEdit.Dirs | ctk.ctkPathLineEdit.Files
        self.cohortEdit.nameFilters = ["Cohort folder or case list (*.csv)"]
        self.cohortEdit.toolTip = "A cohort folder (case folders with their automatic contours) or a CSV of case folders."
        form.addRow("Cohort:", self.cohortEdit)
        self.openButton = qt.QPushButton("Open worklist")
        form.addRow(self.openButton)
        self.progressLabel = qt.QLabel("")
        form.addRow(self.progressLabel)
        self.table = qt.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Case", "Status", "Rating"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.table.setMinimumHeight(160)
        form.addRow(self.table)
        row = qt.QHBoxLayout()
        self.loadButton = qt.QPushButton("Load selected")
        self.nextButton = qt.QPushButton("Next case")
        row.addWidget(self.loadButton)
        row.addWidget(self.nextButton)
        form.addRow(row)
        self.ratingCombo = qt.QComboBox()
        form.addRow("Rating:", self.ratingCombo)
        self.commentEdit = qt.QLineEdit()
        form.addRow("Comment:", self.commentEdit)
        self.reviewButton = qt.QPushButton("Mark as reviewed")
        self.reviewButton.toolTip = "Freeze the Segment module's working copy of this case as your reviewed contour."
        form.addRow(self.reviewButton)
        skipRow = qt.QHBoxLayout()
        self.skipReasonEdit = qt.QLineEdit()
        self.skipReasonEdit.placeholderText = "reason to skip"
        self.skipButton = qt.QPushButton("Skip")
        skipRow.addWidget(self.skipReasonEdit)
        skipRow.addWidget(self.skipButton)
        form.addRow(skipRow)
        self.messageLabel = qt.QLabel("")
        self.messageLabel.wordWrap = True
        form.addRow(self.messageLabel)
        from CervicalAIHubLib.worklist_panel import WorklistPanel

        for value, text in WorklistPanel.rating_choices():
            self.ratingCombo.addItem(text, value)
        self.openButton.connect("clicked(bool)", self.onOpen)
        self.loadButton.connect("clicked(bool)", self.onLoadSelected)
        self.nextButton.connect("clicked(bool)", self.onNext)
        self.reviewButton.connect("clicked(bool)", self.onMarkReviewed)
        self.skipButton.connect("clicked(bool)", self.onSkip)
        self.updateButtons()

    # -- state --------------------------------------------------------------------------------------
    def updateButtons(self) -> None:
        has = self.panel is not None
        for button in (self.loadButton, self.nextButton):
            button.enabled = has
        for button in (self.reviewButton, self.skipButton):
            button.enabled = has and self.current is not None

    def refresh(self) -> None:
        rows = self.panel.rows() if self.panel is not None else []
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            for column, text in enumerate((row.case_id, row.text, row.rating)):
                self.table.setItem(index, column, qt.QTableWidgetItem(text))
        self.progressLabel.text = self.panel.progress_text() if self.panel is not None else ""
        self.updateButtons()

    # -- actions ------------------------------------------------------------------------------------
    def onOpen(self) -> None:
        from CervicalAIHubLib.worklist_panel import WorklistPanel

        with slicer.util.tryWithErrorDisplay("Failed to open the worklist.", waitCursor=True):
            self.panel = WorklistPanel(self.cohortEdit.currentPath, self._reader())
            self.current = self.draft = None
            self.refresh()

    def onLoadSelected(self) -> None:
        rows = self.panel.rows() if self.panel is not None else []
        index = self.table.currentRow()
        if 0 <= index < len(rows):
            self.loadCase(rows[index].case_id)

    def onNext(self) -> None:
        target = self.panel.next_case(self.current)
        if target is None:
            self.messageLabel.text = "Every case is reviewed or skipped."
            return
        self.loadCase(target)

    def _saveWorkingCopy(self) -> None:
        """Keep the reader's edits of the case being left (the scene is cleared for the next case)."""
        from CervicalAIHubLib.worklist_scene import reader_mask

        if self.current is not None and self.draft is not None and self.draft.GetScene() is not None:
            self.panel.save_working(self.current, reader_mask(self.draft))

    def loadCase(self, case_id: str) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to load the case.", waitCursor=True):
            self._saveWorkingCopy()
            to_load = self.panel.case_to_load(case_id)
            from CervicalAIHubLib.worklist_scene import load_case

            slicer.mrmlScene.Clear(0)  # one case at a time; the edits are in the worklist's working copy
            roles = CervicalAILogic.loadCaseFolder(str(to_load.folder))
            self.draft = load_case(slicer.mrmlScene, to_load, roles)
            self.current = to_load.case_id
            # the Segment module's logic through Slicer's module registry (the modules never import each other)
            slicer.util.getModuleLogic("CervicalAISegment").selectCase(roles, self.draft, self._reader())
            index = self.ratingCombo.findData(to_load.rating) if to_load.rating is not None else 0
            self.ratingCombo.currentIndex = max(index, 0)
            self.commentEdit.text = to_load.comment
            self.messageLabel.text = f"{case_id}: starts from the {to_load.started_from}. " + " ".join(to_load.notes)
            self.refresh()
            slicer.util.selectModule("CervicalAISegment")

    def onMarkReviewed(self) -> None:
        from CervicalAIHubLib.worklist_scene import reader_mask

        with slicer.util.tryWithErrorDisplay("Failed to mark the case as reviewed.", waitCursor=True):
            draft = slicer.util.getModuleLogic("CervicalAISegment").selectedSegmentation() or self.draft
            rating = self.ratingCombo.currentData
            self.messageLabel.text = self.panel.mark_reviewed(self.current, reader_mask(draft), rating,
                                                              self.commentEdit.text)
            logging.info(self.messageLabel.text)
            self.refresh()

    def onSkip(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to skip the case.", waitCursor=True):
            self.messageLabel.text = self.panel.skip(self.current, self.skipReasonEdit.text)
            self.refresh()


#
# CervicalAILogic
#


class CervicalAILogic(ScriptedLoadableModuleLogic):
    """Slicer-side glue for the hub; behaviour is in CervicalAIHubLib (tested under slicer-core)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return CervicalAIParameterNode(super().getParameterNode())

    def engineVersion(self):
        import CervicalAILib

        return CervicalAILib.__version__

    def statusText(self):
        import CervicalAILib

        return f"CervicalAI engine {CervicalAILib.__version__}. {CervicalAILib.RESEARCH_USE_STATEMENT}"

    # settings
    @staticmethod
    def settings() -> dict:
        from CervicalAIHubLib import application

        return application.settings()

    @staticmethod
    def saveSettings(values: dict) -> list:
        """Store the settings in Slicer's settings; returns what is wrong with them (if anything)."""
        from CervicalAIHubLib.settings import SETTINGS, settings_problems

        settings = qt.QSettings()
        for name, value in values.items():
            settings.setValue(SETTINGS[name].key, value)
        return settings_problems(values)

    # workflow
    @staticmethod
    def workflowState():
        from CervicalAIHubLib.workflow import next_step, workflow_state

        state = workflow_state(slicer.mrmlScene)
        return state, next_step(state)

    def startLoadStudy(self, folder: str):
        """A case folder is loaded at once (returns (None, folder)); any other folder is read and
        co-registered by `cervicalai study register` in the background (returns (run, case folder))."""
        from CervicalAIHubLib import application
        from CervicalAIHubLib.runner import new_work_folder
        from CervicalAIHubLib.workflow import study_load_step
        from CervicalAILib.core.background import BackgroundRun
        from CervicalAILib.io.case import is_case_folder

        if is_case_folder(folder):
            self.loadCaseFolder(folder)
            return None, folder
        work = new_work_folder(application.work_base(), os.path.basename(os.path.normpath(folder)))
        caseFolder = str(work / "case")
        step = study_load_step(application.python_executable(), folder, caseFolder)
        return BackgroundRun([step], env=application.engine_environment()).start(), caseFolder

    @staticmethod
    def loadCaseFolder(folder: str) -> dict:
        """Load a case folder's volumes, each marked with its role; returns role -> node."""
        from CervicalAIHubLib.workflow import case_volume_files, mark_loaded

        caseName = os.path.basename(os.path.normpath(folder))
        loaded = {}
        for role, path in case_volume_files(folder).items():
            node = slicer.util.loadVolume(str(path), {"name": f"{caseName} {role}", "show": role == "T2W"})
            mark_loaded(node, role, folder)
            loaded[role] = node
        slicer.util.setSliceViewerLayers(background=loaded["T2W"], fit=True)
        return loaded

    @staticmethod
    def latestReviewed():
        from CervicalAIHubLib.reviewed import latest_reviewed

        return latest_reviewed(slicer.mrmlScene)

    @staticmethod
    def exportCase(node, parentFolder: str):
        """Export a reviewed segmentation and its volumes as a new case folder in `parentFolder`."""
        from CervicalAIHubLib.reviewed import export_reviewed_case
        from CervicalAIHubLib.runner import safe_file_name
        from CervicalAIHubLib.scene import REFERENCE_ROLE, clinical_values

        t2 = node.GetNodeReference(REFERENCE_ROLE["T2W"])
        clinical = None
        try:  # the clinical values the Predict module recorded for this case, when there are any
            clinical = clinical_values(t2) or None
        except Exception as exc:
            logging.warning(f"CervicalAI export: clinical values not included ({exc})")
        stem = safe_file_name(t2.GetName() if t2 is not None else node.GetName())
        target, number = os.path.join(parentFolder, stem), 2
        while os.path.exists(target):
            target, number = os.path.join(parentFolder, f"{stem}_{number}"), number + 1
        return export_reviewed_case(node, target, clinical)

    # models
    def modelCardsText(self) -> str:
        from CervicalAIHubLib.bundles import bundle_cards, cards_text, chosen_models_dir

        folder = chosen_models_dir(self.settings()["bundleFolder"])
        return cards_text(bundle_cards(folder))

    # Python packages and models: the gate of Apply, Compute and the self-tests
    @staticmethod
    def dependencyPlan(device: str = "cpu"):
        from CervicalAIHubLib.dependencies import install_plan

        return install_plan(device)

    @staticmethod
    def ensureReady(device: str | None = None, purposes=()) -> None:
        """The one gate before a background step and in the self-tests (CervicalAIHubLib.application)."""
        from CervicalAIHubLib import application

        application.ensure_ready(device, purposes)

    @staticmethod
    def ensureDependencies(device: str | None = None) -> bool:
        """Offer to install missing Python packages (CervicalAIHubLib.application); True when complete."""
        from CervicalAIHubLib import application

        return application.ensure_dependencies(device)


#
# CervicalAITest
#


class CervicalAITest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.assertEqual(unsupportedSlicerReason(), "")  # an unsupported Slicer fails here, with the reason
        self.setUp()
        self.test_engine_importable()
        self.setUp()
        self.test_packages_and_models()
        self.setUp()
        self.test_workflow_state_and_case_loading()

    def test_engine_importable(self):
        logic = CervicalAILogic()
        version = logic.engineVersion()
        self.assertRegex(version, r"^\d+\.\d+\.\d+")
        self.assertIn("synthetic", logic.statusText())
        logging.info("CervicalAI engine %s imported", version)

    def test_packages_and_models(self):
        """The gate the buttons use: packages complete and every shipped bundle verified."""
        from CervicalAIHubLib.bundles import (
            PREDICT_PURPOSES,
            SEGMENT_PURPOSES,
            bundle_cards,
            chosen_models_dir,
        )
        from CervicalAIHubLib.dependencies import SLICER_OWN

        logic = CervicalAILogic()
        logic.ensureReady("cpu", SEGMENT_PURPOSES + PREDICT_PURPOSES)  # raises NotReadyError with the reason
        plan = logic.dependencyPlan("cpu")
        self.assertTrue(plan.complete, plan.message())
        own = {name.lower() for name in SLICER_OWN}
        for pin in plan.constraints:  # the constraints hold only Slicer's own packages, at their installed versions
            self.assertIn(pin.split("==")[0].lower(), own)
        cards = bundle_cards(chosen_models_dir(logic.settings()["bundleFolder"]))
        segmentation = [card for card in cards if card.purpose == "segmentation"][0]
        self.assertTrue(segmentation.usable, segmentation.problem)
        self.assertIn("synthetic", segmentation.training_data.lower())

    def test_workflow_state_and_case_loading(self):
        from CervicalAILib.research.synth import generate_case
        from CervicalAILib.research.synth.writer import write_case_folder

        folder = os.path.join(tempfile.mkdtemp(), "SYN-case")
        write_case_folder(generate_case(0, seed=5), folder)
        logic = CervicalAILogic()
        state, nextStep = logic.workflowState()
        self.assertFalse(state["load"].done)
        self.assertEqual(nextStep.key, "load")
        run, caseFolder = logic.startLoadStudy(folder)
        self.assertIsNone(run)  # a case folder is loaded directly
        state, nextStep = logic.workflowState()
        self.assertTrue(state["load"].done)
        self.assertEqual(nextStep.key, "segment")
        t2 = slicer.util.getNode("SYN-case T2W")
        self.assertEqual(t2.GetAttribute("CervicalAI.Role"), "T2W")
