"""benchmarks/bench_stack.py builds the stack's models at their published sizes with random weights:
its builders must make models of those sizes, or its timings are of other models. Counted without
allocating the full weights (stack_models.count_params)."""

from __future__ import annotations

import pytest
import stack_models  # benchmarks/gpu/, on the path through conftest

pytestmark = [pytest.mark.stack]

# The published sizes, written out here so that a builder or a PUBLISHED entry changed by mistake
# fails: the model cards (fastconformer 114M, parakeet 0.6B), the Hub's parameter counts (NLLB), the
# float32 checkpoints' bytes / 4 (parakeet-ctc-1.1b.nemo 4.25 GB, XTTS v2 model.pth 1.87 GB).
PUBLISHED = {
    "parakeet-ctc-1.1b": 4.25e9 / 4,
    "parakeet-ctc-0.6b": 600e6,
    "fastconformer-es": 114e6,
    "nllb-1.3b": 1.37e9,
    "nllb-600m": 615e6,
    "xtts-v2": 1.87e9 / 4,
}


def test_the_benchmark_measures_every_published_model():
    assert stack_models.PUBLISHED == PUBLISHED


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_builders_make_the_published_sizes(name):
    count = stack_models.count_params(name)
    assert abs(count / PUBLISHED[name] - 1) <= 0.02, f"{name}: {count / 1e6:.1f}M built, {PUBLISHED[name] / 1e6:.1f}M published"
