"""The GPU path on CIFAR-10 with ResNet-18: training, EK-FAC factors, the 51-query scoring pass, and the
same queries one at a time (the first few, extrapolated), in bf16 and — for the flagged-set
agreement — fp32. One self-contained command; figures go to stdout, a JSON file and
``benchmarks/RESULTS.md``.

    python benchmarks/gpu.py [--npz PATH] [--epochs 30] [--one-at-a-time 2] [--no-fp32] [--json OUT.json]
                             [--attack badnet] [--detectors all] [--torchrun N]

Reads the CIFAR-10 JPEG archive (``cifar10-jpeg.npz``: all 60,000 images) straight into memory,
so no torchvision download is needed. Each stage's figures are written as soon as they exist, so a
run stopped by a time limit keeps what it measured. ``--device cpu --n-train 500 --epochs 1``
checks the script itself on a CPU. ``--torchrun N`` also scores the built-in experiment with N processes
(``torchrun … -m deltainf score run``) and with one, on the same trained model, and compares the two.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deltainf import Config, Experiment  # noqa: E402
from deltainf.data import ImageData, balanced_subset  # noqa: E402
from deltainf.evaluation.metrics import detection_metrics  # noqa: E402
from deltainf.influence import ekfac as influence  # noqa: E402
from deltainf.influence.delta import delta_flags, delta_matrix, score_scale  # noqa: E402
from deltainf.influence.stages import batch_size  # noqa: E402
from deltainf.influence.suggest import suggest_tau_k  # noqa: E402

DEFAULT_NPZ = ROOT.parent / "shared" / "data" / "cifar10-jpeg.npz"
GRID_DETECTORS = ("delta_influence", "delta_label_only", "delta_image_only", "ekfac", "actclust", "specsig", "freqdef")


def _decode(args) -> np.ndarray:
    from PIL import Image

    blob, offsets = args
    out = np.empty((len(offsets) - 1, 3, 32, 32), np.uint8)
    for j in range(len(offsets) - 1):
        img = Image.open(io.BytesIO(blob[offsets[j]:offsets[j + 1]].tobytes())).convert("RGB")
        out[j] = np.asarray(img).transpose(2, 0, 1)
    return out


def load_cifar10(npz: Path, workers: int) -> ImageData:
    """All of CIFAR-10 from the JPEG archive, decoded in parallel."""
    d = np.load(npz, allow_pickle=False)
    parts = {}
    with ProcessPoolExecutor(workers) as pool:
        for split in ("train", "test"):
            blob, off = d[f"{split}_jpeg"], d[f"{split}_offsets"]
            cuts = np.linspace(0, len(off) - 1, workers * 4 + 1).astype(int)
            chunks = [(blob[off[a]:off[b]], off[a:b + 1] - off[a]) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
            parts[split] = np.concatenate(list(pool.map(_decode, chunks)))
    return ImageData("cifar10", [str(c) for c in d["classes"]], torch.from_numpy(parts["train"]),
                     torch.from_numpy(d["train_labels"].astype(np.int64)), torch.from_numpy(parts["test"]),
                     torch.from_numpy(d["test_labels"].astype(np.int64)))


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--npz", type=Path, default=DEFAULT_NPZ)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--n-train", type=int, help="a class-balanced subset (script checks on a CPU)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--one-at-a-time", type=int, default=2, help="queries scored one pass each, then extrapolated")
    ap.add_argument("--no-fp32", action="store_true", help="skip the fp32 factors/scores used for the flagged-set overlap")
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip the fp32 comparison once this much time is spent")
    ap.add_argument("--profile-factors", action="store_true",
                    help="also time kronfluence's three factor stages (covariance, eigendecomposition, λ) apart")
    ap.add_argument("--attack", default="badnet", help="badnet or frequency")
    ap.add_argument("--detectors", default="delta_influence,ekfac",
                    help="comma-separated detectors to report TPR / precision / F1 for, or 'all' (the paper's grid)")
    ap.add_argument("--lambda-examples", type=int, nargs="*", default=[10000], metavar="N",
                    help="also fit the factors with λ from a seeded sample of N points: seconds, flagged-set Jaccard")
    ap.add_argument("--torchrun", type=int, default=0, metavar="N",
                    help="also compare `deltainf score run` by torchrun with N processes against one process")
    ap.add_argument("--json", type=Path, default=Path(os.environ.get("OUT", tempfile.gettempdir())) / "gpu.json")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    a = ap.parse_args()
    t_start = time.perf_counter()
    fig: dict = {"date": str(date.today()), "python": platform.python_version(), "torch": torch.__version__}
    try:
        import kronfluence
        fig["kronfluence"] = getattr(kronfluence, "__version__", "?")
    except ImportError:
        pass
    if torch.cuda.is_available():
        fig["gpu"] = torch.cuda.get_device_name(0)

    def record(**kw):
        fig.update(kw)
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(fig, indent=1))
        print(json.dumps(kw), flush=True)

    t = time.perf_counter()
    data = load_cifar10(a.npz, max(1, min(16, os.cpu_count() or 1)))
    if a.n_train:
        keep, keep_test = balanced_subset(data.y_train, a.n_train, 0), balanced_subset(data.y_test, 1000, 0)
        data = ImageData(data.name, data.classes, data.x_train[keep], data.y_train[keep], data.x_test[keep_test],
                         data.y_test[keep_test])
    record(n_train=len(data.y_train), n_test=len(data.y_test), decode_s=round(time.perf_counter() - t, 1))

    cache = tempfile.mkdtemp(prefix="deltainf-gpu-")
    cfg = Config(dataset="cifar10", model="resnet18", attack=a.attack, seed=0, device=a.device, epochs=a.epochs,
                 lr=a.lr, batch_size=a.batch_size, cache_dir=cache)
    pipe = Experiment(cfg, data=data)  # the archive, not torchvision's download
    inv, precision, influence_batch = pipe.investigation, pipe.recipe.precision, batch_size(pipe.device)
    record(precision=precision, influence_batch=influence_batch, attack=a.attack)

    t = time.perf_counter()
    m = pipe.model_metrics
    sync()
    record(train_s=round(time.perf_counter() - t, 1), epochs=a.epochs, clean_acc=round(m["clean_acc"], 4),
           poison_success=round(m["poison_success"], 4), n_poison=int(pipe.is_poison.sum()))

    t = time.perf_counter()
    inv.influence.factors()
    sync()
    factors_s = time.perf_counter() - t
    record(factors_s=round(factors_s, 1))

    if a.profile_factors:
        record(factor_stages_s=profile_factor_stages(pipe))

    q = inv.queries()
    t = time.perf_counter()
    scores = inv.scores()
    sync()
    scores_s = time.perf_counter() - t
    record(queries=len(q.labels), scores_s=round(scores_s, 1), factors_plus_scores_s=round(factors_s + scores_s, 1))

    rep = {d: pipe.detection_report(d) for d in ("delta_influence", "ekfac")}
    record(delta_influence={k: rep["delta_influence"][k] for k in ("tpr", "precision", "n_flagged", "tau", "k")},
           ekfac={k: rep["ekfac"][k] for k in ("tpr", "precision", "n_flagged")})

    names = GRID_DETECTORS if a.detectors == "all" else tuple(a.detectors.split(","))
    if set(names) - {"delta_influence", "ekfac"}:
        t = time.perf_counter()
        grid = {}
        for d in names:
            r = pipe.detection_report(d)
            grid[d] = {"tpr": round(r["tpr"], 3), "precision": round(r["precision"], 3), "f1": round(r["f1"], 3),
                       "n_flagged": r["n_flagged"]}
        sync()
        record(detectors=grid, detectors_s=round(time.perf_counter() - t, 1))

    p = pipe.poisoned.data
    one = []
    for i in range(min(a.one_at_a_time, len(q.labels))):
        t = time.perf_counter()
        influence.pairwise_scores(pipe.model, q.images[i:i + 1], q.labels[i:i + 1], p.x_train, p.y_train,
                                  pipe.store.kron_root, inv.influence.factors_key, pipe.device,
                                  train_batch_size=2 * influence_batch, precision=precision)
        sync()
        one.append(time.perf_counter() - t)
    if one:
        extrapolated = float(np.mean(one)) * len(q.labels)
        record(one_query_s=[round(x, 1) for x in one], one_at_a_time_extrapolated_s=round(extrapolated, 1),
               batching_speedup=round(extrapolated / scores_s, 1))

    spent = time.perf_counter() - t_start
    if precision == "bf16" and not a.no_fp32 and spent < a.budget_s:
        key = "fp32-" + inv.influence.factors_key
        t = time.perf_counter()
        influence.fit_factors(pipe.model, p.x_train, p.y_train, pipe.store.kron_root, key, pipe.device,
                              batch_size=influence_batch, seed=cfg.seed, precision="fp32")
        s32 = influence.pairwise_scores(pipe.model, q.images, q.labels, p.x_train, p.y_train, pipe.store.kron_root,
                                        key, pipe.device, train_batch_size=2 * influence_batch, precision="fp32")
        sync()
        d32 = delta_matrix(s32)
        tau32, k32 = suggest_tau_k(d32, score_scale(s32))
        f32 = delta_flags(d32, tau32, k32)
        f16 = pipe.detect("delta_influence").flagged
        union = (f32 | f16).sum()
        m32 = detection_metrics(f32, pipe.is_poison)
        corr = float(np.corrcoef(scores[0], s32[0])[0, 1])
        record(fp32_factors_plus_scores_s=round(time.perf_counter() - t, 1),
               fp32_delta_influence={"tpr": m32["tpr"], "precision": m32["precision"], "n_flagged": int(f32.sum())},
               flagged_overlap_jaccard=round(float((f32 & f16).sum() / union) if union else 1.0, 4),
               score_correlation_bf16_fp32=round(corr, 5))
    elif precision == "bf16" and not a.no_fp32:
        record(fp32_skipped=f"{spent:.0f} s spent, over the {a.budget_s:.0f} s budget")
    f_all = pipe.detect("delta_influence").flagged
    for n in a.lambda_examples:
        sampled = Experiment(cfg.replace(lambda_examples=n), data=data)
        t = time.perf_counter()
        sampled.investigation.influence.factors()
        sync()
        fs = time.perf_counter() - t
        t = time.perf_counter()
        sampled.investigation.scores()
        sync()
        f_n = sampled.detect("delta_influence").flagged
        union = (f_n | f_all).sum()
        record(**{f"lambda_{n}": {"factors_s": round(fs, 1), "scores_s": round(time.perf_counter() - t, 1),
                                  "jaccard_vs_all": round(float((f_n & f_all).sum() / union) if union else 1.0, 4)}})
    if a.torchrun:
        record(torchrun=torchrun_check(a.torchrun, a.device))
    record(total_s=round(time.perf_counter() - t_start, 1))
    write_results(a.results, fig)


def torchrun_check(n: int, device: str) -> dict:
    """`deltainf score run` (the built-in experiment) by torchrun with ``n`` processes against one process, on the
    same trained model (trained once, its cache copied): seconds, the largest score difference, flagged-set Jaccard."""
    base = Path(tempfile.mkdtemp(prefix="deltainf-torchrun-"))
    one, many = base / "one", base / "many"
    cli = [sys.executable, "-m", "deltainf"]
    env = {**os.environ, "DELTAINF_TORCH_THREADS": str(torch.get_num_threads())}  # CPU models are keyed by it
    subprocess.run([*cli, "run", "--detectors", "none", "--quiet", "--device", device, "--cache-dir", str(one)],
                   check=True, cwd=ROOT, env=env)
    shutil.copytree(one, many)
    seconds = {}
    for name, launch, cache in (("one_process_s", cli, one), (f"{n}_processes_s", [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "deltainf"],
                                                              many)):
        t = time.perf_counter()
        subprocess.run([*launch, "score", "run", "--quiet", "--device", device, "--cache-dir", str(cache)], check=True,
                       cwd=ROOT, env=env)
        seconds[name] = round(time.perf_counter() - t, 1)
    flags, matrices = [], []
    for cache in (one, many):
        inv = Experiment(Config(device=device, cache_dir=str(cache))).investigation
        matrices.append(inv.scores())
        flags.append(delta_flags(inv.delta(), *inv.tau_k()[:2]))
    union = (flags[0] | flags[1]).sum()
    return {"processes": n, **seconds,
            "max_score_difference_relative": float(np.abs(matrices[0] - matrices[1]).max() / np.abs(matrices[0]).max()),
            "flagged_jaccard": round(float((flags[0] & flags[1]).sum() / union) if union else 1.0, 4)}


def profile_factor_stages(pipe) -> dict:
    """Seconds of each EK-FAC stage at the experiment's precision, and of the eigendecomposition in fp32."""
    p = pipe.poisoned.data
    analyzer = influence._analyzer(pipe.model, pipe.store.kron_root, pipe.device)
    data, bs = influence._dataset(p.x_train, p.y_train), batch_size(pipe.device)
    args = influence.factor_arguments(pipe.recipe.precision)
    out = {}
    for stage, run in (
            ("covariance", lambda: analyzer.fit_covariance_matrices("profile", data, per_device_batch_size=bs,
                                                                    factor_args=args, overwrite_output_dir=True)),
            ("eigendecomposition", lambda: analyzer.perform_eigendecomposition("profile", factor_args=args,
                                                                               overwrite_output_dir=True)),
            ("lambda", lambda: analyzer.fit_lambda_matrices("profile", data, per_device_batch_size=bs,
                                                            factor_args=args, overwrite_output_dir=True))):
        t = time.perf_counter()
        run()
        sync()
        out[stage] = round(time.perf_counter() - t, 1)
    args.eigendecomposition_dtype = torch.float32
    t = time.perf_counter()
    analyzer.perform_eigendecomposition("profile", factor_args=args, overwrite_output_dir=True)
    sync()
    out["eigendecomposition_fp32"] = round(time.perf_counter() - t, 1)
    return out


