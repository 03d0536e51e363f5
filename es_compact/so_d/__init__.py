"""Givens coordinate descent on SO(d): Algorithm 1 of the KAMA-NN paper for blackbox functions.

Choromanski et al., "KAMA-NNs: low-dimensional rotation based neural networks" (AISTATS 2019),
Section 5. A cost F (lower is better, as in the paper) on d x d rotations is minimised by steps
along geodesics

    M  ->  M G(I, J, Θ),        G(I, J, Θ) = expm(-Θ A_IJ),  A_IJ = e_I e_Jᵀ - e_J e_Iᵀ,

with G from :mod:`es_compact.givens` and I < J (the paper writes G(J, I, Θ), which is
G(I, J, -Θ): the same steps with the sign of Θ flipped). Only columns I and J of M change:

    col I <- cos Θ m_I + sin Θ m_J,      col J <- -sin Θ m_I + cos Θ m_J.

After T steps M = M0 G_1 G_2 ··· G_T, so the answer is directly a product of Givens rotations,
i.e. a KAMA layer (:func:`steps_to_planes`).

Parts: :mod:`~es_compact.so_d.scorers` (F along many geodesics from a cached M),
:mod:`~es_compact.so_d.linesearch` (the exact trigonometric line search, with a grid + Brent
fallback) and :mod:`~es_compact.so_d.descent` (the greedy, random and cyclic drivers, and the
check of Theorem 3).
"""

from es_compact.givens import rotate_columns, steps_to_planes
from es_compact.so_d.descent import (
    VARIANTS,
    GivensResult,
    all_pairs,
    check_dim,
    check_rotation,
    minimize,
    riemannian_slopes,
    theorem3_margins,
)
from es_compact.so_d.linesearch import (
    LineSearch,
    line_search,
    trig_argmin,
    trig_argmin_reference,
    trig_eval,
    trig_fit,
    trig_nodes,
)
from es_compact.so_d.scorers import (
    DenseScorer,
    ObjectiveError,
    QuadraticObjective,
    QuadraticScorer,
    Scorer,
    as_scorer,
)

__all__ = ["VARIANTS", "DenseScorer", "GivensResult", "LineSearch", "ObjectiveError",
           "QuadraticObjective", "QuadraticScorer", "Scorer", "all_pairs", "as_scorer",
           "check_dim", "check_rotation", "line_search", "minimize", "riemannian_slopes",
           "rotate_columns", "steps_to_planes", "theorem3_margins", "trig_argmin",
           "trig_argmin_reference", "trig_eval", "trig_fit", "trig_nodes"]
