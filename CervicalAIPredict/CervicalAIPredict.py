"""CervicalAIPredict: clinical form, LNM risk with nomogram, staging readout, report.

A thin Qt layer. The behaviour that needs no Qt lives in CervicalAIPredictLib (MRML logic,
tested with the slicer-core wheel) and in the CervicalAILib engine, whose `predict` command
runs in a background process (`PythonSlicer -m CervicalAILib.cli predict ...`).
"""

from __future__ import annotations

import logging
import os
import sys

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

POLL_MILLISECONDS = 250
NOMOGRAM_WIDTH = 340


def unsupportedSlicerReason() -> str:
    """One sentence when this Slicer cannot run CervicalAI (5.8 and older), else "" (CervicalAIHubLib.support)."""
    from CervicalAIHubLib.support import unsupported_reason

    return unsupported_reason((slicer.app.majorVersion, slicer.app.minorVersion), sys.version_info)


#
# CervicalAIPredict
#


class CervicalAIPredict(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CervicalAI Predict"
        self.parent.categories = ["CervicalAI"]
        self.parent.dependencies = ["CervicalAI", "CervicalAISegment", "Segmentations", "SubjectHierarchy", "Markups", "Tables"]
        self.parent.contributors = ["CervicalAI contributors"]
        self.parent.helpText = (
            "Per-patient readout on the reviewed tumour segmentation: radiomics and deep-learning scores, "
            "the DLRC nomogram with the lymph-node metastasis (LNM) probability, and the staging readout "
            "(FIGO size class, lymph-node criteria). Research use only: the shipped models were trained on "
            "synthetic data and are not for clinical use."
        )
        self.parent.acknowledgementText = "Built on 3D Slicer, pyradiomics (SlicerRadiomics) and ONNX Runtime."


#
# Parameter node
#


@parameterNodeWrapper
class CervicalAIPredictParameterNode:
    """
    segmentation - the (reviewed) tumour segmentation.
    t2Volume - the T2WI, for segmentations not made with CervicalAI.
    readoutTable - the table of the last readout.
    clinicalValues - the clinical form as JSON (saved with the scene).
    readoutFolder - output folder of the last Compute.
    """

    segmentation: vtkMRMLSegmentationNode
    t2Volume: vtkMRMLScalarVolumeNode
    readoutTable: vtkMRMLTableNode
    clinicalValues: str = ""
    readoutFolder: str = ""


#
# CervicalAIPredictWidget
#


class CervicalAIPredictWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # CervicalAILib.core.background.BackgroundRun (predict or report)
        self._runKind = ""  # "predict" or "report"
        self._runFolder = ""
        self._pollTimer = None
        self.clinicalWidgets = {}  # field name -> QLineEdit / QComboBox, built from CervicalAILib.contracts.clinical.FIELDS
        self.measureLines = {}  # field name -> vtkMRMLMarkupsLineNode
        self._lineObservations = []  # (line, event, callback) added for the measure lines
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
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CervicalAIPredict.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CervicalAIPredictLogic()
        self.buildClinicalForm()

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_MILLISECONDS)
        self._pollTimer.connect("timeout()", self.onPollRun)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.computeButton.connect("clicked(bool)", self.onComputeButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.loadClinicalButton.connect("clicked(bool)", self.onLoadClinicalButton)
        self.ui.showTableButton.connect("clicked(bool)", self.onShowTableButton)
        self.ui.saveReportButton.connect("clicked(bool)", self.onSaveReportButton)

        self.initializeParameterNode()

    def buildClinicalForm(self) -> None:
        """One row per CervicalAILib.contracts.clinical field: text for numbers, drop-downs for choices and yes/no."""
        from CervicalAIPredictLib.form import form_rows

        layout = self.ui.clinicalFormWidget.layout()
        for row in form_rows():
            if row.kind in ("number", "text"):
                editor = qt.QLineEdit()
                editor.placeholderText = row.placeholder
                editor.connect("editingFinished()", self.onClinicalChanged)
            else:
                editor = qt.QComboBox()
                for choice in row.choices:
                    editor.addItem(choice if choice else "not given")
                editor.connect("currentIndexChanged(int)", self.onClinicalChanged)
            editor.toolTip = row.tooltip
            self.clinicalWidgets[row.name] = editor
            if row.measurable:
                container = qt.QWidget()
                box = qt.QHBoxLayout(container)
                box.setContentsMargins(0, 0, 0, 0)
                box.addWidget(editor)
                button = qt.QPushButton("Measure")
                button.toolTip = "Place a line across the node on the images; its length (mm) fills this field."
                button.connect("clicked(bool)", lambda checked, name=row.name: self.onMeasure(name))
                box.addWidget(button)
                layout.addRow(row.label + ":", container)
            else:
                layout.addRow(row.label + ":", editor)

    def cleanup(self) -> None:
        if self._unsupported:
            return
        if self._run is not None and not self._run.finished:
            self._run.cancel()
        if self._pollTimer is not None:
            self._pollTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        if self._unsupported:
            return
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._unsupported:
            return
        self.saveClinicalToParameterNode(showErrors=False)
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None and not self._run.finished:
            self._run.cancel()
        self.removeMeasureLineObservers()
        self.setParameterNode(None)

    def removeMeasureLineObservers(self) -> None:
        """Forget the measure lines (their observers hold the line nodes of a closed scene)."""
        for line, event, callback in self._lineObservations:
            self.removeObserver(line, event, callback)
        self._lineObservations = []
        self.measureLines = {}

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- parameter node ---------------------------------------------------------------------------
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.segmentation:
            self._parameterNode.segmentation = self.logic.latestReviewedSegmentation()
        self.setClinicalTexts(self.logic.textsFromJson(self._parameterNode.clinicalValues))

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
            self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        if not self._parameterNode:
            return
        running = self._run is not None and not self._run.finished
        segmentation = self._parameterNode.segmentation
        self.ui.computeButton.enabled = segmentation is not None and not running
        self.ui.cancelButton.enabled = running
        warning = self.logic.reviewWarning(segmentation) if segmentation is not None else ""
        self.ui.reviewWarningLabel.text = f"Warning: {warning}" if warning else ("Reviewed segmentation." if segmentation else "")
        hasReadout = bool(self._parameterNode.readoutFolder) and os.path.isdir(self._parameterNode.readoutFolder)
        self.ui.saveReportButton.enabled = hasReadout and not running
        self.ui.showTableButton.enabled = self._parameterNode.readoutTable is not None

    # -- clinical form ----------------------------------------------------------------------------
    def clinicalTexts(self) -> dict:
        texts = {}
        for name, widget in self.clinicalWidgets.items():
            if isinstance(widget, qt.QLineEdit):
                texts[name] = widget.text
            else:
                texts[name] = "" if widget.currentIndex == 0 else widget.currentText
        return texts

    def setClinicalTexts(self, texts: dict) -> None:
        for name, widget in self.clinicalWidgets.items():
            text = texts.get(name, "")
            wasBlocked = widget.blockSignals(True)
            if isinstance(widget, qt.QLineEdit):
                widget.text = text
            else:
                index = widget.findText(text) if text else 0
                widget.currentIndex = max(index, 0)
            widget.blockSignals(wasBlocked)

    def saveClinicalToParameterNode(self, showErrors: bool = True) -> bool:
        if not self._parameterNode:
            return False
        try:
            self._parameterNode.clinicalValues = self.logic.clinicalJson(self.clinicalTexts())
            self.logic.recordClinical(self._parameterNode)
            return True
        except Exception as exc:
            if showErrors:
                self.ui.statusLabel.text = f"Clinical values: {exc}"
            return False

    def onClinicalChanged(self, *args) -> None:
        if self.saveClinicalToParameterNode():
            self.ui.statusLabel.text = ""

    def onLoadClinicalButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to read the case's clinical values.", waitCursor=True):
            self.setClinicalTexts(self.logic.caseClinicalTexts(self._parameterNode.segmentation))
            self.saveClinicalToParameterNode()

    def onMeasure(self, name: str) -> None:
        """Start placing a line; when both ends are placed (or moved), its length fills the field."""
        line = self.measureLines.get(name)
        if line is None or slicer.mrmlScene.GetNodeByID(line.GetID()) is None:
            line = self.logic.newMeasurementLine(name)
            self.measureLines[name] = line
            callback = lambda caller, event, field=name: self.onLineChanged(field)  # noqa: E731
            for event in (line.PointPositionDefinedEvent, line.PointModifiedEvent):
                self.addObserver(line, event, callback)
                self._lineObservations.append((line, event, callback))
        else:
            line.RemoveAllControlPoints()
        self.logic.startPlacing(line)

    def onLineChanged(self, name: str) -> None:
        line = self.measureLines.get(name)
        if line is None or line.GetNumberOfDefinedControlPoints() < 2:
            return
        try:
            text = self.logic.measuredText(name, line)
        except Exception as exc:
            self.ui.statusLabel.text = str(exc)
            return
        self.clinicalWidgets[name].text = text
        self.saveClinicalToParameterNode()

    # -- compute ----------------------------------------------------------------------------------
    def onComputeButton(self) -> None:
        # the gate and the questions first (dialogs), the busy cursor only while the inputs are written
        with slicer.util.tryWithErrorDisplay("CervicalAI cannot compute the readout yet."):
            self.logic.ensureReady()
            values = self.logic.clinicalValues(self.clinicalTexts())  # refuses out-of-range values, naming them
            self._parameterNode.clinicalValues = self.logic.clinicalJson(self.clinicalTexts())
            self.logic.recordClinical(self._parameterNode)
            segmentation = self._parameterNode.segmentation
            warning = self.logic.reviewWarning(segmentation)
        if warning and not slicer.util.confirmOkCancelDisplay(
            f"{warning}.\n\nCompute the readout anyway? It will say that the mask was not reviewed.",
            windowTitle="Unreviewed segmentation",
        ):
            return
        with slicer.util.tryWithErrorDisplay("Failed to compute the readout.", waitCursor=True):
            self._run, self._runFolder = self.logic.startPredict(segmentation, values, self._parameterNode.t2Volume)
            self._runKind = "predict"
            self.ui.logTextEdit.clear()
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = "Starting..."
            self._pollTimer.start()
            self.updateGUIFromParameterNode()

    def onCancelButton(self) -> None:
        if self._run is not None and not self._run.finished:
            self._run.cancel()
            self.ui.statusLabel.text = "Cancelling..."
            self.ui.cancelButton.enabled = False

    def onPollRun(self) -> None:
        if self._run is None:
            self._pollTimer.stop()
            return
        state = self._run.poll()
        self.ui.progressBar.value = int(round(100 * state.fraction))
        if state.message:
            self.ui.statusLabel.text = state.message
        for line in state.new_lines:
            self.ui.logTextEdit.appendPlainText(line)
            logging.debug(line)
        if not state.finished:
            return
        self._pollTimer.stop()
        if state.status == "succeeded" and self._runKind == "predict":
            self.ui.statusLabel.text = f"Readout computed in {self._run.seconds:.0f} s."
            with slicer.util.tryWithErrorDisplay("Failed to show the readout.", waitCursor=True):
                self.showReadout(self._runFolder)
        elif state.status == "succeeded":
            self.ui.statusLabel.text = f"Report written in {self._runFolder}."
        elif state.status == "cancelled":
            self.ui.statusLabel.text = "Cancelled."
        else:
            self.ui.statusLabel.text = "Failed."
            slicer.util.errorDisplay(f"{self._runKind} failed: {self._run.error_message()}",
                                     detailedText="\n".join(self._run.lines[-200:]))  # fmt: skip
        self.updateGUIFromParameterNode()

    def showReadout(self, folder: str) -> None:
        readout, table, lines, nomogram = self.logic.loadReadout(folder, self._parameterNode.segmentation)
        self._parameterNode.readoutFolder = str(folder)
        self._parameterNode.readoutTable = table
        self.ui.resultLabel.text = "\n".join(lines)
        if nomogram:
            pixmap = qt.QPixmap(str(nomogram))
            self.ui.nomogramLabel.setPixmap(pixmap.scaledToWidth(NOMOGRAM_WIDTH, qt.Qt.SmoothTransformation))
        else:
            self.ui.nomogramLabel.clear()

    def onShowTableButton(self) -> None:
        table = self._parameterNode.readoutTable
        if table is not None:
            self.logic.showTable(table)

    def onSaveReportButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to save the report.", waitCursor=True):
            saved, run = self.logic.saveReport(self._parameterNode.readoutFolder)
            self.ui.statusLabel.text = f"Readout saved in {saved}."
            if run is not None:
                self._run, self._runKind, self._runFolder = run, "report", str(saved)
                self._pollTimer.start()
                self.updateGUIFromParameterNode()


#
# CervicalAIPredictLogic
#


class CervicalAIPredictLogic(ScriptedLoadableModuleLogic):
    """Slicer-side glue; the behaviour is in CervicalAIPredictLib (tested under slicer-core)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return CervicalAIPredictParameterNode(super().getParameterNode())

    def latestReviewedSegmentation(self):
        from CervicalAIHubLib.reviewed import latest_reviewed

        return latest_reviewed(slicer.mrmlScene)

    @staticmethod
    def reviewWarning(segmentationNode) -> str:
        from CervicalAIPredictLib.inputs import review_warning

        return review_warning(segmentationNode) or ""

    # clinical form
    @staticmethod
    def clinicalValues(texts: dict) -> dict:
        from CervicalAIPredictLib.form import values_from_form

        return values_from_form(texts)

    def clinicalJson(self, texts: dict) -> str:
        from CervicalAIPredictLib.form import values_json

        return values_json(self.clinicalValues(texts))

    @staticmethod
    def recordClinical(parameterNode) -> None:
        """Keep the form's values with the case (its T2WI): the hub's Export writes them as clinical.json."""
        from CervicalAIHubLib.scene import record_clinical_values

        record_clinical_values(parameterNode.segmentation, parameterNode.clinicalValues, parameterNode.t2Volume)

    @staticmethod
    def textsFromJson(text: str) -> dict:
        from CervicalAIHubLib.scene import clinical_values_from_json
        from CervicalAIPredictLib.form import texts_from_values

        try:
            return texts_from_values(clinical_values_from_json(text))
        except Exception as exc:  # stored values from an older version: start with an empty form
            logging.warning(f"CervicalAI: stored clinical values ignored ({exc})")
            return texts_from_values(None)

    @staticmethod
    def caseClinicalTexts(segmentationNode) -> dict:
        from CervicalAIHubLib import scene
        from CervicalAILib.io.case import is_case_folder, load_case
        from CervicalAIPredictLib.form import texts_from_values

        folder = segmentationNode.GetAttribute(scene.CASE_FOLDER) if segmentationNode is not None else ""
        if not folder or not is_case_folder(folder):
            raise ValueError("The selected segmentation has no case folder with a clinical.json.")
        clinical = load_case(folder).clinical
        if not clinical:
            raise ValueError(f"The case folder {folder} has no clinical.json.")
        return texts_from_values(clinical)

    # measurements
    @staticmethod
    def newMeasurementLine(name: str):
        from CervicalAILib.contracts.clinical import FIELDS

        line = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", slicer.mrmlScene.GenerateUniqueName(FIELDS[name].label))
        line.SetAttribute("CervicalAI.MeasuredField", name)
        return line

    @staticmethod
    def startPlacing(line) -> None:
        markups = slicer.modules.markups.logic()
        if hasattr(markups, "SetActiveList"):
            markups.SetActiveList(line)
        else:  # Slicer before 5.4
            markups.SetActiveListID(line)
        markups.StartPlaceMode(False)

    @staticmethod
    def measuredText(name: str, line) -> str:
        from CervicalAIPredictLib.form import measured_text

        return measured_text(name, line)

    # readout
    def ensureReady(self, device: str | None = None) -> None:
        """The hub's gate for Compute: Python packages and the risk-model bundles (NotReadyError if not)."""
        from CervicalAIHubLib import application
        from CervicalAIHubLib.bundles import PREDICT_PURPOSES

        application.ensure_ready(device, PREDICT_PURPOSES)

    def startPredict(self, segmentationNode, values: dict, t2Volume=None, wait: bool = False):
        """Pass the gate, write the inputs and start `cervicalai predict` in the background; returns
        (run, output folder)."""
        from CervicalAIHubLib import application
        from CervicalAIHubLib.runner import new_work_folder
        from CervicalAILib.core.background import BackgroundRun
        from CervicalAIPredictLib.inputs import prepare_inputs
        from CervicalAIPredictLib.readout import predict_step

        device = application.settings()["device"]
        self.ensureReady(device)  # the same gate as the button
        work = new_work_folder(application.work_base(), f"{segmentationNode.GetName()}-readout")
        inputs = prepare_inputs(segmentationNode, work, values, t2Volume)
        for warning in inputs.warnings:
            logging.warning(f"CervicalAI: {warning}")
        out = work / "readout"
        step = predict_step(application.python_executable(), inputs.case_folder, inputs.mask_path, inputs.clinical_path,
                            out, transforms=inputs.transforms_folder, device=device)  # fmt: skip
        run = BackgroundRun([step], env=application.engine_environment()).start()
        if wait:
            run.wait()
        return run, str(out)

    @staticmethod
    def loadReadout(folder: str, segmentation=None):
        """(readout, new table node, summary lines, nomogram path) of a predict output folder; the
        table goes into the subject-hierarchy folder of `segmentation` (the patient's study)."""
        from CervicalAIHubLib import scene
        from CervicalAIPredictLib.readout import fill_table, nomogram_path, read_readout, summary_lines

        readout = read_readout(folder)
        name = f"{readout.case_id or 'Case'} readout"
        table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(name))
        fill_table(table, readout)
        table.SetAttribute("CervicalAI.ReadoutFolder", str(folder))
        scene.place_beside(slicer.mrmlScene, table, segmentation)
        return readout, table, summary_lines(readout), nomogram_path(folder, readout)

    @staticmethod
    def showTable(table) -> None:
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def saveReport(self, readoutFolder: str):
        """Copy the readout beside the saved scene (or into Slicer's default scene folder) and start
        `cervicalai report` when the engine has it; returns (saved folder, run or None)."""
        from CervicalAIHubLib import application
        from CervicalAILib.core.background import BackgroundRun
        from CervicalAIPredictLib.readout import (
            read_readout,
            report_command_available,
            report_folder_for,
            report_step,
            save_report,
        )

        if not readoutFolder:
            raise ValueError("Compute a readout first.")
        readout = read_readout(readoutFolder)
        target = report_folder_for(slicer.mrmlScene.GetURL(), slicer.app.defaultScenePath, readout.case_id)
        saved = save_report(readoutFolder, target)
        run = None
        if report_command_available():
            run = BackgroundRun([report_step(application.python_executable(), saved)], env=application.engine_environment()).start()
        return saved, run