def write_results(path: Path, fig: dict) -> None:
    """Append this run to RESULTS.md (the file says "not yet measured" until a GPU has run this)."""
    lines = [f"\n## {fig.get('gpu', 'CPU (script check only)')} · {fig['date']}\n",
             f"torch {fig['torch']}, kronfluence {fig.get('kronfluence', '?')}, Python {fig['python']}; "
             f"precision {fig.get('precision')}, kronfluence batch {fig.get('influence_batch')} (factors) / "
             f"{2 * fig.get('influence_batch', 0)} (scores).\n",
             "| figure | value |", "| --- | --- |"]
    rows = [("training images", "n_train"), ("train (s)", "train_s"), ("epochs", "epochs"),
            ("clean accuracy", "clean_acc"), ("poison success", "poison_success"),
            ("EK-FAC factors (s)", "factors_s"), ("factor stages, apart (s)", "factor_stages_s"), ("queries in one pass", "queries"),
            ("scores, one batched pass (s)", "scores_s"), ("factors + scores (s)", "factors_plus_scores_s"),
            ("one query per pass (s each)", "one_query_s"),
            ("one at a time, extrapolated to all queries (s)", "one_at_a_time_extrapolated_s"),
            ("batched speed-up", "batching_speedup"), ("Δ-Influence", "delta_influence"),
            ("naive EK-FAC", "ekfac"), ("fp32 factors + scores (s)", "fp32_factors_plus_scores_s"),
            ("Δ-Influence, fp32", "fp32_delta_influence"), ("flagged set bf16 vs fp32 (Jaccard)", "flagged_overlap_jaccard"),
            ("original-query scores, bf16 vs fp32 (Pearson r)", "score_correlation_bf16_fp32"),
            *[(f"λ from {k[7:]} points: factors (s), scores (s), flagged-set Jaccard vs all", k) for k in fig
              if k.startswith("lambda_")],
            ("fp32 comparison", "fp32_skipped"), ("torchrun against one process (built-in experiment)", "torchrun"),
            ("whole script (s)", "total_s")]
    def fmt(v):
        if isinstance(v, dict):
            return ", ".join(f"{k} {x:.3g}" if isinstance(x, float) else f"{k} {x}" for k, x in v.items())
        return ", ".join(map(str, v)) if isinstance(v, list) else str(v)

    lines += [f"| {name} | {fmt(fig[key])} |" for name, key in rows if key in fig]
    if "detectors" in fig:
        lines += [f"| {fig.get('attack', 'badnet')}: {d} (TPR / precision / F1, flagged) | {r['tpr']:.3f} / "
                  f"{r['precision']:.3f} / {r['f1']:.3f}, {r['n_flagged']} |" for d, r in fig["detectors"].items()]
        lines.append(f"| detectors after scoring (s) | {fig['detectors_s']} |")
    text = path.read_text() if path.exists() else "# GPU results\n"
    path.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
