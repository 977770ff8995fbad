"""The fine-tuning example, end to end (docs/finetune.md runs it):

    python3 python/examples/finetune/run.py all --work out/finetune

Steps (each also a subcommand, in this order):
  prepare   render clips with the C++ renderer (tpdiff-render-clips), fit the latent
            autoencoder, encode the training and held-out latents, train the SentencePiece
            vocabulary of the captions (spm_train)
  pretrain  ordinary flow-matching training (shift 2, one stage at full frame rate): the
            "stock" model a user starts from, trained without knowing about stages
  finetune  the same model fine-tuned with the kit (3 stages, alignment, per-sample stages)
  losses    stage-wise loss of both models on held-out latents with fixed draws
  export    both models as latent packages with the export kit (tpdiff_kit.export)
  evaluate  sample the eval prompts from the packages with the reference sampler
            (tpdiff_kit.reference): (a) the starting model, vanilla; (b) the starting model,
            TPDiff stages; (c) the fine-tuned model, TPDiff stages; score each with
            tpdiff-eval --videos (the project's caption-adherence detector)
  serve     the same three runs through the service: tpdiff-server and tpdiff-worker (the
            build's, or --server-binary/--worker-binary/--client-binary) serve both packages,
            each prompt and seed is a `tpdiff generate` job over gRPC returning PNG frames,
            scored with tpdiff-eval --videos; the served frames must equal the reference
            sampler's within one 8-bit level
  plot      the loss curves as an SVG
  bench     cost of one training step, ordinary vs TPDiff, and of the alignment solver

CPU only; at the default sizes about 20 minutes on one thread, 13 of them the ordinary
training. Figures go to <work>/report.json.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, HERE)

from tpdiff_kit import alignment  # noqa: E402
from tpdiff_kit import method  # noqa: E402
from tpdiff_kit import reference  # noqa: E402
from tpdiff_kit import safetensors  # noqa: E402
from tpdiff_kit.export import export_package  # noqa: E402
from tpdiff_kit.finetune import TPDiffTraining  # noqa: E402
from tpdiff_kit.package import LatentPackage  # noqa: E402
from tpdiff_kit.tokenizer import SentencePieceTokenizer  # noqa: E402
import serving  # noqa: E402
import shapes_latent as sl  # noqa: E402

SHIFT = 2.0
TIMESTEP_SCALE = 1000.0
CHANNELS = 16
STAGES = 3


MAX_TOKENS = 32
SPM_OPTIONS = ["--model_type=word", "--vocab_size=40", "--hard_vocab_limit=false",
               "--character_coverage=1.0", "--pad_id=0", "--eos_id=1", "--unk_id=2",
               "--bos_id=-1", "--num_threads=1"]


def schedule():
    return method.FlowMatching(shift=SHIFT, timestep_scale=TIMESTEP_SCALE)


def tokenizer(work):
    return SentencePieceTokenizer(os.path.join(work, "tokenizer.model"), MAX_TOKENS)


def manifest(name, ae):
    return {
        "name": name,
        "description": "Shapes clips in a 16-channel PCA latent space (example of "
                       "docs/finetune.md)",
        "frames": 16, "height": 32, "width": 32, "fps": 8,
        "stages": STAGES,
        "default_stage_steps": [8, 8, 8],
        "default_guidance_scale": 3.0,
        "schedule": {"type": "flow_matching", "shift": SHIFT, "timestep_scale": TIMESTEP_SCALE,
                     "prediction": "flow_velocity"},
        "tokenizer": {"kind": "sentencepiece", "max_tokens": MAX_TOKENS},
        "text_encoder": {"dim": 64, "dtype": "float32"},
        "denoiser": {"dtype": "float32"},
        "vae": {"latent_channels": CHANNELS, "temporal_factor": sl.TF, "spatial_factor": sl.SF,
                "causal_first_frame": False, "scale": ae.scale.tolist(), "shift": 0.0,
                "dtype": "float32"},
    }


def new_models(vocab_size):
    torch.manual_seed(0)
    return (sl.TextEncoder(vocab_size, dim=64, layers=1),
            sl.Denoiser(CHANNELS, ctx_dim=64, width=64, depth=3, timestep_scale=TIMESTEP_SCALE))


def report_update(work, **items):
    path = os.path.join(work, "report.json")
    data = json.load(open(path)) if os.path.exists(path) else {}
    data.update(items)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


# ---------------------------------------------------------------------------------------------


def cmd_prepare(a):
    os.makedirs(a.work, exist_ok=True)
    render = os.path.join(a.build, "train", "tpdiff-render-clips")
    latents, captions = [], []
    ae = None
    chunks = [(a.clips, 1, "train"), (a.heldout, 999, "heldout")]
    out = {}
    for count, seed, name in chunks:
        path = os.path.join(a.work, f"clips_{name}.safetensors")
        subprocess.run([render, f"--count={count}", f"--seed={seed}", f"--out={path}"],
                       check=True)
        tensors, meta = safetensors.load(path)
        video = tensors["video"]
        if ae is None:
            ae = sl.PcaAutoencoder.fit(video[:512], CHANNELS)
        with torch.no_grad():
            z = torch.cat([ae.encode(video[i:i + 256]) for i in range(0, len(video), 256)])
            recon = ae.decoder()(z[:64] / ae.scale[None, :, None, None, None])
        err = (recon - video[:64]).abs().mean().item()
        out[name] = {"latents": z, "captions": json.loads(meta["captions"])}
        os.remove(path)
        print(f"{name}: {count} clips -> latents {tuple(z.shape)}, "
              f"mean |reconstruction error| {err:.4f}")
    torch.save({"ae": ae.state(), **out}, os.path.join(a.work, "data.pt"))
    # The vocabulary: SentencePiece words of the training captions (relative paths, so the
    # model file does not record this machine's folders).
    with open(os.path.join(a.work, "captions.txt"), "w") as f:
        f.writelines(c + "\n" for c in out["train"]["captions"])
    subprocess.run(["spm_train", "--input=captions.txt", "--model_prefix=tokenizer"]
                   + SPM_OPTIONS, cwd=a.work, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    report_update(a.work, autoencoder={"channels": CHANNELS, "latent_shape": list(
        out["train"]["latents"].shape[1:])})


def load_data(work):
    data = torch.load(os.path.join(work, "data.pt"))
    ae = sl.PcaAutoencoder(**data["ae"])
    return ae, data


def train(a, mode):
    torch.set_num_threads(a.threads)
    ae, data = load_data(a.work)
    tok = tokenizer(a.work)
    enc, den = new_models(tok.vocab_size)
    if mode == "tpdiff":
        ckpt = torch.load(os.path.join(a.work, "pretrained.pt"))
        enc.load_state_dict(ckpt["encoder"])
        den.load_state_dict(ckpt["denoiser"])
        kit = TPDiffTraining(schedule(), num_stages=STAGES, prediction="flow_velocity")
        steps, lr, name = a.finetune_steps, a.finetune_lr, "finetuned"
    else:
        kit = TPDiffTraining(schedule(), num_stages=1, prediction="flow_velocity")
        steps, lr, name = a.pretrain_steps, a.lr, "pretrained"
    params = list(enc.parameters()) + list(den.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    latents, captions = data["train"]["latents"], data["train"]["captions"]
    gen = torch.Generator().manual_seed(1 if mode == "vanilla" else 2)
    log = []
    begin = time.time()
    for step in range(steps):
        idx = torch.randint(len(latents), (a.batch,), generator=gen)
        x0 = latents[idx]
        prompts = [captions[i] if torch.rand(1, generator=gen).item() >= 0.1 else ""
                   for i in idx.tolist()]
        tokens, mask = tok.encode(prompts)
        warm = min(1.0, (step + 1) / 100)
        for group in opt.param_groups:
            group["lr"] = lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        # --- the kit replaces the usual "draw t and noise, build x_t and target" ---
        ctx = enc(tokens, mask)
        batches = kit.draw_batches(x0, gen)
        preds = [den(b.x_t, b.timestep, b.stage_ids, ctx[b.indices], mask[b.indices])
                 for b in batches]
        loss = kit.loss(preds, batches)
        # ---------------------------------------------------------------------------
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        log.append((step + 1, loss.item(), time.time() - begin,
                    ";".join(f"{b.stage}:{len(b.indices)}" for b in batches)))
        if (step + 1) % 50 == 0 or step + 1 == steps:
            recent = sum(r[1] for r in log[-50:]) / len(log[-50:])
            print(f"{name} step {step + 1}/{steps} loss {recent:.4f} "
                  f"{time.time() - begin:.0f} s", flush=True)
    torch.save({"encoder": enc.state_dict(), "denoiser": den.state_dict()},
               os.path.join(a.work, f"{name}.pt"))
    with open(os.path.join(a.work, f"{name}_log.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "seconds", "stages"])
        w.writerows(log)
    report_update(a.work, **{f"{name}_training": {
        "steps": steps, "batch": a.batch, "lr": lr, "seconds": round(time.time() - begin, 1),
        "threads": a.threads, "final_loss_mean_of_last_50": sum(r[1] for r in log[-50:]) / 50}})


def cmd_pretrain(a):
    train(a, "vanilla")


def cmd_finetune(a):
    train(a, "tpdiff")


def load_models(work, name):
    enc, den = new_models(tokenizer(work).vocab_size)
    ckpt = torch.load(os.path.join(work, f"{name}.pt"))
    enc.load_state_dict(ckpt["encoder"])
    den.load_state_dict(ckpt["denoiser"])
    return enc.eval(), den.eval()


def cmd_losses(a):
    """Stage-wise loss on held-out latents, the same draws for both models."""
    torch.set_num_threads(a.threads)
    _, data = load_data(a.work)
    kit = TPDiffTraining(schedule(), num_stages=STAGES)
    vanilla = TPDiffTraining(schedule(), num_stages=1)
    x0 = data["heldout"]["latents"]
    tokens, mask = tokenizer(a.work).encode(data["heldout"]["captions"])
    result = {}
    for name in ("pretrained", "finetuned"):
        enc, den = load_models(a.work, name)
        row = {}
        with torch.no_grad():
            ctx = enc(tokens, mask)
            for label, k_kit, k in [("stage3", kit, 3), ("stage2", kit, 2), ("stage1", kit, 1),
                                    ("vanilla", vanilla, 1)]:
                total = 0.0
                for rep in range(a.loss_repeats):
                    gen = torch.Generator().manual_seed(500 + rep)
                    for i in range(0, len(x0), 64):
                        b = k_kit.draw_batch(x0[i:i + 64], gen, stage=k)
                        pred = den(b.x_t, b.timestep, b.stage_ids, ctx[i:i + 64], mask[i:i + 64])
                        total += k_kit.sample_losses(pred, b).sum().item()
                row[label] = total / (len(x0) * a.loss_repeats)
        row["tpdiff_mean"] = (row["stage1"] + row["stage2"] + row["stage3"]) / 3
        result[name] = row
        print(name, " ".join(f"{k} {v:.4f}" for k, v in row.items()))
    report_update(a.work, stage_losses=result)


def cmd_export(a):
    """Both models as latent packages, through the export kit (TorchScript, shape checks)."""
    ae, _ = load_data(a.work)
    for name in ("pretrained", "finetuned"):
        enc, den = load_models(a.work, name)
        export_package(os.path.join(a.work, f"shapes-latent-{name}"),
                       manifest(f"shapes-latent-{name}", ae), enc, den, ae.decoder(),
                       tokenizer_file=os.path.join(a.work, "tokenizer.model"))


def read_prompts(path, limit):
    out = []
    for line in open(path):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        caption, seed = line.split("\t")
        out.append((caption, int(seed)))
    return out[:limit]


def eval_setup(a):
    """The evaluation prompts (also written to <work>/eval_prompts.txt for tpdiff-eval) and
    the three runs: (label, model, steps per stage, sampler)."""
    prompts = []
    for name in a.prompt_files.split(","):
        prompts += read_prompts(os.path.join(ROOT, "models", "eval", name), None)
    prompts = prompts[:a.eval_prompts or None]
    prompts_file = os.path.join(a.work, "eval_prompts.txt")
    with open(prompts_file, "w") as f:
        f.writelines(f"{c}\t{s}\n" for c, s in prompts)
    steps = [a.stage_steps] * STAGES
    runs = [("a_pretrained_vanilla", "pretrained", [sum(steps)], "vanilla"),
            ("b_pretrained_tpdiff", "pretrained", steps, "tpdiff"),
            ("c_finetuned_tpdiff", "finetuned", steps, "tpdiff")]
    return prompts, prompts_file, steps, runs


def score(a, videos_path, prompts_file, out_dir, name, plan, sampler):
    """tpdiff-eval --videos on one run's videos: its totals and its one-line summary."""
    cmd = [os.path.join(a.build, "train", "tpdiff-eval"), f"--videos={videos_path}",
           f"--prompts={prompts_file}", f"--out={out_dir}", f"--sampler={sampler}",
           f"--model=shapes-latent-{name}", f"--stage-steps={','.join(map(str, plan))}",
           f"--guidance={a.guidance}"]
    summary = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    totals = json.load(open(os.path.join(out_dir, "results.json")))["totals"]
    return totals, summary.splitlines()[0].split(":", 1)[1].strip()


