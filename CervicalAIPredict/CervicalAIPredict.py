"""CervicalAIPredict module (thin Qt layer; behaviour in CervicalAIPredictLib and the CervicalAILib engine)."""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class CervicalAIPredict(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CervicalAIPredict"
        self.parent.categories = ["CervicalAI"]
        self.parent.dependencies = []
        self.parent.contributors = ["CervicalAI contributors"]
        self.parent.helpText = "Research use only: the shipped models were trained on synthetic data."
        self.parent.acknowledgementText = "Built on 3D Slicer."


class CervicalAIPredictWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CervicalAIPredict.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CervicalAIPredictLogic()


class CervicalAIPredictLogic(ScriptedLoadableModuleLogic):
    pass


class CervicalAIPredictTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_logic_creates_parameter_node()

    def test_logic_creates_parameter_node(self):
        node = CervicalAIPredictLogic().getParameterNode()
        self.assertIsNotNone(node)
        self.assertEqual(node.GetClassName(), "vtkMRMLScriptedModuleNode")
