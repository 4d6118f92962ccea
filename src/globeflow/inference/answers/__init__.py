"""Answers: what people want from a density (best guesses, places, areas, credible regions,
localizability), computed by :mod:`.build` as typed :class:`Answer` records (:mod:`.record`)."""

from .build import answer_embeddings, answer_images, answer_settings, assemble_answer, localizability, sample_answers
from .config import AnswerConfig, override
from .record import Answer, AreaShare, Guess, Localizability, RegionArea, TopPlace, Truth

__all__ = ["AnswerConfig", "override", "Answer", "AreaShare", "Guess", "Localizability", "RegionArea", "TopPlace", "Truth",
           "answer_embeddings", "answer_images", "answer_settings", "assemble_answer", "localizability", "sample_answers"]
