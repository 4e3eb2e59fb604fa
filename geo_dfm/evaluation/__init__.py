"""Evaluation on the RS5M paper's benchmarks: zero-shot classification, retrieval, semantic localization."""

from geo_dfm.evaluation.metrics import (
    RecallAtK,
    RegionCircle,
    SeloScores,
    UndefinedMetricWarning,
    confusion_matrix,
    per_class_accuracy,
    recall_at_k,
    selo_metrics,
    zeroshot_accuracy,
)

__all__ = [
    "RecallAtK",
    "RegionCircle",
    "SeloScores",
    "UndefinedMetricWarning",
    "confusion_matrix",
    "per_class_accuracy",
    "recall_at_k",
    "selo_metrics",
    "zeroshot_accuracy",
]
