"""Whole corpora: a job of many audio files, streamed to disk as results are made, resumable after any crash,
sharded over torchrun ranks or run as a Ray Data pipeline; the merged `transcripts.jsonl` is the same
whichever way it ran.

The output folder holds `job.json` (what is transcribed with which model; another job is refused),
`parts/*.jsonl` (one line per finished input, appended batch by batch by each worker), `runs.jsonl` (one
line per worker run: how many inputs it transcribed, how many it found done) and, once every input has a
line, `transcripts.jsonl`: one JSON line per input in input order, with its result or its `error`.

Every engine runs the same batches: the inputs are sorted by duration (from the file headers) into batches
of `batch_size`, and a batch is the unit that is skipped when done, assigned to a rank, or sent to an actor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from .files import atomic_write
from .progress import progress_bar
from .transcribe import Recognizer

JOB_FILE, PARTS, RUNS, FINAL = "job.json", "parts", "runs.jsonl", "transcripts.jsonl"
LIST_SUFFIXES = (".txt", ".lst", ".list", ".scp")  # one audio path per line


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How a worker that is not this process (a Ray actor) loads the same recognizer."""

    name_or_path: str | None
    dtype: str = "auto"
    device: str = "cpu"
    decoder: object = None
    threads: int = 1
    backend: str = "auto"
    adapt: object = None  # adapt.AdaptOptions


@dataclasses.dataclass(frozen=True)
class JobResult:
    transcripts: Path | None  # None on ranks other than 0
    transcribed: int  # inputs this process (or, for Ray, the actors) ran in this run
    already_done: int  # inputs found done from earlier runs


def read_input_list(path: str | os.PathLike, split: str = "test", audio_dir: str | None = None) -> list[str]:
    """Audio paths from a text file (one per line, relative to the file's folder; # comments), a TSV/JSONL
    manifest, or a Common Voice folder with `split`."""
    from .data import load_dataset

    path = Path(path)
    if not path.exists():
        raise ValueError(f"--input {path}: no such file or folder")
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--input {path}: cannot read the list ({type(e).__name__}: {e})") from e
        return [str(path.parent / line.strip()) for line in lines if line.strip() and not line.startswith("#")]
    utterances, skipped = load_dataset(path, split=split, audio_dir=audio_dir, labelled=False)
    if skipped:
        print(f"unispeech: {len(skipped)} rows of {path} have no usable audio entry and are left out", file=sys.stderr)
    return [str(u.audio) for u in utterances]


def identity(recognizer: Recognizer) -> dict:
    """What makes results comparable: the model (by its weights, or its export), what runs it and the decoder."""
    return {
        "model": recognizer.name,
        "weights": recognizer.runner.identity(),
        "runs": recognizer.describe(),
        "decoder": recognizer.decoder.describe(),
    }


def plan(paths: list[str], batch_size: int) -> tuple[list[list[int]], list[float]]:
    """Input indices in batches of similar duration (longest first), and each input's duration (0 when its
    header cannot be read: it will fail alone with its error)."""
    seconds = [_header_seconds(p) for p in paths]
    order = sorted(range(len(paths)), key=lambda i: (-seconds[i], i))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)], seconds


def shard(batches: list[list[int]], seconds: list[float], world: int) -> list[list[list[int]]]:
    """Batches per rank, balanced by audio seconds: each batch (longest first) to the least loaded rank."""
    shares: list[list[list[int]]] = [[] for _ in range(world)]
    load = [0.0] * world
    for batch in batches:
        rank = min(range(world), key=lambda r: (load[r], r))
        shares[rank].append(batch)
        load[rank] += sum(seconds[i] for i in batch) + 1e-3 * len(batch)
    return shares


def start_job(out: Path, paths: list[str], ident: dict, rank: int) -> None:
    """Check (or, on rank 0, write) job.json: the same inputs with the same model, or a clear refusal."""
    if not out.parent.is_dir():
        raise ValueError(f"--output-dir {out}: its parent folder {out.parent} does not exist")
    job = {"inputs": len(paths), "inputs_sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest(), **ident}
    path = out / JOB_FILE
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != job:
            changed = ", ".join(f"{k}: {previous.get(k)} -> {v}" for k, v in job.items() if previous.get(k) != v)
            raise ValueError(
                f"{out} holds results of another run ({changed}); "
                "choose another output folder, or delete this one to start over"
            )
    elif rank == 0:
        (out / PARTS).mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(job, indent=2, ensure_ascii=False))


