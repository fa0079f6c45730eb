"""CervicalAISegment: automatic tumour segmentation, review and correction.

A thin Qt layer. The behaviour that needs no Qt lives in CervicalAISegmentLib (MRML logic,
tested with the slicer-core wheel) and in the CervicalAILib engine, which runs in a background
process (`PythonSlicer -m CervicalAILib.cli ...`) so that the GUI never freezes.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

ROLE_FIELDS = {"T2W": "t2Volume", "DWI": "dwiVolume", "ADC": "adcVolume", "CET1": "cet1Volume"}
SEGMENT_EDITOR_SINGLETON = "CervicalAISegmentEditor"
POLL_MILLISECONDS = 250


def unsupportedSlicerReason() -> str:
    """One sentence when this Slicer cannot run CervicalAI (5.8 and older), else "" (CervicalAIHubLib.support)."""
    from CervicalAIHubLib.support import unsupported_reason

    return unsupported_reason((slicer.app.majorVersion, slicer.app.minorVersion), sys.version_info)


#
# CervicalAISegment
#


class CervicalAISegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CervicalAI Segment"
        self.parent.categories = ["CervicalAI"]
        self.parent.dependencies = ["CervicalAI", "Segmentations", "SubjectHierarchy", "Markups"]
        self.parent.contributors = ["CervicalAI contributors"]
        self.parent.helpText = (
            "Automatic segmentation of the primary cervical tumour on the T2WI (with DWI, ADC and "
            "CE-T1WI when available), review and correction in the Segment Editor, and 'Mark as "
            "reviewed', which freezes the reviewed version and records how much the reader changed. "
            "Research use only: the shipped models were trained on synthetic data and are not for clinical use."
        )
        self.parent.acknowledgementText = "Built on 3D Slicer, SimpleITK and ONNX Runtime."


#
# Parameter node
#


@parameterNodeWrapper
class CervicalAISegmentParameterNode:
    """
    t2Volume, dwiVolume, adcVolume, cet1Volume - the patient's sequences (T2WI required).
    device - where the network runs (cpu or gpu).
    reviewerName - recorded with "Mark as reviewed".
    segmentation - the segmentation shown in the embedded Segment Editor (the working copy).
    probabilityVolume - the probability map of the last run.
    """

    t2Volume: vtkMRMLScalarVolumeNode
    dwiVolume: vtkMRMLScalarVolumeNode
    adcVolume: vtkMRMLScalarVolumeNode
    cet1Volume: vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(["cpu", "gpu"])] = "cpu"
    reviewerName: str = ""
    segmentation: vtkMRMLSegmentationNode
    probabilityVolume: vtkMRMLScalarVolumeNode


#
# CervicalAISegmentWidget
#


class CervicalAISegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # CervicalAILib.core.background.BackgroundRun of the running segmentation
        self._job = None  # CervicalAISegmentLib.pipeline.SegmentationJob
        self._runRoles = {}
        self._pollTimer = None
        self._observedSegmentation = None
        self._flagged = []  # FlaggedSlice list shown in flaggedSlicesList
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
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CervicalAISegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CervicalAISegmentLogic()

        # Embedded Segment Editor with its own segment editor node (not the Segment Editor module's)
        import qSlicerSegmentationsModuleWidgetsPythonQt

        self.segmentEditorWidget = qSlicerSegmentationsModuleWidgetsPythonQt.qMRMLSegmentEditorWidget()
        self.segmentEditorWidget.setMaximumNumberOfUndoStates(10)
        self.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        self.segmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        self.segmentEditorWidget.setSegmentationNodeSelectorVisible(False)
        self.segmentEditorWidget.setSourceVolumeNodeSelectorVisible(False)
        self.ui.segmentEditorFrame.layout().addWidget(self.segmentEditorWidget)

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_MILLISECONDS)
        self._pollTimer.connect("timeout()", self.onPollRun)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.autoAssignButton.connect("clicked(bool)", self.onAutoAssignButton)
        self.ui.flaggedSlicesList.connect("itemClicked(QListWidgetItem*)", self.onFlaggedSliceClicked)
        self.ui.showProbabilityCheckBox.connect("toggled(bool)", self.onShowProbabilityToggled)
        self.ui.markReviewedButton.connect("clicked(bool)", self.onMarkReviewedButton)
        self.ui.newWorkingCopyButton.connect("clicked(bool)", self.onNewWorkingCopyButton)

        self.initializeParameterNode()

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
        self.segmentEditorWidget.installKeyboardShortcuts()
        self.updateSegmentEditor()

    def exit(self) -> None:
        if self._unsupported:
            return
        self.segmentEditorWidget.setActiveEffect(None)
        self.segmentEditorWidget.uninstallKeyboardShortcuts()
        self.segmentEditorWidget.removeViewObservations()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None and not self._run.finished:
            self._run.cancel()
        self.segmentEditorWidget.setSegmentationNode(None)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
            self.initializeParameterNode()

    # -- parameter node ---------------------------------------------------------------------------
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        node = self._parameterNode.parameterNode
        if not node.GetAttribute("CervicalAI.SettingsApplied"):  # a new parameter node starts from the settings
            settings = self.logic.settings()
            self._parameterNode.device = settings["device"]
            self._parameterNode.reviewerName = settings["reviewerName"]
            node.SetAttribute("CervicalAI.SettingsApplied", "true")
        if not self._parameterNode.t2Volume:
            self.assignVolumes(keepChoices=True)

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
        hasT2 = self._parameterNode.t2Volume is not None
        self.ui.applyButton.enabled = hasT2 and not running
        self.ui.applyButton.toolTip = (
            "Co-register the sequences onto the T2WI and segment the tumour in the background."
            if hasT2 else "Select the T2-weighted volume first."
        )
        self.ui.cancelButton.enabled = running
        segmentation = self._parameterNode.segmentation
        if segmentation is not self._observedSegmentation:
            self._observedSegmentation = segmentation
            self.updateSegmentEditor()
            self.updateFlaggedSlices()
        self.updateReviewState()

    # -- volumes ----------------------------------------------------------------------------------
    def assignVolumes(self, keepChoices: bool) -> None:
        keep = {}
        if keepChoices:
            keep = {role: getattr(self._parameterNode, name) for role, name in ROLE_FIELDS.items()}
        assignment = self.logic.assignVolumes(keep)
        for role, name in ROLE_FIELDS.items():
            setattr(self._parameterNode, name, assignment.roles.get(role))
        self.ui.rolesInfoLabel.text = self.logic.assignmentText(assignment)

    def onAutoAssignButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to assign the volumes.", waitCursor=True):
            self.assignVolumes(keepChoices=False)

    def roleNodes(self) -> dict:
        return {role: getattr(self._parameterNode, name) for role, name in ROLE_FIELDS.items()}

    # -- automatic segmentation -------------------------------------------------------------------
    def onApplyButton(self) -> None:
        # the gate may ask to install packages: its dialogs must not run under the busy cursor
        with slicer.util.tryWithErrorDisplay("CervicalAI cannot segment yet."):
            self.logic.ensureReady(self._parameterNode.device)
        with slicer.util.tryWithErrorDisplay("Failed to start the segmentation.", waitCursor=True):
            roles = self.roleNodes()
            self.ui.logTextEdit.clear()
            self.ui.resultLabel.text = ""
            self._run, self._job = self.logic.startSegmentation(roles, self._parameterNode.device)
            self._runRoles = roles
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
        if state.status == "succeeded":
            self.ui.statusLabel.text = f"Finished in {self._run.seconds:.0f} s."
            with slicer.util.tryWithErrorDisplay("Failed to load the segmentation result.", waitCursor=True):
                self.showResult(self.logic.importResult(self._job, self._runRoles))
        elif state.status == "cancelled":
            self.ui.statusLabel.text = "Cancelled: nothing was added to the scene."
        elif self.logic.noAnatomyMessage(self._job):  # the anatomy gate: a sentence, not a failure
            message = self.logic.noAnatomyMessage(self._job)
            self.ui.statusLabel.text = f"{message[:1].upper()}{message[1:]}: no tumour contour was made."
            slicer.util.warningDisplay(
                f"{self.ui.statusLabel.text} Check the series; draw the tumour by hand in the Segment Editor if there is one."
            )
        else:
            self.ui.statusLabel.text = "Segmentation failed."
            slicer.util.errorDisplay(
                f"Segmentation failed: {self._run.error_message()}", detailedText="\n".join(self._run.lines[-200:])
            )
        self.updateGUIFromParameterNode()

    def showResult(self, result) -> None:
        summary = result.summary
        self._parameterNode.probabilityVolume = result.probability
        self._parameterNode.segmentation = result.draft
        if summary.get("tumor_found"):
            text = (
                f"Tumour {summary['volume_ml']:.1f} mL, maximum 3D diameter {summary['max_diameter_mm']:.0f} mm, "
                f"confidence {summary['confidence']:.2f}."
            )
        else:
            text = "No tumour found: draw it by hand in the Segment Editor if there is one."
        model = summary.get("model") or {}
        device = summary.get("device") or {}
        text += f"\nModel {model.get('label', '?')} on {device.get('provider', '?')}."
        for warning in result.warnings:
            text += f"\nWarning: {warning}"
        self.ui.resultLabel.text = text
        t2 = self._runRoles.get("T2W")
        slicer.util.setSliceViewerLayers(background=t2, foreground=None, fit=True)
        self.ui.showProbabilityCheckBox.checked = False
        self.updateFlaggedSlices()

    # -- flagged slices ---------------------------------------------------------------------------
    def updateFlaggedSlices(self) -> None:
        self.ui.flaggedSlicesList.clear()
        self._flagged = []
        segmentation = self._parameterNode.segmentation if self._parameterNode else None
        if segmentation is None:
            return
        try:
            self._flagged = self.logic.flaggedSlices(segmentation)
        except Exception as exc:  # an unreadable attribute must not break the module
            logging.warning(f"flagged slices of {segmentation.GetName()}: {exc}")
            return
        for flagged in self._flagged:
            self.ui.flaggedSlicesList.addItem(flagged.label)

    def onFlaggedSliceClicked(self, item) -> None:
        row = self.ui.flaggedSlicesList.row(item)
        if 0 <= row < len(self._flagged):
            self.logic.jumpTo(self._flagged[row].ras)

    def onShowProbabilityToggled(self, checked: bool) -> None:
        probability = self._parameterNode.probabilityVolume if self._parameterNode else None
        if probability is None:
            return
        if checked:
            slicer.util.setSliceViewerLayers(foreground=probability, foregroundOpacity=0.4)
        else:
            slicer.util.setSliceViewerLayers(foreground=None)

    # -- review -----------------------------------------------------------------------------------
    def updateSegmentEditor(self) -> None:
        segmentation = self._parameterNode.segmentation if self._parameterNode else None
        self.segmentEditorWidget.setSegmentationNode(segmentation)
        if segmentation is not None:  # a source volume without a segmentation is refused (and logged as an error)
            source = self.logic.referencedT2(segmentation) or (self._parameterNode.t2Volume if self._parameterNode else None)
            self.segmentEditorWidget.setSourceVolumeNode(source)
        self.segmentEditorWidget.readOnly = not self.logic.isEditable(segmentation)

    def updateReviewState(self) -> None:
        segmentation = self._parameterNode.segmentation if self._parameterNode else None
        self.ui.reviewStateLabel.text = self.logic.reviewStateText(segmentation)
        self.ui.markReviewedButton.enabled = self.logic.canMarkReviewed(segmentation)
        self.ui.newWorkingCopyButton.enabled = self.logic.isCervicalAISegmentation(segmentation)
        self.segmentEditorWidget.readOnly = not self.logic.isEditable(segmentation)

    def onMarkReviewedButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to mark the segmentation as reviewed.", waitCursor=True):
            self.segmentEditorWidget.setActiveEffect(None)  # finish any open edit first
            result = self.logic.markReviewed(self._parameterNode.segmentation, self._parameterNode.reviewerName)
            self.ui.reviewSummaryLabel.text = f"{result.summary()}\nSaved as {result.reviewed.GetName()} ({result.mask_path})."
            self.updateReviewState()

    def onNewWorkingCopyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to make a working copy.", waitCursor=True):
            draft = self.logic.newWorkingCopy(self._parameterNode.segmentation)
            self._parameterNode.segmentation = draft


#
# CervicalAISegmentLogic
#


class CervicalAISegmentLogic(ScriptedLoadableModuleLogic):
    """Slicer-side glue: finds PythonSlicer, the DICOM files of volumes and the settings, and
    delegates everything else to CervicalAISegmentLib (tested under slicer-core)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return CervicalAISegmentParameterNode(super().getParameterNode())

    def settings(self) -> dict:
        from CervicalAIHubLib import application

        return application.settings()

    def selectCase(self, roleNodes: dict, segmentation, reviewer: str) -> None:
        """Show a case's volumes and working segmentation (the hub's review worklist loads them)."""
        parameters = self.getParameterNode()
        for role, name in ROLE_FIELDS.items():
            setattr(parameters, name, roleNodes.get(role))
        parameters.reviewerName = reviewer
        parameters.segmentation = segmentation

    def selectedSegmentation(self):
        """The segmentation the module shows (the reader's working copy while reviewing)."""
        return self.getParameterNode().segmentation

    def segmentEditorNode(self):
        node = slicer.mrmlScene.GetSingletonNode(SEGMENT_EDITOR_SINGLETON, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            node.UnRegister(None)
            node.SetSingletonTag(SEGMENT_EDITOR_SINGLETON)
            node = slicer.mrmlScene.AddNode(node)
        return node

    # volumes
    def dicomFiles(self, volumeNode):
        """The DICOM files a volume was loaded from (Slicer's DICOM database), or None."""
        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        database = getattr(slicer, "dicomDatabase", None)
        if not uids or database is None or not database.isOpen:
            return None
        files = [database.fileForInstance(uid) for uid in uids]
        return [path for path in files if path] or None

    def assignVolumes(self, keep=None):
        from CervicalAIHubLib.volumes import assign_volume_roles, candidate_volumes

        return assign_volume_roles(candidate_volumes(slicer.mrmlScene), self.dicomFiles, keep)

    @staticmethod
    def assignmentText(assignment) -> str:
        """Why each chosen volume was taken, and the engine's notes (for the roles label)."""
        from CervicalAIHubLib.volumes import describe_node

        lines = [f"{role}: {describe_node(node, assignment)}" for role, node in assignment.roles.items() if node is not None]
        return "\n".join(lines + assignment.notes)

    # background run
    @staticmethod
    def ensureReady(device: str = "cpu") -> None:
        """The hub's gate for Apply: Python packages and the segmentation bundles (NotReadyError if not)."""
        from CervicalAIHubLib import application
        from CervicalAIHubLib.bundles import SEGMENT_PURPOSES

        application.ensure_ready(device, SEGMENT_PURPOSES)

    def startSegmentation(self, roleNodes: dict, device: str = "cpu", wait: bool = False):
        """Pass the gate, export the volumes and start register + segment in the background; returns (run, job)."""
        from CervicalAIHubLib import application
        from CervicalAIHubLib.runner import new_work_folder
        from CervicalAIHubLib.volumes import export_case_folder
        from CervicalAILib.core.background import BackgroundRun
        from CervicalAISegmentLib.pipeline import segmentation_job

        self.ensureReady(device)  # the same gate as the button: a self-test cannot pass where Apply is blocked
        t2 = roleNodes.get("T2W")
        if t2 is None:
            raise ValueError("Select the T2-weighted volume.")
        work = new_work_folder(application.work_base(), t2.GetName())
        export_case_folder(roleNodes, work / "input", compress=False)  # fast: Slicer waits for this part
        job = segmentation_job(application.python_executable(), work, device,
                               nnunet_model=self.settings().get("nnunetModelFolder") or None)  # fmt: skip
        run = BackgroundRun(job.steps, env=application.engine_environment()).start()
        logging.info(f"CervicalAI segmentation started in {work}")
        if wait:
            run.wait()
        return run, job

    def noAnatomyMessage(self, job) -> str | None:
        """The anatomy gate's sentence when the run found no cervix or uterus (segment exit status 3)."""
        from CervicalAIHubLib.segmentation import no_anatomy_message

        return no_anatomy_message(job.result) if job is not None else None

    def importResult(self, job, roleNodes: dict):
        from CervicalAIHubLib.segmentation import import_segmentation_result
        from CervicalAIHubLib.volumes import readout_folders

        transforms = job.case if job.case != job.input_case else None  # registered only when there was more than the T2WI
        # volumes loaded from a `study register` output: the readout uses its native study (features need native grids)
        caseFolder, transforms = readout_folders(roleNodes, job.input_case, transforms)
        return import_segmentation_result(
            slicer.mrmlScene, job.result, roleNodes["T2W"], roleNodes, case_folder=caseFolder, transforms_folder=transforms
        )

    def flaggedSlices(self, segmentationNode):
        from CervicalAIHubLib.segmentation import flagged_from_node

        return flagged_from_node(segmentationNode)

    @staticmethod
    def jumpTo(ras) -> None:
        slicer.modules.markups.logic().JumpSlicesToLocation(float(ras[0]), float(ras[1]), float(ras[2]), True)

    # review
    @staticmethod
    def isCervicalAISegmentation(node) -> bool:
        from CervicalAIHubLib import scene

        return node is not None and scene.status_of(node) in (scene.STATUS_AUTOMATIC, scene.STATUS_DRAFT, scene.STATUS_REVIEWED)

    @staticmethod
    def isEditable(node) -> bool:
        """Working copies and segmentations not made by CervicalAI are edited; automatic and reviewed copies are not."""
        from CervicalAIHubLib import scene

        return node is not None and scene.status_of(node) not in (scene.STATUS_AUTOMATIC, scene.STATUS_REVIEWED)

    @staticmethod
    def canMarkReviewed(node) -> bool:
        from CervicalAIHubLib import scene

        return node is not None and scene.status_of(node) in (scene.STATUS_AUTOMATIC, scene.STATUS_DRAFT)

    @staticmethod
    def referencedT2(node):
        from CervicalAIHubLib import scene

        return node.GetNodeReference(scene.REFERENCE_ROLE["T2W"]) if node is not None else None

    def reviewStateText(self, node) -> str:
        from CervicalAIHubLib import scene
        from CervicalAIHubLib.reviewed import review_state

        if node is None:
            return "Run the segmentation, or select a segmentation to review."
        state = review_state(node)
        if state == scene.STATUS_DRAFT:
            return "Working copy: correct it with the Segment Editor below, then mark it as reviewed."
        if state == scene.STATUS_AUTOMATIC:
            return "Automatic contour (read-only). Press 'New working copy' to correct it."
        if state == scene.STATUS_REVIEWED:
            return (f"Reviewed by {node.GetAttribute(scene.REVIEWER)} at {node.GetAttribute(scene.REVIEWED_AT)} (read-only). "
                    "Press 'New working copy' to correct it again.")  # fmt: skip
        if state == scene.EDITED_AFTER_REVIEW:
            return "This reviewed copy was changed after the review: its review no longer applies."
        return "Not made by CervicalAI: it can be edited and marked as reviewed only from a CervicalAI working copy."

    def markReviewed(self, segmentationNode, reviewer: str):
        from CervicalAIHubLib import application, scene
        from CervicalAIHubLib.runner import new_work_folder
        from CervicalAISegmentLib.review import mark_reviewed

        if segmentationNode is None:
            raise ValueError("Select the segmentation to mark as reviewed.")
        base = segmentationNode.GetAttribute(scene.RESULT_FOLDER)
        base = os.path.dirname(base) if base and os.path.isdir(os.path.dirname(base)) else application.work_base()
        folder = new_work_folder(base, "review")
        return mark_reviewed(slicer.mrmlScene, segmentationNode, reviewer, folder)

    def newWorkingCopy(self, segmentationNode):
        from CervicalAISegmentLib.review import new_working_copy

        if segmentationNode is None:
            raise ValueError("Select the segmentation to copy.")
        return new_working_copy(slicer.mrmlScene, segmentationNode)


#
# CervicalAISegmentTest
#


class CervicalAISegmentTest(ScriptedLoadableModuleTest):
    """End-to-end test on a synthetic patient (CervicalAILib.research.synth): volume roles, background
    segmentation with the shipped model, result nodes, review with edit metrics, and the rule
    that a new run never changes a reviewed segmentation."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.assertEqual(unsupportedSlicerReason(), "")  # an unsupported Slicer fails here, with the reason
        self.setUp()
        self.test_volume_roles_from_names()
        self.setUp()
        self.test_segment_review_and_rerun()

    def loadSyntheticCase(self):
        from CervicalAILib.io.mrml import volume_node_from_image
        from CervicalAILib.research.synth import generate_case

        case = generate_case(2, seed=11)  # a 16 mL IB2 tumour
        names = {"T2W": "4: T2 TSE TRA", "DWI": "7: ep2d_diff_tra b800", "ADC": "8: ep2d_diff_tra_ADC", "CET1": "12: T1 VIBE FS TRA POST GD"}
        nodes = {role: volume_node_from_image(slicer.mrmlScene, case.images[role], names[role]) for role in names}
        return case, nodes

    def test_volume_roles_from_names(self):
        self.delayDisplay("Assigning sequence roles from node names")
        _, nodes = self.loadSyntheticCase()
        assignment = CervicalAISegmentLogic().assignVolumes()
        for role, node in nodes.items():
            self.assertIs(assignment.roles[role], node, f"{role} assigned to {assignment.roles[role]}")

    def test_segment_review_and_rerun(self):
        import numpy as np
        import SimpleITK as sitk

        from CervicalAIHubLib import scene
        from CervicalAIHubLib.reviewed import review_state
        from CervicalAIHubLib.segmentation import TUMOUR_TERMINOLOGY, segment_terminology, tumour_mask
        from CervicalAILib.io import measurements as measure

        self.delayDisplay("Segmenting a synthetic patient in the background")
        case, roleNodes = self.loadSyntheticCase()
        logic = CervicalAISegmentLogic()
        run, job = logic.startSegmentation(roleNodes, "cpu", wait=True)
        self.assertEqual(run.status, "succeeded", run.error_message())
        self.assertEqual(run.fraction, 1.0)
        result = logic.importResult(job, roleNodes)

        segmentation = result.draft.GetSegmentation()
        self.assertEqual(segmentation.GetNumberOfSegments(), 1)
        self.assertEqual(segment_terminology(segmentation.GetNthSegment(0)), TUMOUR_TERMINOLOGY)
        mask = tumour_mask(result.draft)
        truth = case.labels["tumor"]
        volume = measure.volume_ml(mask)
        self.assertGreater(volume, 0.2 * measure.volume_ml(truth))
        self.assertLess(volume, 5.0 * measure.volume_ml(truth))
        self.assertGreater(measure.dice(mask, sitk.Cast(truth > 0, sitk.sitkUInt8)), 0.3)
        probability = slicer.util.arrayFromVolume(result.probability)
        self.assertGreaterEqual(float(probability.min()), 0.0)
        self.assertLessEqual(float(probability.max()), 1.0)
        for flagged in result.flagged:
            bounds = [0.0] * 6
            roleNodes["T2W"].GetRASBounds(bounds)
            for axis in range(3):
                self.assertTrue(bounds[2 * axis] - 1e-3 <= flagged.ras[axis] <= bounds[2 * axis + 1] + 1e-3)

        self.delayDisplay("Editing the working copy and marking it as reviewed")
        array = slicer.util.arrayFromSegmentBinaryLabelmap(result.draft, segmentation.GetNthSegmentID(0), roleNodes["T2W"])
        k = int(np.argmax(array.sum(axis=(1, 2))))
        array[k] = 0  # the reader removes the contour on its largest slice
        slicer.util.updateSegmentBinaryLabelmapFromArray(array, result.draft, segmentation.GetNthSegmentID(0), roleNodes["T2W"])
        review = logic.markReviewed(result.draft, "Self Test")
        self.assertEqual(review_state(review.reviewed), scene.STATUS_REVIEWED)
        dice = float(review.reviewed.GetAttribute("CervicalAI.Dice"))
        self.assertGreater(dice, 0.0)
        self.assertLess(dice, 1.0)
        self.assertLess(float(review.reviewed.GetAttribute("CervicalAI.VolumeChangeMl")), 0.0)
        self.assertEqual(review.record.origin, "edited")

        self.delayDisplay("A new automatic run leaves the reviewed segmentation as it was")
        before = review.reviewed.GetAttribute(scene.MASK_SHA256)
        again = logic.importResult(job, roleNodes)
        self.assertIsNot(again.draft, review.reviewed)
        self.assertIsNot(again.automatic, review.reviewed)
        self.assertEqual(review.reviewed.GetAttribute(scene.MASK_SHA256), before)
        self.assertEqual(review_state(review.reviewed), scene.STATUS_REVIEWED)
        self.delayDisplay("Test passed")