def reference_video(a, package, plan, caption, seed):
    """The reference sampler (tpdiff_kit.reference) on an exported package: [3, T, H, W]."""
    return reference.sample(package, caption, "", seed, a.guidance, plan, len(plan)).video[0]


def load_package(a, name):
    return LatentPackage(os.path.join(a.work, f"shapes-latent-{name}"))


def cmd_evaluate(a):
    torch.set_num_threads(a.threads)
    prompts, prompts_file, steps, runs = eval_setup(a)
    results = {}
    for label, name, plan, sampler in runs:
        package = load_package(a, name)
        begin = time.time()
        videos = [reference_video(a, package, plan, c, seed) for c, seed in prompts]
        seconds = (time.time() - begin) / len(prompts)
        path = os.path.join(a.work, f"{label}.safetensors")
        safetensors.save(path, {"video": torch.stack(videos)})
        totals, summary = score(a, path, prompts_file, os.path.join(a.work, label), name, plan,
                                sampler)
        totals["sampling_seconds_per_video"] = round(seconds, 3)
        results[label] = totals
        print(label, summary, f"| sampling {seconds:.2f} s/video", flush=True)
    report_update(a.work, adherence=results, eval={"prompts": len(prompts),
                                                   "stage_steps": steps,
                                                   "guidance": a.guidance})


