"""Models built from dynlab's conv units: ResNet-18 (2D and 1D), segmentation, time series."""
from .odconv_reference import odconv_resnet18_from_reference
from .resnet import BasicBlock, ResNet, resnet18
from .segmentation import SegmentationModel, segmentation_model
from .timeseries import PaperCNN, TSResNet, init_dynamic_from_static, net1_dcnn, net2_dcnn, tsresnet

__all__ = [
    "BasicBlock", "ResNet", "PaperCNN", "SegmentationModel", "TSResNet", "init_dynamic_from_static",
    "net1_dcnn", "net2_dcnn", "odconv_resnet18_from_reference", "resnet18", "segmentation_model", "tsresnet",
]
