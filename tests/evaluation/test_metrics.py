"""Zero-shot accuracy, confusion matrices and retrieval recall@K on hand-made arrays (ties included)."""

from __future__ import annotations

import numpy as np
import pytest

from geo_dfm.evaluation import confusion_matrix, per_class_accuracy, recall_at_k, zeroshot_accuracy
from tile_tools.errors import InputError

# 4 texts × 3 images; texts 0, 1 describe image 0, text 2 image 1, text 3 image 2
SIMILARITY = np.array(
    [
        [0.9, 0.1, 0.2],  # text 0: its image first
        [0.5, 0.5, 0.7],  # text 1: image 2 first, then a tie between image 0 and 1 (0 comes first)
        [0.3, 0.3, 0.3],  # text 2: a three-way tie, its image 1 is second in dataset order
        [0.8, 0.1, 0.2],  # text 3: its image 2 is second
    ]
)
IMAGE_OF_TEXT = np.array([0, 0, 1, 2])


def test_text_to_image_recall_breaks_ties_by_dataset_order():
    recall = recall_at_k(SIMILARITY, IMAGE_OF_TEXT, ks=(1, 2, 3))
    # ranks of the true image: text0 0, text1 1 (tie with image 1, image 0 earlier), text2 1, text3 1
    assert recall.text_to_image == {1: 25.0, 2: 100.0, 3: 100.0}


def test_image_to_text_recall_uses_the_best_placed_caption():
    recall = recall_at_k(SIMILARITY, IMAGE_OF_TEXT, ks=(1, 2, 3))
    # image columns: image 0 scores (0.9, 0.5, 0.3, 0.8): text 0 first → rank 0
    # image 1 (0.1, 0.5, 0.3, 0.1): its text 2 second → rank 1
    # image 2 (0.2, 0.7, 0.3, 0.2): its text 3 ties with text 0 (0.2), text 0 earlier → rank 3
    assert recall.image_to_text == {
        1: pytest.approx(100 / 3),
        2: pytest.approx(200 / 3),
        3: pytest.approx(200 / 3),
    }
    assert recall.mean_recall == pytest.approx(np.mean([25, 100, 100, 100 / 3, 200 / 3, 200 / 3]))
    assert set(recall.as_dict()) >= {"image_to_text_r1", "text_to_image_r3", "mean_recall"}


def test_recall_in_chunks_equals_one_pass():
    rng = np.random.default_rng(0)
    similarity = np.round(rng.random((50, 12)), 1)  # many ties
    image_of_text = np.concatenate([np.arange(12), rng.integers(0, 12, 38)])
    whole = recall_at_k(similarity, image_of_text, chunk=10_000)
    parts = recall_at_k(similarity, image_of_text, chunk=7)
    assert whole == parts


def test_an_image_without_caption_is_refused():
    with pytest.raises(InputError, match="image 2 has no text"):
        recall_at_k(SIMILARITY[:, :3], np.array([0, 0, 1, 1]))


def test_zeroshot_accuracy_top_k_with_ties():
    scores = np.array(
        [
            [0.1, 0.9, 0.0],  # true 1: rank 0
            [0.5, 0.5, 0.1],  # true 1: tie with class 0, which comes first → rank 1
            [0.2, 0.3, 0.1],  # true 2: rank 2
            [0.7, 0.2, 0.1],  # true 0: rank 0
        ]
    )
    labels = np.array([1, 1, 2, 0])
    assert zeroshot_accuracy(scores, labels, ks=(1, 2, 3)) == {1: 50.0, 2: 75.0, 3: 100.0}
    with pytest.raises(ValueError):
        zeroshot_accuracy(scores, np.array([0, 1, 3, 0]))


def test_confusion_matrix_and_per_class_accuracy():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    confusion = confusion_matrix(labels, predicted, 4)
    assert confusion.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    accuracy = per_class_accuracy(confusion)
    assert accuracy[:3].tolist() == [50.0, pytest.approx(200 / 3), 100.0] and np.isnan(accuracy[3])
