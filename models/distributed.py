"""Data-parallel training of the next-track LSTM, one process per rank, under either backend:

- horovod: `hvd.DistributedOptimizer` averages gradients, parameters and optimizer state are
  broadcast from rank 0, metrics averaged with `hvd.allreduce` (Gloo on CPU; NCCL where Horovod was
  built with it and a GPU is present);
- torch: `torch.distributed` with DistributedDataParallel, as started by Spark's TorchDistributor
  (gloo on CPU, nccl on GPU).
The device is chosen at run time: CUDA when the rank sees a GPU, else CPU; no code change.
The learning rate is scaled by the world size. Rank 0 writes a checkpoint after every epoch
(atomically: a temporary file renamed into place); a run that finds checkpoints resumes after the
latest. Each rank reads only its own shard (models.feed).
"""
from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from models import feed, storage
from models.progress import Progress
from models.lstm import LstmParams, NextTrackLSTM, NextTrackObjective, Vocabulary

CHECKPOINT = re.compile(r"^epoch-(\d{4})\.pt$")
FINISHED = "finished.json"  # rank 0's result of a run that trained every epoch, beside its checkpoints

log = logging.getLogger("setlist.train")


@dataclass(frozen=True)
class TrainSpec:
    lstm: LstmParams
    shards: list[list[str]]
    steps_per_epoch: int
    epochs: int
    batch_size: int
    learning_rate: float
    loss: str                  # "full" | "sampled"
    num_sampled: int
    checkpoint_dir: str      # a folder or URI (models.storage)
    seed: int
    pretrained: dict[int, list[float]] = field(default_factory=dict)  # track_idx -> vector
    vocabulary: list[int] | None = None  # the track_idx of tokens 1..n; None: every track_idx its own token


def latest_checkpoint(directory: str) -> tuple[int, str] | None:
    """(epoch, location) of the newest checkpoint in `directory`, or None."""
    found = sorted((int(m.group(1)), storage.join(directory, name))
                   for name in storage.listdir(directory) if (m := CHECKPOINT.match(name)))
    return found[-1] if found else None