#
# CervicalAIPredictTest
#


class CervicalAIPredictTest(ScriptedLoadableModuleTest):
    """End to end on a synthetic patient: segment (background), review, clinical values,
    readout (background), table node, nomogram, report folder."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.assertEqual(unsupportedSlicerReason(), "")  # an unsupported Slicer fails here, with the reason
        self.setUp()
        self.test_measure_line()
        self.setUp()
        self.test_readout_end_to_end()

    def test_measure_line(self):
        logic = CervicalAIPredictLogic()
        line = logic.newMeasurementLine("ln_short_axis_mm")
        line.AddControlPoint(10.0, 20.0, 30.0)
        line.AddControlPoint(16.0, 28.0, 30.0)
        self.assertEqual(logic.measuredText("ln_short_axis_mm", line), "10")

    def test_readout_end_to_end(self):
        import tempfile

        from CervicalAILib.contracts.clinical import FIELDS
        from CervicalAILib.io.mrml import volume_node_from_image
        from CervicalAILib.research.synth import generate_case

        self.delayDisplay("Segmenting and reviewing a synthetic patient")
        case = generate_case(1, seed=11)  # a 7 mL IIA1 tumour
        roles = {role: volume_node_from_image(slicer.mrmlScene, case.images[role], f"{case.case_id} {role}") for role in case.images}
        segment = slicer.util.getModuleLogic("CervicalAISegment")  # the modules never import each other
        run, job = segment.startSegmentation(roles, "cpu", wait=True)
        self.assertEqual(run.status, "succeeded", run.error_message())
        result = segment.importResult(job, roles)
        review = segment.markReviewed(result.draft, "Self Test")

        self.delayDisplay("Computing the readout in the background")
        logic = CervicalAIPredictLogic()
        texts = {name: str(case.clinical[name]) for name in FIELDS if case.clinical.get(name) is not None}
        values = logic.clinicalValues(texts)  # yes/no fields accept the generator's 0/1
        run, folder = logic.startPredict(review.reviewed, values, wait=True)
        self.assertEqual(run.status, "succeeded", run.error_message())
        readout, table, lines, nomogram = logic.loadReadout(folder, review.reviewed)
        hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        self.assertEqual(hierarchy.GetItemParent(hierarchy.GetItemByDataNode(table)),
                         hierarchy.GetItemParent(hierarchy.GetItemByDataNode(review.reviewed)))
        probability = readout.probability
        self.assertGreaterEqual(probability, 0.0)
        self.assertLessEqual(probability, 1.0)
        self.assertTrue(readout.review.reviewed)
        self.assertGreater(table.GetNumberOfRows(), 10)
        self.assertEqual(table.GetCellText(0, 1), "LNM risk (DLRC)")
        self.assertIsNotNone(nomogram)
        self.assertTrue(any("Lymph-node metastasis probability" in line for line in lines))

        slicer.mrmlScene.SetURL(os.path.join(tempfile.mkdtemp(), "scene.mrml"))
        folder_saved, _ = logic.saveReport(folder)
        self.assertTrue(os.path.isfile(os.path.join(folder_saved, "readout.json")))
        self.delayDisplay("Test passed")
