"""ONNX export and import (being written, issue 13)."""


def export_layer(layer, path, **options):
    raise NotImplementedError


def export_model(model, path, **options):
    raise NotImplementedError


def layer_from_onnx(cls, path_or_model, **options):
    raise NotImplementedError
