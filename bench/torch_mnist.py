"""The PyTorch side of the MNIST comparisons: dtrain's two classify models and its input
normalisation, shared by bench/torch_classify.py and bench/torch_parity.py so that both
compare against exactly the same networks. Import after any environment set-up that must
precede torch (OPENBLAS_NUM_THREADS)."""
import torch
from torch import nn

MEAN, STD = 0.1307, 0.3081


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def mlp():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256), nn.ReLU(),
        nn.Linear(256, 10))


def load(h5, split):
    """Return normalised N x 1 x 28 x 28 float images and int64 labels."""
    images = torch.from_numpy(h5[split + '/images'][()])  # N x 28 x 28 x 1
    labels = torch.from_numpy(h5[split + '/labels'][()])
    x = images.permute(0, 3, 1, 2).float().div(255).sub(MEAN).div(STD)
    return x.contiguous(), labels.long()
