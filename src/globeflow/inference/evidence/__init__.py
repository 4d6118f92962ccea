"""Evidence beyond one photo: several photos of one place fused (:mod:`.fusion`), and what the user
knows of the place as constraints (:mod:`.constraints`); their answers are read off the map
(:mod:`.answers`)."""

from .answers import answer_from_map, constrain_answer, constrain_answers, sample_map
from .constraints import AllowedArea, Constraints, NoAllowedMass, allowed_area, constrain_map
from .fusion import CONTRADICTION_LEVEL, CONTRADICTION_MASS, fuse, fused_map, photo_weight, pool_weights

__all__ = ["Constraints", "NoAllowedMass", "AllowedArea", "allowed_area", "constrain_map", "sample_map", "answer_from_map",
           "constrain_answer", "constrain_answers", "fuse", "fused_map", "pool_weights", "photo_weight", "CONTRADICTION_LEVEL",
           "CONTRADICTION_MASS"]