def load_checkpoint(location: str, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's tensors and numbers, weights only (a checkpoint cannot carry code)."""
    return torch.load(io.BytesIO(storage.read_bytes(location)), map_location=device, weights_only=True)


def save_checkpoint(directory: str, epoch: int, model: torch.nn.Module, optimizer, history: list[float]) -> str:
    """Write epoch's checkpoint atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "history": history}, buffer)
    return storage.write_bytes(storage.join(directory, f"epoch-{epoch:04d}.pt"), buffer.getvalue())


def parameter_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _Horovod:
    name = "horovod"

    def __init__(self):
        import horovod.torch as hvd
        hvd.init()
        self.hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()
        self.local_rank = hvd.local_rank()

    def wrap(self, model, optimizer):
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        return model, self.hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())

    def mean(self, value: float) -> float:
        return float(self.hvd.allreduce(torch.tensor([value], dtype=torch.float64), op=self.hvd.Average)[0])

    # Horovod matches a collective across ranks by its name, and the *_object helpers name theirs
    # after the object's type unless told: rank 0's checkpoint (a tuple) against the others' None
    # left every rank waiting on a different broadcast. One fixed name per call site.
    def broadcast(self, obj):
        return self.hvd.broadcast_object(obj, root_rank=0, name="setlist.broadcast")

    def gather(self, obj) -> list:
        return self.hvd.allgather_object(obj, name="setlist.gather")

    def barrier(self):
        self.hvd.barrier()

    def close(self):
        self.hvd.shutdown()


class _Torch:
    name = "torch-distributor"

    def __init__(self):
        import torch.distributed as dist
        self.dist = dist
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))

    def wrap(self, model, optimizer):
        from torch.nn.parallel import DistributedDataParallel
        device_ids = [self.local_rank] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=device_ids), optimizer

    def mean(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64)
        self.dist.all_reduce(t)
        return float(t[0]) / self.size

    def broadcast(self, obj):
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        out = [None] * self.size
        self.dist.all_gather_object(out, obj)
        return out

    def barrier(self):
        self.dist.barrier()

    def close(self):
        self.dist.destroy_process_group()


class _Local:
    """One process, no collectives: the single-process baseline of bench/train_throughput.py."""
    name = "local"
    rank, size, local_rank = 0, 1, 0

    def wrap(self, model, optimizer):
        return model, optimizer

    def mean(self, value: float) -> float:
        return value

    def broadcast(self, obj):
        return obj

    def gather(self, obj) -> list:
        return [obj]

    def barrier(self):
        pass

    def close(self):
        pass


LOCAL = _Local.name
BACKENDS = {"horovod": _Horovod, "torch-distributor": _Torch, LOCAL: _Local}


def train(spec: TrainSpec, backend: str) -> dict:
    """Run on every rank. Returns, on every rank, this rank's view plus all ranks' parameter digests."""
    ctx = BACKENDS[backend]()
    try:
        result = _train(spec, ctx)
        ctx.barrier()  # no rank tears its connections down while another still uses them
        return result
    finally:
        # The data-parallel wrapper and its hooks form reference cycles that hold the process group;
        # left to the interpreter's exit, their collective threads were torn down during finalisation
        # (a rank aborting with "terminate called without an active exception" and its peer left
        # waiting). Free them while the interpreter is whole, then leave the group together.
        gc.collect()
        ctx.close()
        gc.collect()


def vocabulary_of(spec: TrainSpec) -> Vocabulary:
    return Vocabulary(spec.vocabulary) if spec.vocabulary is not None else Vocabulary.identity(spec.lstm.vocab)


def _progress(rank: int, epochs: int):
    """Rank 0's epoch progress (examples per second, time left) on its stderr, which Spark shows
    with the executor's log; the other ranks stay quiet."""
    if rank != 0:
        return None
    logger = logging.getLogger("setlist.train.rank0")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return Progress(logger, "train", total=epochs, unit="epochs")


def _train(spec: TrainSpec, ctx) -> dict:
    device = torch.device(f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(spec.seed)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // ctx.size))
    vocabulary = vocabulary_of(spec)
    pretrained = dict(zip(vocabulary.tokens(np.array([int(k) for k in spec.pretrained], dtype=np.int64)).tolist(),
                          (np.asarray(v) for v in spec.pretrained.values())))
    pretrained.pop(vocabulary.shared, None)
    model = NextTrackLSTM(spec.lstm, pretrained).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate * ctx.size)
    start_epoch, history = 0, []
    found = ctx.broadcast(latest_checkpoint(spec.checkpoint_dir) if ctx.rank == 0 else None)
    if found is not None:
        state = load_checkpoint(found[1], device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], list(state["history"])
    wrapped, optimizer = ctx.wrap(NextTrackObjective(model, spec.loss, spec.num_sampled), optimizer)
    windows, targets = feed.read_shard(spec.shards[ctx.rank])
    windows, targets = feed.to_tokens(windows, targets, vocabulary)
    generator = torch.Generator(device=device).manual_seed(spec.seed + ctx.rank)
    epoch_seconds = []
    progress = _progress(ctx.rank, spec.epochs - start_epoch)
    for epoch in range(start_epoch + 1, spec.epochs + 1):
        started = time.perf_counter()
        wrapped.train()
        total = 0.0
        for x, y in feed.batches(windows, targets, spec.batch_size, spec.steps_per_epoch,
                                 seed=spec.seed * 1000 + epoch * 10 + ctx.rank):
            x_t, y_t = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
            optimizer.zero_grad()
            loss = wrapped(x_t, y_t, generator)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        history.append(ctx.mean(total / spec.steps_per_epoch))
        epoch_seconds.append(time.perf_counter() - started)
        if progress is not None:
            progress.step(rows=spec.steps_per_epoch * spec.batch_size * ctx.size,
                          what=f"epoch {epoch} of {spec.epochs}, loss {history[-1]:.4f}")
        if ctx.rank == 0:
            save_checkpoint(spec.checkpoint_dir, epoch, model, optimizer, history)
    digests = ctx.gather(parameter_digest(model))
    result = {"rank": ctx.rank, "world_size": ctx.size, "device": str(device), "backend": ctx.name,
              "resumed_from": start_epoch, "loss_by_epoch": history, "digests": digests,
              "epoch_seconds": epoch_seconds, "samples_per_epoch": spec.steps_per_epoch * spec.batch_size * ctx.size,
              "spec": {k: v for k, v in asdict(spec).items() if k in ("epochs", "batch_size", "learning_rate",
                                                                     "loss", "num_sampled", "steps_per_epoch")}}
    if ctx.rank == 0:
        storage.write_bytes(storage.join(spec.checkpoint_dir, FINISHED), json.dumps(result).encode())
    return result


def finished_run(spec: TrainSpec) -> list[dict] | None:
    """Rank 0's result of an earlier run of this input (spec.checkpoint_dir) that trained all
    spec.epochs epochs, as a rerun's result (resumed after the last epoch, none trained), or None.
    Such a rerun has nothing to train, so its caller need not launch the ranks at all: a launch
    is process start and teardown: a forced train rerun on a 20,000-event night took 11.2 s without
    it against 19.4 s with it (docs/performance.md, "No relaunch of a finished training")."""
    found = latest_checkpoint(spec.checkpoint_dir)
    record = storage.join(spec.checkpoint_dir, FINISHED)
    if found is None or found[0] != spec.epochs or not storage.exists(record):
        return None
    result = json.loads(storage.read_bytes(record))
    if len(result.get("loss_by_epoch", ())) != spec.epochs:
        return None
    return [result | {"resumed_from": spec.epochs, "epoch_seconds": [], "attempt": 0}]


def run_backend(spark, spec: TrainSpec, backend: str, world: int, timeout_s: float = 4 * 3600,
                attempts: int = 2) -> list[dict]:
    """Run `train` on `world` ranks as Spark tasks; every rank's result (with the attempt that
    produced it): Horovod returns all ranks', TorchDistributor rank 0's (which has all digests).

    A distributed start can hang (a rank that never joins the rendezvous leaves the others waiting):
    after timeout_s the run's Spark jobs are cancelled and it is tried again, up to `attempts` times;
    a retry resumes from the last checkpoint.
    """
    for attempt in range(1, attempts + 1):
        # The launch stays in this thread (Horovod installs signal handlers); a watchdog cancels the
        # run's Spark jobs if it outlives timeout_s. Horovod starts its job from a thread of its own,
        # out of reach of a job group, and the train stage runs alone: cancel every running job.
        done, fired = threading.Event(), threading.Event()

        def watchdog():
            if not done.wait(timeout_s):
                fired.set()
                log.warning("train: %s attempt %d did not finish in %.0f s; cancelling its Spark jobs", backend,
                            attempt, timeout_s)
                spark.sparkContext.cancelAllJobs()

        threading.Thread(target=watchdog, daemon=True).start()
        try:
            return [r | {"attempt": attempt} for r in _launch(spark, spec, backend, world)]
        except Exception as exc:
            if not fired.is_set():
                raise
            if attempt == attempts:
                raise RuntimeError(f"train: {backend} did not finish in {attempts} attempt(s) of {timeout_s:.0f} s "
                                   f"each (train.timeout_minutes)") from exc
        finally:
            done.set()
    raise AssertionError("unreachable")


def _launch(spark, spec: TrainSpec, backend: str, world: int) -> list[dict]:
    if backend == "horovod":
        import horovod.spark
        return horovod.spark.run(train, args=(spec, "horovod"), num_proc=world, verbose=0, start_timeout=300)
    from pyspark.ml.torch.distributor import TorchDistributor
    use_gpu = spark.conf.get("spark.task.resource.gpu.amount", None) is not None
    return [TorchDistributor(num_processes=world, local_mode=False, use_gpu=use_gpu).run(train, spec, "torch-distributor")]
