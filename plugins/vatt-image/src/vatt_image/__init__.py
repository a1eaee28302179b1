"""vatt-image: image classification for vatt, the appendix's ImageNet fine-tuning recipe.

Registered through entry points only (nothing in vatt imports this package): the task ``image_finetune``
and the dataset ``shape_images``, a tiny generated image set to try the recipe on.
"""
from vatt_image.dataset import ShapeImages
from vatt_image.shapes import CLASS_NAMES, render
from vatt_image.task import ImageFineTune, ImageTrainingSettings, epoch_steps

__all__ = ["CLASS_NAMES", "ImageFineTune", "ImageTrainingSettings", "ShapeImages", "epoch_steps", "render"]