def cmd_serve(a):
    """The three runs of `evaluate` through the service: tpdiff-server and tpdiff-worker
    serving both packages, every prompt and seed a `tpdiff generate` job (PNG frames), the
    returned frames scored with tpdiff-eval --videos; the frames of the first
    --parity-prompts prompts of each run compared with the reference sampler's."""
    torch.set_num_threads(a.threads)
    prompts, prompts_file, steps, runs = eval_setup(a)
    served = os.path.join(a.work, "served")
    models = [f"shapes-latent-{name}" for name in ("pretrained", "finetuned")]
    results, parity = {}, {}
    with serving.Service(a.server_binary, a.worker_binary, a.client_binary, a.work, models,
                         os.path.join(served, "logs"), threads=a.threads) as service:
        for label, name, plan, sampler in runs:
            model = f"shapes-latent-{name}"
            spec = json.load(open(os.path.join(a.work, model, "model.json")))
            archives = os.path.join(served, f"{label}-frames")
            os.makedirs(archives, exist_ok=True)

            def job(i):
                caption, seed = prompts[i]
                return service.generate(os.path.join(archives, f"{i:04d}.zip"), model, caption,
                                        seed, spec["frames"], spec["height"], spec["width"],
                                        plan, a.guidance, sampler)

            begin = time.time()
            with ThreadPoolExecutor(a.serve_clients) as pool:
                client_seconds = list(pool.map(job, range(len(prompts))))
            wall = (time.time() - begin) / len(prompts)
            # [N, T, H, W, 3] uint8, as the service returned them
            frames = torch.stack([serving.read_png_frames(os.path.join(archives, f"{i:04d}.zip"))
                                  for i in range(len(prompts))])
            path = os.path.join(served, f"{label}.safetensors")
            safetensors.save(path, {"video": frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1})
            totals, summary = score(a, path, prompts_file, os.path.join(served, label), name,
                                    plan, sampler)
            totals["wall_seconds_per_video"] = round(wall, 3)
            totals["client_seconds_per_job"] = round(sum(client_seconds) / len(prompts), 3)
            results[label] = totals

            # The same jobs in the reference sampler: 8-bit frames within one level.
            count = min(a.parity_prompts or len(prompts), len(prompts))
            package = load_package(a, name)
            diff = torch.stack([
                (reference.to_uint8_frames(reference_video(a, package, plan, c, seed)[None])
                 .int() - frames[i].int()).abs() for i, (c, seed) in enumerate(prompts[:count])])
            parity[label] = {"prompts": count, "max_level_difference": int(diff.max()),
                             "pixel_values_differing": round(float((diff > 0).float().mean()), 6),
                             "identical_videos": int((diff.flatten(1).max(1).values == 0).sum())}
            print(label, summary, f"| served {wall:.2f} s/video | vs reference on {count} "
                  f"prompts: max {parity[label]['max_level_difference']} levels, "
                  f"{parity[label]['identical_videos']} identical", flush=True)
            if parity[label]["max_level_difference"] > 1:
                raise RuntimeError(f"{label}: served frames differ from the reference sampler's "
                                   f"by {parity[label]['max_level_difference']} levels (> 1)")
    report_update(a.work, served={"adherence": results, "reference_parity": parity,
                                  "prompts": len(prompts), "stage_steps": steps,
                                  "guidance": a.guidance, "clients": a.serve_clients,
                                  "worker_threads": a.threads})


