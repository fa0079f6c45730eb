"""CervicalAI hub module: the workflow in order and the engine's settings.

The module stays thin: all behaviour lives in the engine (CervicalAILib) and runs in a
background process; this file only connects widgets to it.
"""

import logging

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class CervicalAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CervicalAI"
        self.parent.categories = ["CervicalAI"]
        self.parent.dependencies = []
        self.parent.contributors = ["CervicalAI contributors"]
        self.parent.helpText = (
            "Cervical cancer pelvic MRI workflow: load study, segment the primary tumour, review, "
            "predict lymph-node metastasis risk, export. Research use only: the shipped models were "
            "trained on synthetic data and are not for clinical use."
        )
        self.parent.acknowledgementText = "Built on 3D Slicer, pyradiomics, SimpleITK and onnxruntime."


class CervicalAIWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CervicalAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CervicalAILogic()
        self.ui.statusLabel.text = self.logic.statusText()


class CervicalAILogic(ScriptedLoadableModuleLogic):
    def engineVersion(self):
        import CervicalAILib

        return CervicalAILib.__version__

    def statusText(self):
        import CervicalAILib

        return f"CervicalAI engine {CervicalAILib.__version__}. {CervicalAILib.RESEARCH_USE_STATEMENT}"


class CervicalAITest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_engine_importable()

    def test_engine_importable(self):
        logic = CervicalAILogic()
        version = logic.engineVersion()
        self.assertRegex(version, r"^\d+\.\d+\.\d+")
        self.assertIn("synthetic", logic.statusText())
        logging.info("CervicalAI engine %s imported", version)
