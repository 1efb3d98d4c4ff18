r"""Training on several processes with ``torch.distributed`` (chapter 37, *Scaling out*).

Data parallelism with a bucketed all-reduce (:mod:`.ddp`), ZeRO stages 0-3 (:mod:`.zero`), GPipe
pipelines (:mod:`.pipeline`), gradient checkpointing (:mod:`.recompute`) and launching
``torchrun`` (:mod:`.launch`). Tensor parallelism is a layer matter:
:mod:`dlscratch.layers.tensor_parallel`. ``python -m dlscratch.training.parallel.demo`` runs the
chapter's multi-process experiments.
"""

from .ddp import BucketedAllReduce, DistEnv, broadcast_parameters, init_distributed, make_buckets, shard_batch
from .launch import free_port, run_torchrun, torchrun_command
from .pipeline import bubble_formula, bubble_fraction, gpipe_step, split_micro_batches
from .recompute import Recompute, SavedTensorMeter, checkpoint_sequential
from .zero import ZeRO, zero_bytes_formula

__all__ = [
    "BucketedAllReduce",
    "DistEnv",
    "broadcast_parameters",
    "init_distributed",
    "make_buckets",
    "shard_batch",
    "free_port",
    "run_torchrun",
    "torchrun_command",
    "bubble_formula",
    "bubble_fraction",
    "gpipe_step",
    "split_micro_batches",
    "Recompute",
    "SavedTensorMeter",
    "checkpoint_sequential",
    "ZeRO",
    "zero_bytes_formula",
]