# ---------------------------------------------------------------------------------------------


def cmd_plot(a):
    def read(name):
        rows = list(csv.DictReader(open(os.path.join(a.work, f"{name}_log.csv"))))
        return [float(r["loss"]) for r in rows]

    pre, fine = read("pretrained"), read("finetuned")

    def smooth(v, n=25):
        return [sum(v[max(0, i - n + 1):i + 1]) / len(v[max(0, i - n + 1):i + 1])
                for i in range(len(v))]

    pre_s, fine_s = smooth(pre), smooth(fine)
    total = len(pre) + len(fine)
    top = max(pre_s[len(pre_s) // 20:] + fine_s) * 1.1
    W, H, L, B = 640, 320, 56, 40

    def xy(i, v):
        return L + (W - L - 10) * i / total, H - B - (H - B - 20) * min(v, top) / top

    def path(vals, offset):
        return " ".join(("M" if i == 0 else "L") + "%.1f,%.1f" % xy(i + offset, v)
                        for i, v in enumerate(vals))

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 10}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="20" x2="{L}" y2="{H - B}" stroke="black"/>']
    for j in range(5):
        v = top * j / 4
        y = xy(0, v)[1]
        svg.append(f'<text x="{L - 4}" y="{y + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for s in range(0, total + 1, max(100, total // 6 // 100 * 100)):
        x = xy(s, 0)[0]
        svg.append(f'<text x="{x:.1f}" y="{H - B + 14}" text-anchor="middle">{s}</text>')
    xb = xy(len(pre), 0)[0]
    svg += [f'<line x1="{xb:.1f}" y1="20" x2="{xb:.1f}" y2="{H - B}" stroke="#999" '
            f'stroke-dasharray="4,3"/>',
            f'<path d="{path(pre_s, 0)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>',
            f'<path d="{path(fine_s, len(pre))}" fill="none" stroke="#d62728" '
            f'stroke-width="1.5"/>',
            f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">training step '
            f'(loss: mean of the last 25 steps)</text>',
            f'<text x="{L + 8}" y="14">ordinary flow matching (1 stage)</text>',
            f'<text x="{W - 12}" y="34" text-anchor="end" fill="#d62728">after the dashed '
            f'line: TPDiff fine-tuning (3 stages, stage-wise loss)</text>', '</svg>']
    out = os.path.join(a.work, "loss.svg")
    with open(out, "w") as f:
        f.write("\n".join(svg))
    print("wrote", out)


def step_costs(enc, den, x0, tokens, mask, sched, causal, steps):
    """Mean CPU seconds per training step (forward, backward, AdamW) of ordinary training (one
    stage) and TPDiff (3 stages: per sample with and without alignment, per batch), the four
    interleaved step by step so that changes in the machine's load hit them alike."""
    params = list(enc.parameters()) + list(den.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def kit(stages, align=True):
        return TPDiffTraining(sched, num_stages=stages, causal_first_frame=causal,
                              align_noise=align)

    configs = {"ordinary": (kit(1), False), "tpdiff_per_sample": (kit(STAGES), False),
               "tpdiff_per_batch": (kit(STAGES), True),
               "tpdiff_per_sample_no_alignment": (kit(STAGES, False), False)}

    def step(k, per_batch):
        ctx = enc(tokens, mask)
        batches = [k.draw_batch(x0, gen)] if per_batch else k.draw_batches(x0, gen)
        preds = [den(b.x_t, b.timestep, b.stage_ids, ctx[b.indices], mask[b.indices])
                 for b in batches]
        loss = k.loss(preds, batches)
        opt.zero_grad()
        loss.backward()
        opt.step()

    times = {k: [] for k in configs}
    for _ in range(3):  # warm-up
        for k, per_batch in configs.values():
            step(k, per_batch)
    for _ in range(steps):
        for name, (k, per_batch) in configs.items():
            # CPU time of this (one-thread) process: on a shared machine wall time mostly
            # measures the neighbours.
            t0 = time.process_time()
            step(k, per_batch)
            times[name].append(time.process_time() - t0)
    # The ratio is taken round by round (the four steps of a round ran back to back, under
    # the same load) and averaged: a mean, because stage draws make a step's time a mixture
    # of the stages' times.
    ordinary = times["ordinary"]
    return {k: {"mean_s": round(sum(v) / len(v), 5),
                "ratio_to_ordinary": round(sum(x / o for x, o in zip(v, ordinary)) / len(v), 3)}
            for k, v in times.items()}


def cmd_bench(a):
    """Training step cost, ordinary vs TPDiff, on this example's model and on the miniature
    model of python/examples/miniature (17 frames -> 5 causal latent frames of 8 channels at
    8x8, flow with shift 3, random weights); the alignment solver's cost."""
    torch.set_num_threads(a.threads)
    tok = tokenizer(a.work)
    enc, den = new_models(tok.vocab_size)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(a.batch, CHANNELS, 8, 8, 8, generator=gen)
    tokens, mask = tok.encode(["a red circle moving right"] * a.batch)
    costs = {"example": step_costs(enc, den, x0, tokens, mask, schedule(), False,
                                   a.bench_steps)}
    sys.path.insert(0, os.path.join(ROOT, "python", "examples", "miniature"))
    import model as miniature  # noqa: E402
    torch.manual_seed(0)
    enc, den = miniature.TextEncoder(200), miniature.DiT(latent_channels=8, causal=True)
    x0 = torch.randn(a.batch, 8, 5, 8, 8, generator=gen)
    tokens = torch.randint(3, 200, (a.batch, 32), generator=gen)
    mask = (torch.arange(32)[None] < 8).long().expand(a.batch, 32)
    costs["miniature"] = step_costs(enc, den, x0, tokens, mask,
                                    method.FlowMatching(3.0, 1000.0), True, a.bench_steps)
    solver = {}
    for n in (16, 64, 256):
        videos = torch.randn(n, CHANNELS, 2, 8, 8, generator=gen)
        noise = torch.randn(n, CHANNELS, 2, 8, 8, generator=gen)
        reps = 5 if n < 256 else 3
        t0 = time.perf_counter()
        for _ in range(reps):
            alignment.align_noise(videos, noise)
        solver[str(n)] = round((time.perf_counter() - t0) / reps, 5)
    for model_name, out in costs.items():
        for k, v in out.items():
            print(f"{model_name:10s} {k:32s} {v['mean_s'] * 1000:8.1f} ms/step  "
                  f"x{v['ratio_to_ordinary']:.3f}")
    print("alignment (cdist + exact assignment), seconds per batch:", solver)
    report_update(a.work, step_cost={"batch": a.batch, "threads": a.threads,
                                     "steps": a.bench_steps, **costs},
                  alignment_seconds=solver)


# serve's executables: flag --<name>-binary, else the environment variable, else the build's.
SERVICE_BINARIES = [("server", "TPDIFF_SERVER", "server/tpdiff-server"),
                    ("worker", "TPDIFF_WORKER", "worker/tpdiff-worker"),
                    ("client", "TPDIFF_CLIENT", "client/tpdiff")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["all", "prepare", "pretrain", "finetune", "losses",
                                       "export", "evaluate", "serve", "plot", "bench"])
    p.add_argument("--work", default=os.path.join(ROOT, "out", "finetune"))
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--clips", type=int, default=3072)
    p.add_argument("--heldout", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--pretrain-steps", type=int, default=5000)
    p.add_argument("--finetune-steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    # One thread: on a busy 2-core machine two OpenMP threads made a step 10x slower.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--loss-repeats", type=int, default=2)
    p.add_argument("--prompt-files", default="prompts-single.txt,prompts-single-validation.txt",
                   help="prompt lists of models/eval/, comma-separated")
    p.add_argument("--eval-prompts", type=int, default=0, help="the first N prompts; 0 = all")
    p.add_argument("--stage-steps", type=int, default=8)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--bench-steps", type=int, default=100)
    for binary, env, path in SERVICE_BINARIES:
        p.add_argument(f"--{binary}-binary", default=os.environ.get(env),
                       help=f"serve: the {path.split('/')[1]} executable (default: ${env}, "
                            f"else <build>/{path})")
    p.add_argument("--serve-clients", type=int, default=2,
                   help="serve: tpdiff generate processes at once (the worker runs one job "
                        "at a time; a second client overlaps its start-up)")
    p.add_argument("--parity-prompts", type=int, default=0,
                   help="serve: prompts per run whose served frames are compared with the "
                        "reference sampler's; 0 = all")
    a = p.parse_args()
    for binary, _, path in SERVICE_BINARIES:
        if not getattr(a, f"{binary}_binary"):
            setattr(a, f"{binary}_binary", os.path.join(a.build, path))
    commands = {"prepare": cmd_prepare, "pretrain": cmd_pretrain, "finetune": cmd_finetune,
                "losses": cmd_losses, "export": cmd_export, "evaluate": cmd_evaluate,
                "serve": cmd_serve, "plot": cmd_plot, "bench": cmd_bench}
    if a.command == "all":
        for name in ("prepare", "pretrain", "finetune", "losses", "export", "evaluate", "serve",
                     "plot", "bench"):
            commands[name](a)
    else:
        commands[a.command](a)


if __name__ == "__main__":
    main()
