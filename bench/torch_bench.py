"""What the PyTorch benchmarks (torch_classify.py, torch_gpt.py, torch_unet.py) share: their
thread options, OPENBLAS_NUM_THREADS set before torch is loaded, the seeding, and the thread
counts each result reports. It imports nothing of torch itself, so a script can use it before
importing torch: OpenBLAS reads OPENBLAS_NUM_THREADS once, when the library is loaded."""
import ctypes
import os


def add_thread_args(p):
    """--torch-threads and --openblas-threads on an argparse parser."""
    p.add_argument('--torch-threads', type=int, default=1,
                   help='torch intra-op threads (torch.set_num_threads)')
    p.add_argument('--openblas-threads', type=int, default=None,
                   help='sets OPENBLAS_NUM_THREADS before importing torch '
                        '(default: leave the environment as it is)')


def set_openblas_threads(args):
    """Call before importing torch."""
    if args.openblas_threads is not None:
        os.environ['OPENBLAS_NUM_THREADS'] = str(args.openblas_threads)


def start_torch(torch, args):
    """Threads and seed for the run."""
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)


def openblas_threads():
    """Threads the loaded OpenBLAS will use, or None if it is not loaded."""
    try:
        return ctypes.CDLL('libopenblas.so.0').openblas_get_num_threads()
    except (OSError, AttributeError):
        return None


def thread_counts(torch):
    """The threads the run used, for its JSON result."""
    return {'torch_threads': torch.get_num_threads(), 'openblas_threads': openblas_threads()}
