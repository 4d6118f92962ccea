"""The spaces a flow's states live in, as objects: the unit sphere S^2 and Euclidean R^3.

A solver or a probability path holds one and never asks which it is: ``projx`` puts a point on the
space, ``proju`` a vector in its tangent space, ``expmap`` follows a geodesic, ``retraction`` is the
first-order stand-in ``projx(x + u)``. On R^3 every one of them is the obvious one-liner.
"""

from __future__ import annotations

from torch import Tensor

from . import sphere

__all__ = ["Manifold", "Sphere", "Euclidean", "SPHERE", "EUCLIDEAN"]


class Manifold:
    """Interface. Points ``x (..., 3)``; tangent vectors ``u (..., 3)`` at ``x``."""

    #: A short name for messages ("sphere", "euclidean").
    name: str

    def projx(self, x: Tensor) -> Tensor:
        """The point of the space nearest to ``x``."""
        raise NotImplementedError

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        """``u`` projected onto the tangent space at ``x``."""
        raise NotImplementedError

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        """Follow the geodesic from ``x`` with initial velocity ``u`` for unit time."""
        raise NotImplementedError

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        """The tangent vector at ``x`` whose geodesic reaches ``y`` at unit time."""
        raise NotImplementedError

    def retraction(self, x: Tensor, u: Tensor) -> Tensor:
        """First-order approximation of :meth:`expmap`: ``projx(x + u)``."""
        return self.projx(x + u)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sphere(Manifold):
    """The unit sphere S^2 in R^3 (see :mod:`globeflow.geo.sphere`)."""

    name = "sphere"

    def projx(self, x: Tensor) -> Tensor:
        return sphere.projx(x)

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        return sphere.proju(x, u)

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        return sphere.expmap(x, u)

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        return sphere.logmap(x, y)


class Euclidean(Manifold):
    """R^3 with its flat geometry."""

    name = "euclidean"

    def projx(self, x: Tensor) -> Tensor:
        return x

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        return u

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        return x + u

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        return y - x


SPHERE = Sphere()
EUCLIDEAN = Euclidean()
