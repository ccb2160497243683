"""Themes: what people talk about, found by clustering mention embeddings.

:mod:`.book` keeps the themes' centroids and assigns new mentions to them incrementally
(spawning new themes from the mentions no theme claims); :mod:`.labels` names a theme by its
class-based TF-IDF terms; :mod:`.trends` compares a period with the one before and flags the
emerging themes.
"""