def done_lines(out: Path) -> dict[int, str]:
    """Every complete result line in the part files, by input index (the first one wins)."""
    lines: dict[int, str] = {}
    for part in sorted((out / PARTS).glob("*.jsonl")):
        for line in part.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # torn by a kill: recomputed
            try:
                lines.setdefault(int(json.loads(line)["index"]), line)
            except (ValueError, KeyError, TypeError):
                continue
    return lines


def open_part(path: Path):
    """A part file for appending, its torn last line (a kill during a write) cut off first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
    return open(path, "a", encoding="utf-8")


def result_line(index: int, path: str, result) -> str:
    row = {"index": index, "path": path}
    row.update({"error": str(result)} if isinstance(result, Exception) else result.to_dict())
    return json.dumps(row, ensure_ascii=False) + "\n"


def transcribe_batch(recognizer: Recognizer, paths: list[str], batch: list[int]) -> str:
    """The lines of one batch (the model sees exactly this batch, whichever engine runs it)."""
    results = recognizer.transcribe_many([paths[i] for i in batch], batch_size=len(batch))
    return "".join(result_line(i, paths[i], r) for i, r in zip(batch, results))


def run_share(recognizer, paths, share, part: Path, done: dict, progress) -> int:
    """Transcribe the batches of one share that are not done; -> inputs transcribed."""
    count = 0
    with open_part(part) as f:
        for batch in share:
            if all(i in done for i in batch):
                continue
            f.write(transcribe_batch(recognizer, paths, batch))
            f.flush()  # on disk (in the page cache) before the next batch: a kill loses one batch at most
            count += len(batch)
            progress.update()
    return count


def merge(out: Path, total: int) -> Path:
    lines = done_lines(out)
    missing = [i for i in range(total) if i not in lines]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {total} inputs have no result (first: index {missing[0]}); "
            "a worker stopped early: run the same command again to finish the rest"
        )
    return atomic_write(out / FINAL, "".join(lines[i] for i in range(total)))


def log_run(out: Path, **row) -> None:
    with open(out / RUNS, "a", encoding="utf-8") as f:
        f.write(json.dumps({**row, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def run_job(
    recognizer: Recognizer,
    paths: list[str],
    out: str | os.PathLike,
    *,
    batch_size: int = 8,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int | None = None,
    spec: ModelSpec | None = None,
    progress: bool = True,
) -> JobResult:
    """Transcribe `paths` into `out` (see the module docstring). engine "local": this process, or its share
    of the job when launched by torchrun (every rank calls this; rank 0 merges); "ray": a Ray Data pipeline
    whose actors each load `spec` once."""
    from .train.loop import distributed

    out = Path(out)
    if engine == "ray":
        _ray_connect(ray_address)  # a dead cluster address fails now, before any work
    rank, world = distributed() if engine == "local" else (0, 1)
    ident = identity(recognizer)
    if rank == 0:
        start_job(out, paths, ident, rank)
    _barrier(world)
    if rank != 0:  # rank 0 has written job.json by now: check against it
        start_job(out, paths, ident, rank)
    done = done_lines(out)
    if len(done) >= len(paths) and (out / FINAL).is_file():
        return JobResult(out / FINAL if rank == 0 else None, 0, len(done))  # a finished job: nothing to do
    started = time.perf_counter()
    batches, seconds = plan(paths, batch_size)
    bar = JobProgress(out, len(paths), len(done), enabled=progress and rank == 0)
    if engine == "ray":
        count = run_on_ray(paths, batches, out, done, spec, ray_address, ray_actors, bar)
    else:
        part = out / PARTS / f"part-{rank:05d}-of-{world:05d}.jsonl"
        count = run_share(recognizer, paths, shard(batches, seconds, world)[rank], part, done, bar)
    bar.close()
    log_run(
        out,
        engine=engine,
        rank=rank,
        world=world,
        transcribed=count,
        already_done=len(done),
        seconds=round(time.perf_counter() - started, 2),
        max_rss_mb=_max_rss_mb(),
    )
    count = _sum_over_ranks(count, world)  # also the barrier before rank 0 merges
    if rank != 0:
        return JobResult(None, count, len(done))
    return JobResult(merge(out, len(paths)), count, len(done))


class _RayTranscriber:
    """A Ray actor: loads the model once, then transcribes whole batches."""

    def __init__(self, spec: ModelSpec, paths: list[str]):
        import torch

        from . import load_model

        torch.set_num_threads(spec.threads)
        self.recognizer = load_model(
            spec.name_or_path, spec.device, spec.dtype, decoder=spec.decoder, backend=spec.backend, adapt=spec.adapt
        )
        self.paths = paths

    def __call__(self, rows: dict) -> dict:
        return {"lines": [transcribe_batch(self.recognizer, self.paths, [int(i) for i in b]) for b in rows["batch"]]}


def run_on_ray(
    paths, batches, out: Path, done: dict, spec: ModelSpec | None, address: str | None, actors: int | None, bar
) -> int:
    """The pending batches as a Ray dataset, mapped by an actor pool; the lines stream back to this process,
    which appends them to its part file."""
    ray = _ray_connect(address)
    pending = [b for b in batches if not all(i in done for i in b)]
    if not pending:
        return 0
    spec = spec or ModelSpec(None)
    size = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // max(spec.threads, 1))
    dataset = ray.data.from_items([{"batch": b} for b in pending]).map_batches(
        _RayTranscriber,
        fn_constructor_args=(spec, paths),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(size, len(pending))),
        num_cpus=spec.threads,
    )
    count = 0
    with open_part(out / PARTS / "part-ray.jsonl") as f:
        try:
            for row in dataset.iter_rows():
                f.write(row["lines"])
                f.flush()
                count += row["lines"].count("\n")
                bar.update()
        except Exception as e:  # a worker failed: what is written stays, a re-run does the rest
            cause = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
            raise RuntimeError(f"the Ray pipeline stopped after {count} inputs: {cause}") from e
    return count


def _ray_connect(address: str | None):
    try:
        import ray
    except ImportError as e:
        raise ValueError("--engine ray needs Ray: pip install 'unispeech[ray]'") from e
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is the job's bar
    context.print_on_execution_start = False
    if not ray.is_initialized():
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        except Exception as e:  # an unreachable cluster: ConnectionError, or Ray's own exceptions
            raise RuntimeError(
                f"cannot connect to Ray at {address or 'a new local instance'}: "
                f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            ) from e
    import logging

    for name in ("ray", "ray.data"):  # its INFO lines would bury the job's progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    return ray


def _check_reachable(address: str | None, seconds: float = 5.0) -> None:
    """A HOST:PORT cluster address answers within `seconds`, or a clear error (ray.init itself retries for
    minutes against a dead address)."""
    import socket

    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=seconds):
            pass
    except (OSError, ValueError) as e:
        raise RuntimeError(f"cannot reach the Ray cluster at {address} ({type(e).__name__}: {e})") from e


class JobProgress:
    """One bar for the whole job (rank 0 / the driver): counts the lines in every part file, so other ranks'
    work shows too; files/s from tqdm, audio seconds per second in the postfix."""

    def __init__(self, out: Path, total: int, done: int, enabled: bool):
        self.out, self.enabled, self.started = out, enabled, time.perf_counter()
        self.offsets: dict[Path, int] = {}
        self.lines = self.audio = 0
        self.bar = progress_bar(
            total=total, initial=done, unit="file", desc="transcribing", dynamic_ncols=True, enabled=enabled
        )
        if enabled:  # what is already there counts as done (the bar's initial), not as this run's speed
            self.offsets = {part: _complete_size(part) for part in (out / PARTS).glob("*.jsonl")}

    def _scan(self) -> None:
        for part in sorted((self.out / PARTS).glob("*.jsonl")):
            with open(part, "rb") as f:
                f.seek(self.offsets.get(part, 0))
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.offsets[part] = self.offsets.get(part, 0) + len(complete)
            for line in complete.splitlines():
                self.lines += 1
                self.audio += json.loads(line).get("duration", 0.0)

    def update(self) -> None:
        if not self.enabled:
            return
        before = self.lines
        self._scan()
        self.bar.update(self.lines - before)
        self.bar.set_postfix(audio_s_per_s=f"{self.audio / max(time.perf_counter() - self.started, 1e-9):.1f}")

    def close(self) -> None:
        self.bar.close()


def _complete_size(path: Path, tail: int = 1 << 16) -> int:
    """Bytes up to the last complete line of a part file, reading only its end."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - tail))
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return 0 if size <= tail else _complete_size(path, 2 * tail)  # one line longer than the tail
    return size - len(data) + end + 1


def _header_seconds(path: str) -> float:
    import soundfile as sf

    try:
        info = sf.info(path)
        return info.frames / info.samplerate if info.samplerate else 0.0
    except Exception:  # unreadable: its error comes when it is transcribed
        return 0.0


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _sum_over_ranks(value: int, world: int) -> int:
    if world == 1:
        return value
    import torch
    import torch.distributed as dist

    total = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(total)
    return int(total)


def _max_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kilobytes
