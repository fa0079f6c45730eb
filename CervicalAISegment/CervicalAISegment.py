"""CervicalAISegment module (thin Qt layer; behaviour in CervicalAISegmentLib and the CervicalAILib engine)."""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class CervicalAISegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CervicalAISegment"
        self.parent.categories = ["CervicalAI"]
        self.parent.dependencies = []
        self.parent.contributors = ["CervicalAI contributors"]
        self.parent.helpText = "Research use only: the shipped models were trained on synthetic data."
        self.parent.acknowledgementText = "Built on 3D Slicer."


class CervicalAISegmentWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CervicalAISegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CervicalAISegmentLogic()


class CervicalAISegmentLogic(ScriptedLoadableModuleLogic):
    pass


class CervicalAISegmentTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_logic_creates_parameter_node()

    def test_logic_creates_parameter_node(self):
        node = CervicalAISegmentLogic().getParameterNode()
        self.assertIsNotNone(node)
        self.assertEqual(node.GetClassName(), "vtkMRMLScriptedModuleNode")
