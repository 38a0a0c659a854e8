"""``fastnet.models``: Keras's ``keras.models`` spelling (``Sequential``,
``load_model``)."""
from .model import Sequential

__all__ = ["Sequential", "load_model"]


def load_model(filepath, *args, **kwargs):
    """``fastnet.load_model`` (whole-model files: ``fastnet/saving.py``)."""
    from .saving import load_model as _load_model
    return _load_model(filepath, *args, **kwargs)
