"""The three tasks' data: real loaders (Tiny ImageNet, Pascal VOC 2012, UCR) and offline stand-ins.

Start from :func:`load_task`; the modules below it can be used on their own.
"""
from . import download  # the module; its function is download.download
from .augment import OutlineAugment, with_augmentation
from .download import DataUnavailableError, data_root, extract, fetch, md5sum
from .splits import stratified_kfold, stratified_split
from .synthetic import SyntheticScenes, SyntheticShapes
from .tasks import DATA, PROFILES, TASKS, TaskData, load_task, load_timeseries_fold
from .tiny_imagenet import TinyImageNet
from .ucr import UCRData, UCRDataset, load_ucr
from .voc import VOCSegmentation

__all__ = [
    "DATA", "PROFILES", "TASKS", "DataUnavailableError", "OutlineAugment", "SyntheticScenes", "SyntheticShapes",
    "TaskData", "TinyImageNet", "UCRData", "UCRDataset", "VOCSegmentation", "data_root", "download",
    "extract", "fetch", "load_task", "load_timeseries_fold", "load_ucr", "md5sum", "stratified_kfold",
    "stratified_split", "with_augmentation",
]
