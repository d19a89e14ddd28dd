"""A small digit classifier trained on the benchmark's own images: the feature space of the fast *domain FID*,
the reader of the classifier score (the Inception Score's analogue) and of edges2digits' label accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gansurvey.checks import check_number


class DigitClassifier(nn.Module):
    """32x32 grey digit -> 10 logits; ``features`` gives the 128-d penultimate activations."""

    feature_dim = 128

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, self.feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_digit_classifier(images: torch.Tensor, labels: torch.Tensor, steps: int = 400, batch_size: int = 64,
                           seed: int = 0) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with Adam and light shift augmentation; returns it in eval mode."""
    check_number("steps", steps, minimum=1, integer=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=gen)
        shift = [int(s) for s in torch.randint(-2, 3, (2,), generator=gen)]
        x = torch.roll(images[idx], shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def classify(model: DigitClassifier, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, softmax probabilities) of ``images``, computed in batches."""
    model.eval()
    feats, probs = [], []
    for chunk in images.split(batch_size):
        f = model.features(chunk)
        feats.append(f)
        probs.append(model.head(f).softmax(1))
    return torch.cat(feats), torch.cat(probs)
