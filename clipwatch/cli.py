"""The `clipwatch` command: serve, replay, train, export, calibrate, evaluate, bench.

Every expected failure (bad input, missing files, a model that does not match its sidecar)
ends with one line on stderr and a non-zero exit; torch is imported only by the commands
that need it (train, export), so replay runs with numpy, OpenCV and ONNX Runtime alone.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

from clipwatch import __version__
from clipwatch.errors import ClipwatchError
from clipwatch.model.variants import DEVICES, VARIANT_HELP, VARIANTS
from clipwatch.paths import DEFAULT_MODEL, SAMPLE_CLIP

log = logging.getLogger("clipwatch")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _polygon(text: str):
    """'x,y,x,y,x,y,...' (frame pixels) -> a checked polygon for --mask."""
    from clipwatch.model.regions import polygon_problem

    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not x,y,x,y,... in whole pixels") \
            from None
    if len(values) % 2 or min(values, default=0) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not pairs of non-negative x,y")
    points = tuple(zip(values[::2], values[1::2], strict=True))
    problem = polygon_problem(points)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return points


def _model(args: argparse.Namespace):
    """The model and the reconstructor of its variant: the same one `serve` runs."""
    from clipwatch.model.detector import DetectorOptions
    from clipwatch.model.reconstructors import load_model

    return load_model(args.model, DetectorOptions(device=args.device,
                                                  intra_op_threads=args.threads), args.variant)


def _add_model_options(parser: argparse.ArgumentParser, variant: bool = True) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="where ONNX Runtime runs (auto: CUDA if really available, else CPU)")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNX Runtime intra-op threads (0: one per core)")
    if variant:
        parser.add_argument("--variant", default="auto", choices=VARIANTS,
                            help=f"inference variant, as the service's model.variant: "
                                 f"{VARIANT_HELP} (default auto, what serve runs)")


def write_scores_csv(report, path: Path) -> None:
    import numpy as np

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            # regularity_live: the service's verdict, empty where it gives none (warm-up).
            writer.writerow(["clip", "frame", "timestamp_s", "error", "regularity_paper",
                             "regularity_causal", "abnormal_gt", "regularity_live"])
            for clip in report.clips:
                causal = clip.causal(report.calibration)
                for i, frame in enumerate(clip.frames):
                    writer.writerow([
                        clip.name, int(frame), f"{clip.timestamps[i]:.3f}", f"{clip.errors[i]:.3f}",
                        f"{clip.paper[i]:.5f}", "" if causal is None else f"{causal[i]:.5f}",
                        "" if clip.abnormal is None else int(clip.abnormal[i]),
                        "" if clip.live is None or np.isnan(clip.live[i])
                        else f"{clip.live[i]:.5f}",
                    ])
    except OSError as exc:
        raise ClipwatchError(f"cannot write {path}: {exc.strerror or exc}") from None


def print_report(report, per_frame: bool) -> None:
    cal = report.calibration
    if per_frame:
        print(f"{'clip':>10} {'frame':>6} {'e(t)':>10} {'paper':>7} {'causal':>7} {'gt':>3}")
        for clip in report.clips:
            causal = clip.causal(cal)
            for i, frame in enumerate(clip.frames):
                gt = "" if clip.abnormal is None else ("ab" if clip.abnormal[i] else "-")
                c = "" if causal is None else f"{causal[i]:.3f}"
                print(f"{clip.name:>10} {int(frame):>6} {clip.errors[i]:>10.1f} "
                      f"{clip.paper[i]:>7.3f} {c:>7} {gt:>3}")
    for clip in report.clips:
        causal = clip.causal(cal)
        below = "" if causal is None else f", {int((causal < cal.threshold).sum())} below threshold"
        print(f"{clip.name}: {len(clip.errors)} frames, mean e(t) {clip.errors.mean():.1f}, "
              f"min paper regularity {clip.paper.min():.3f}{below}")
    clips_per_s = report.clips_scored / report.seconds if report.seconds else 0.0
    print(f"scored {report.frames} frames ({report.clips_scored} clips) in {report.seconds:.1f} s: "
          f"{report.frames / report.seconds:.1f} frames/s, {clips_per_s:.1f} clips/s")
    m = report.metrics
    if m:
        causal = (f", causal {m['auc_causal']:.4f} (EER {m['eer_causal']:.4f})"
                  if "auc_causal" in m else ", causal n/a (model not calibrated)")
        print(f"frame-level AUC over {int(m['frames_labelled'])} frames "
              f"({int(m['frames_abnormal'])} abnormal): paper {m['auc_paper']:.4f} "
              f"(EER {m['eer_paper']:.4f}){causal}")
    elif any(c.abnormal is not None for c in report.clips):
        print("AUC not defined: the ground truth has only one class for these frames")
    else:
        print("no ground truth for this source: no AUC")


def cmd_replay(args: argparse.Namespace) -> int:
    from clipwatch.plots import plot_regularity
    from clipwatch.replay import replay, replay_targets

    targets = replay_targets(str(args.source))
    model = _model(args)
    heatmaps = Path(args.heatmaps) if args.heatmaps else None
    report = replay(targets, model, stride=args.stride, realtime=args.realtime,
                    batch_size=args.batch, heatmap_dir=heatmaps, masks=tuple(args.mask or ()))
    per_frame = args.print_frames if args.print_frames is not None else len(report.clips) == 1
    print_report(report, per_frame)
    if args.out:
        write_scores_csv(report, Path(args.out))
        print(f"scores written to {args.out}")
    if args.plot:
        title = f"{Path(str(args.source)).name} with {Path(args.model).name}"
        plot_regularity(report.clips, report.calibration, Path(args.plot), title)
        print(f"plot written to {args.plot}")
    if heatmaps:
        print(f"heatmaps written to {heatmaps}/")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from clipwatch.model.train import TrainConfig, train

    config = TrainConfig(data=str(args.data), steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, lr_schedule=args.lr_schedule, holdout=tuple(args.holdout),
                         frame_strides=tuple(args.frame_strides),
                         pseudo_anomalies=args.pseudo_anomalies,
                         pseudo_strides=tuple(args.pseudo_strides),
                         pseudo_box_share=args.pseudo_box_share, init=args.init,
                         snapshot_every=args.snapshot_every, seed=args.seed,
                         checkpoint_every_s=args.checkpoint_minutes * 60, bf16=not args.fp32)
    result = train(config, Path(args.out), resume=args.resume, max_minutes=args.minutes,
                   stop_at=args.until)
    print(f"checkpoint written to {result.checkpoint} (step {result.step})")
    if result.losses:
        from clipwatch.plots import plot_loss

        curve = plot_loss(result.losses, Path(args.out) / "loss.png",
                          f"{Path(args.data).name}: {result.step} steps")
        print(f"loss curve written to {curve}")
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    import signal
    import threading

    from clipwatch.learn import LearnSettings, LearnStopped, learn

    settings = LearnSettings(source=args.source, out=Path(args.out), minutes=args.minutes,
                             from_model=Path(args.from_model), scratch=args.scratch,
                             scene=args.scene or "", train_minutes=args.train_minutes,
                             steps=args.steps, far=args.far, fps=args.fps,
                             work=Path(args.work) if args.work else None,
                             chunk_seconds=args.chunk_seconds, seed=args.seed,
                             threads=args.threads)
    # SIGTERM (a service stopping its job, a scheduler) ends training at the next step,
    # checkpointed: the same command resumes it.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        report = learn(settings, should_stop=stop.is_set)
    except LearnStopped as exc:
        print(f"clipwatch: {exc}", file=sys.stderr)
        return 3
    f = report.footage
    print(f"recorded {f['frames']} frames ({f['minutes']:.1f} min at {f['fps']:.1f} frames/s, "
          f"{f['bytes'] / 1e6:.1f} MB) in {f['chunks']} chunks: train "
          f"{len(report.split['train'])}, calibrate {len(report.split['calibrate'])}, judge "
          f"{len(report.split['judge'])}")
    start = "random weights" if settings.scratch else settings.from_model.name
    print(f"trained {report.steps} steps from {start} in "
          f"{report.train_seconds / 60:.1f} min (loss {report.losses['first']:.5f} -> "
          f"{report.losses['last']:.5f})")
    cal = report.calibration
    print(f"calibrated on the calibration chunks: e_lo {cal['e_lo']:.1f}, e_hi "
          f"{cal['e_hi']:.1f}, threshold {cal['threshold']:.4f} at "
          f"{cal['false_alarm_rate']:.1%} false alarms per frame")
    for label, j in (("learned", report.new), ("before", report.before)):
        if j is not None:
            print(f"{label} {j.model} on the judge chunks ({j.seconds / 60:.1f} min): "
                  f"mean e(t) {j.mean_error:.1f}, {j.false_alarm_rate:.2%} of frames below its "
                  f"threshold {j.threshold:.3f}, {j.alerts} alerts ({j.alerts_per_hour:.1f} "
                  "per hour)")
    if report.scoring_scores:
        print("scoring chosen on the validation measure: " + ", ".join(
            f"{name} {score:.4f}" for name, score in report.scoring_scores.items())
            + f" -> {report.scoring}")
    print(f"model written to {settings.out} (+ sidecar, fast parts) in "
          f"{report.seconds / 60:.1f} min; report in {settings.work_dir / 'report.json'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import numpy as np

    from clipwatch.model.export import export_onnx
    from clipwatch.model.fast_export import export_parts, write_manifest
    from clipwatch.model.sidecar import read_sidecar

    report = export_onnx(Path(args.checkpoint), Path(args.out), name=args.name)
    print(f"exported {report.onnx_path} (+ {report.sidecar_path.name}); ONNX Runtime vs PyTorch "
          f"max abs difference {report.max_abs_diff:.2e} over {report.parity_clips} random clips")
    # The parts the live service runs by default (each frame encoded once); int8 copies need
    # normal footage to calibrate on: scripts/make_fast_parts.py.
    spec = read_sidecar(report.onnx_path).input_spec
    shape = (2, spec.clip_length, 1, spec.size, spec.size)
    clips = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    diffs = export_parts(report.onnx_path, clips)
    manifest = write_manifest(report.onnx_path, diffs, [])
    print(f"fast parts: {manifest.name}; largest difference from the full network "
          f"{max(diffs.values()):.2e}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from clipwatch.evaluate import calibrate_scored, normal_targets, score_clips
    from clipwatch.model.scoring_options import ScoringOptions
    from clipwatch.model.sidecar import write_sidecar

    model = _model(args)
    scoring = ScoringOptions.parse(args.scoring) if args.scoring else model.sidecar.scoring
    targets = normal_targets(args.normal_data, args.clips)
    normal = score_clips(targets, model, scoring, () if scoring.overlap else None,
                         "normal clips")
    data = f"{args.normal_data} clips {', '.join(t.name for t in targets)}"
    calibration = calibrate_scored(normal, scoring, args.far, data)
    detector = model.detector
    detector.sidecar.calibration = calibration
    write_sidecar(Path(args.model), detector.sidecar)
    print(f"calibrated {scoring.name} on {calibration.frames} normal frames: "
          f"e_lo {calibration.e_lo:.1f}, e_hi {calibration.e_hi:.1f}, threshold "
          f"{calibration.threshold:.4f} at {calibration.false_alarm_rate:.1%} false alarms "
          f"per frame")
    return 0


def write_json(path: Path, data: dict) -> None:
    import json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise ClipwatchError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"results written to {path}")


def cmd_validate(args: argparse.Namespace) -> int:
    from clipwatch.validation import validate

    model = _model(args)
    clips = args.clips or model.sidecar.provenance.get("held_out_clips") or []
    if not clips:
        raise ClipwatchError("name the held-out normal clips with --clips (the model's sidecar "
                             "names none)")
    from clipwatch.model.scoring_options import ScoringOptions

    scoring = ScoringOptions.parse(args.scoring) if args.scoring else None
    result = validate(model, args.normal_data, [str(c) for c in clips], scoring=scoring)
    print(f"validation on held-out normal clips {', '.join(result.clips)} "
          f"({model.variant}): AUC fast {result.fast_auc:.4f}, AUC fast box "
          f"{result.fast_box_auc:.4f}, heatmap peak on the fast box {result.fast_box_peak:.4f}, "
          f"normal error {result.normal_error_mean:.1f}; score {result.score:.4f}")
    if result.alerts is not None:
        a = result.alerts
        print(f"alerts {a['alerts']}: {a['events_detected']}/{a['events']} synthetic events "
              f"detected, {a['alerts_per_detected_event']} alerts per detected event, "
              f"{a['false_alerts']} false, median delay {a['median_delay_frames']} frames")
    if args.json:
        write_json(Path(args.json), result.to_dict())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from clipwatch.evaluate import evaluate
    from clipwatch.model.scoring_options import ScoringOptions
    from clipwatch.plots import plot_regularity, plot_roc

    model = _model(args)
    scoring = ScoringOptions.parse(args.scoring) if args.scoring else None
    report = evaluate(model, args.ucsd_root, clip_names=args.clips,
                      normal_data=args.normal_data, normal_names=args.normal_clips,
                      compare=not args.no_compare, scoring=scoring, masks=args.masks)
    result = report.to_json()
    if report.variants:
        print(f"{'scoring':<28} {'AUC paper':>9} {'EER paper':>9} {'AUC causal':>10} "
              f"{'EER causal':>10}")
        for variant in sorted(result["variants"], key=lambda v: -v.get("auc_paper", 0)):
            print(f"{variant['name']:<28} {variant.get('auc_paper', float('nan')):>9.4f} "
                  f"{variant.get('eer_paper', float('nan')):>9.4f} "
                  f"{variant.get('auc_causal', float('nan')):>10.4f} "
                  f"{variant.get('eer_causal', float('nan')):>10.4f}")
    causal = result["auc_causal"]
    print(f"{report.scoring.name} (the model's scoring) over {result['frames']} frames of "
          f"{result['clips']} clips ({result['frames_abnormal']} abnormal): AUC paper "
          f"{result['auc_paper']:.4f}, EER {result['eer']:.4f}; AUC causal "
          + (f"{causal:.4f}, EER {result['eer_causal']:.4f}" if causal is not None
             else "n/a (no calibration)"))
    print(quality_line(result))
    if args.json:
        write_json(Path(args.json), result)
    if args.plots:
        folder = Path(args.plots)
        for clip in report.clips:
            plot_regularity([clip], report.calibration, folder / f"regularity_{clip.name}.png",
                            f"{clip.name}: {report.scoring.name}")
        plot_roc(report.clips, report.calibration, folder / "roc.png",
                 f"{Path(args.model).name} on {Path(args.ucsd_root).name}")
        print(f"plots written to {folder}/")
    return 0


def quality_line(result: dict) -> str:
    """evaluate's detection-quality figures on one line."""
    def num(value, digits=4):
        return "n/a" if value is None else f"{value:.{digits}f}"

    parts = [f"AUC paper (min-max) {num(result['auc_paper_minmax'])}"]
    loc = result.get("localization")
    parts.append(f"heatmap peak in mask {num(loc['peak_in_mask'])} of {loc['frames']} frames, "
                 f"pixel AUC {num(loc['pixel_auc'])}" if loc else "localization n/a (no masks)")
    alerts = result.get("alerts")
    parts.append(f"alerts {alerts['alerts']}: {alerts['events_detected']}/{alerts['events']} "
                 f"events detected, {num(alerts['alerts_per_detected_event'], 2)} alerts per "
                 f"detected event, {alerts['false_alerts']} false, median delay "
                 f"{num(alerts['median_delay_frames'], 1)} frames"
                 if alerts else "alerts n/a (no calibration)")
    return "; ".join(parts)


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line naming the problem (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from clipwatch.model.bench import VARIANT_TEXT, format_table, run_bench
    from clipwatch.model.detector import DetectorOptions

    if args.cluster:
        return cmd_bench_cluster(args)
    variants = tuple(args.variants or VARIANT_TEXT)  # the reference first, as always
    unknown = [v for v in variants if v not in VARIANT_TEXT]
    if unknown:
        raise ClipwatchError(f"unknown variant {unknown[0]!r} (use {', '.join(VARIANT_TEXT)})")
    if args.auc and not Path(args.auc).is_dir():
        raise ClipwatchError(f"--auc: {args.auc} is not a folder (give a UCSD root)")
    options = DetectorOptions(device=args.device, intra_op_threads=args.threads)
    report = run_bench(Path(args.model), Path(args.frames), options,
                       Path(args.auc) if args.auc else None, variants,
                       args.count, log=lambda text: log.info("%s", text))
    print(format_table(report))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise ClipwatchError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    return 0


def cmd_bench_cluster(args: argparse.Namespace) -> int:
    """`bench --cluster`: clips/s against 1, 2 and 4 scorer replicas (cluster/bench.py)."""
    import json

    from clipwatch.cluster.bench import format_scaling, run_cluster_bench
    from clipwatch.cluster.runtime import check_cluster_extra

    check_cluster_extra()  # one line where Ray is missing (the modules import it lazily)
    report = run_cluster_bench(Path(args.model), Path(args.frames), cameras=args.cameras,
                               replicas=args.replicas, seconds=args.seconds,
                               stand_in_batch_s=args.stand_in_ms / 1000.0,
                               real_model=not args.stand_in_only,
                               log=lambda text: log.info("%s", text))
    print(format_scaling(report))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise ClipwatchError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    return 0


def cmd_auth(args: argparse.Namespace) -> int:
    """Print a config snippet for a new API token or user; secrets are hashed before print."""
    import getpass
    import re

    from clipwatch.config import ACCOUNT_NAME_PATTERN
    from clipwatch.server.auth import hash_password, hash_token, new_token

    if not re.fullmatch(ACCOUNT_NAME_PATTERN, args.name):
        raise ClipwatchError(f"name {args.name!r}: use 1-64 letters, digits, _ . @ -")
    if args.kind == "token":
        token = new_token()
        print(f"# the token (shown once; give it to {args.name}):\n# {token}")
        print(f"auth:\n  tokens:\n    - name: {args.name}\n      role: {args.role}\n"
              f"      sha256: \"{hash_token(token)}\"")  # quoted: YAML reads digits as a number
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ClipwatchError("the password must be at least 8 characters")
    print(f"auth:\n  users:\n    - name: {args.name}\n      role: {args.role}\n"
          f"      password: \"{hash_password(password)}\"")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from clipwatch.server.run import serve, serve_config

    config = serve_config(args.config, args.source, args.loop, args.stride, args.host, args.port,
                          args.model, args.storage, args.device, args.threads)
    return serve(config, args.config)


def cmd_cluster(args: argparse.Namespace) -> int:
    """`clipwatch cluster status|down --config site.yaml`: a cluster site's workers."""
    from clipwatch.config import load_config

    config = load_config(args.config)
    if config.cluster is None:
        raise ClipwatchError(f"{args.config} has no cluster section: it runs as one process")
    from clipwatch.cluster import runtime

    runtime.check_cluster_extra()
    if config.cluster.address == "local":
        raise ClipwatchError("cluster.address is 'local': that cluster lives inside its web "
                             "process and goes with it")
    try:
        runtime.connect(config)
    except Exception as exc:  # Ray's own error: unreachable head, version mismatch
        raise ClipwatchError(f"cannot join the Ray cluster at {config.cluster.address}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             ) from None
    if args.action == "down":
        runtime.stop_site(config)
        print(f"site {config.cluster.namespace}: camera workers stopped, scorers deleted")
        return 0
    for name, status in runtime.site_status(config).items():
        print(f"{name}: {status}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="clipwatch", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"clipwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)

    p = sub.add_parser("serve", help="the live service: cameras, alerts, API and viewer "
                                     "(no arguments: a demo camera)")
    p.add_argument("--config", help="YAML config (cameras, model, storage, server, alerts)")
    p.add_argument("--source", action="append", default=[],
                   help="add a camera: URL, video, frames folder or webcam index (repeatable)")
    p.add_argument("--loop", action="store_true", help="replay --source files in a loop")
    p.add_argument("--stride", type=_positive_int, help="stride of the --source cameras")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--model", help="ONNX model with its .json sidecar (default: bundled)")
    p.add_argument("--storage", help="folder for the event database and snapshots")
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (0: per core)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("cluster", help="a cluster site's camera workers: status, or down "
                                       "(stop them and delete the scorers)")
    p.add_argument("action", choices=["status", "down"])
    p.add_argument("--config", required=True, help="the site config (with a cluster section)")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("auth", help="make an API token or a user login for the config")
    p.add_argument("kind", choices=["token", "password"],
                   help="token: a new API token; password: a user (password read from stdin)")
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=["viewer", "admin"], default="viewer")
    p.set_defaults(func=cmd_auth)

    p = sub.add_parser("bench", help="measure every inference variant: clips/s, frames/s at "
                                     "stride 1, latency, memory, AUC")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="ONNX model with its parts")
    p.add_argument("--frames", default=str(SAMPLE_CLIP), help="clip folder to stream")
    p.add_argument("--count", type=_positive_int, default=120, help="frames to stream")
    p.add_argument("--auc", metavar="UCSD_ROOT", help="also score the Ped2 test set per variant")
    measurable = ", ".join(v for v in VARIANTS if v != "auto")
    p.add_argument("--variants", nargs="+", help=f"variants to measure (default all: "
                                                  f"{measurable})")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--cluster", action="store_true",
                   help="instead: a local Ray cluster's clips/s against 1, 2 and 4 scorer "
                        "replicas, with the real model and a stand-in scorer")
    p.add_argument("--cameras", type=_positive_int, default=64, help="--cluster: cameras")
    p.add_argument("--replicas", type=_positive_int, nargs="+", default=[1, 2, 4],
                   help="--cluster: scorer replica counts to measure")
    p.add_argument("--seconds", type=float, default=10.0, help="--cluster: seconds per run")
    p.add_argument("--stand-in-ms", type=float, default=100.0,
                   help="--cluster: the stand-in scorer's time per batch of 16 clips")
    p.add_argument("--stand-in-only", action="store_true",
                   help="--cluster: measure the stand-in scorer only")
    _add_model_options(p, variant=False)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("replay", help="score a clip folder, a video, a stream or a UCSD test set")
    p.add_argument("source", nargs="?", default=str(SAMPLE_CLIP),
                   help="frames folder, video file, rtsp/http URL, webcam index or UCSD root "
                        "(default: the bundled sample clip)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="ONNX model with its .json sidecar")
    p.add_argument("--stride", type=_positive_int, default=1,
                   help="new frames between scored clips, 1 to the clip length (default 1)")
    p.add_argument("--batch", type=_positive_int, default=8, help="clips per inference batch")
    p.add_argument("--realtime", action="store_true", help="pace to the source's frame rate")
    p.add_argument("--out", help="write per-frame scores to this CSV")
    p.add_argument("--plot", help="write the regularity plot to this PNG")
    p.add_argument("--heatmaps", metavar="DIR",
                   help="write each scored frame with its heatmap over it to DIR/<clip>/")
    p.add_argument("--mask", action="append", type=_polygon, metavar="X,Y,X,Y,...",
                   help="leave a polygon (frame pixels, at least 3 points) out of the score "
                        "and the heatmaps, as a camera's masks do; repeatable")
    frames = p.add_mutually_exclusive_group()
    frames.add_argument("--frames", dest="print_frames", action="store_true", default=None,
                        help="print every frame's score (default for a single clip)")
    frames.add_argument("--summary", dest="print_frames", action="store_false",
                        help="print only per-clip summaries")
    _add_model_options(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("train", help="train on normal footage (needs the train extra)")
    p.add_argument("data", help="UCSD root, folder of normal clips, one clip or a video")
    p.add_argument("--out", required=True, help="run folder for checkpoints")
    p.add_argument("--steps", type=_positive_int, default=1000)
    p.add_argument("--minutes", type=float, help="stop after this many minutes (checkpointed)")
    p.add_argument("--until", type=_positive_int, metavar="STEP",
                   help="stop at this step (checkpointed); --resume continues to --steps")
    p.add_argument("--batch-size", type=_positive_int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--holdout", nargs="*", default=[], help="normal clips kept for calibration")
    p.add_argument("--frame-strides", nargs="+", type=_positive_int, default=[1, 2, 3],
                   help="frame strides of the normal training clips")
    p.add_argument("--pseudo-anomalies", type=int, default=0, metavar="N",
                   help="clips per batch drawn with skipped frames (--pseudo-strides) and "
                        "trained to reconstruct their stride-1 clip (default 0)")
    p.add_argument("--pseudo-strides", nargs="+", type=_positive_int, default=[2, 3, 4, 5])
    p.add_argument("--pseudo-box-share", type=float, default=0.0, metavar="P",
                   help="share of pseudo-anomalies made local: only a box around moving "
                        "content plays fast (default 0)")
    p.add_argument("--init", help="start from these weights (a checkpoint or an exported "
                                  ".onnx) to fine-tune them")
    p.add_argument("--snapshot-every", type=int, default=0, metavar="STEPS",
                   help="also keep OUT/step_NNNNNN.pt every STEPS steps, to compare lengths")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("learn", help="learn a new camera: record its normal footage, "
                                     "fine-tune, calibrate and judge (needs the train extra)")
    p.add_argument("source", help="a video file, a folder of frames or a live URL to record; "
                                  "or footage as it is: a recording, a UCSD root (its "
                                  "training clips), a folder of clip folders")
    p.add_argument("--minutes", type=_positive_float,
                   help="minutes of footage to record (a file or folder: its first N minutes, "
                        "default all; a live URL needs it)")
    p.add_argument("--out", required=True, help="the .onnx to write (+ sidecar, fast parts)")
    p.add_argument("--from", dest="from_model", default=str(DEFAULT_MODEL),
                   help="the model to fine-tune and to compare with (default: the shipped one)")
    p.add_argument("--scratch", action="store_true",
                   help="train from random weights (lr 1e-3 decaying over --steps, default "
                        "1500) instead of fine-tuning --from")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads while training (default: one per core)")
    p.add_argument("--scene", help="what the camera watches, for the sidecar")
    p.add_argument("--train-minutes", type=float, default=20.0,
                   help="training time budget (default 20)")
    p.add_argument("--steps", type=_positive_int,
                   help="at most this many training steps within the budget")
    p.add_argument("--far", type=float, default=0.01,
                   help="false alarms per frame to calibrate for (default 0.01)")
    p.add_argument("--fps", type=float, help="a folder's frame rate (default 10)")
    p.add_argument("--chunk-seconds", type=float, default=12.0,
                   help="footage per chunk (default 12; at least 20 frames): chunks spread over "
                        "the recording are held out to calibrate and judge")
    p.add_argument("--work", help="work folder (default: OUT without .onnx, plus .learn); "
                                  "an interrupted learn resumes from it")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_learn)

    p = sub.add_parser("export", help="export a checkpoint to ONNX + sidecar (needs torch)")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="path of the .onnx to write")
    p.add_argument("--name", help="model name in the sidecar (default: file stem)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("calibrate", help="set e_lo/e_hi and the threshold from normal footage")
    p.add_argument("model")
    p.add_argument("normal_data", help="UCSD root or folder of normal clips (held out of training)")
    p.add_argument("--clips", nargs="*", help="only these normal clips (e.g. the held-out ones)")
    p.add_argument("--far", type=float, default=0.01, help="false-alarm rate per frame")
    p.add_argument("--scoring", help="scoring to calibrate and ship, e.g. frame, patch32, "
                                     "patch32+smooth5 (default: the model's current one)")
    _add_model_options(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("evaluate", help="frame-level AUC/EER on a UCSD test set, every scoring")
    p.add_argument("model")
    p.add_argument("ucsd_root", help="UCSD root with test clips and ground truth")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--plots", help="write per-clip regularity plots and the ROC here")
    p.add_argument("--clips", nargs="*", help="only these test clips")
    p.add_argument("--normal-data", help="where the held-out normal clips are (default: the "
                                         "UCSD root's training clips)")
    p.add_argument("--normal-clips", nargs="*", help="held-out normal clips for calibrating "
                                                     "the compared scorings (default: the "
                                                     "sidecar's held-out clips)")
    p.add_argument("--scoring", help="evaluate this scoring instead of the model's own")
    p.add_argument("--no-compare", action="store_true", help="skip the scoring comparison")
    p.add_argument("--masks", help="folder of the official TestNNN_gt pixel-mask folders (or a "
                                   "parent of it), for heatmap localization; an official root "
                                   "has its own")
    _add_model_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("validate", help="synthetic anomalies on held-out normal clips: the "
                                        "measure runs are compared by, without test labels")
    p.add_argument("model")
    p.add_argument("normal_data", help="UCSD root (its training clips) or folder of normal clips")
    p.add_argument("--clips", nargs="*", help="held-out normal clips (default: the sidecar's)")
    p.add_argument("--scoring", help="score with this scoring instead of the model's own (to "
                                     "compare uncalibrated candidates as they will ship)")
    p.add_argument("--json", help="write the results to this JSON file")
    _add_model_options(p)
    p.set_defaults(func=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own loggers only: other libraries' INFO lines (matplotlib's font cache) stay quiet.
    if not log.handlers:  # main() may run more than once in a process (tests)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("clipwatch: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # OpenCV's own warnings ("[ WARN:0@1.0] ... can't be used to capture by name") repeat what
    # our one-line errors say, less clearly; -v keeps them.
    import cv2

    levels = cv2.utils.logging
    levels.setLogLevel(levels.LOG_LEVEL_WARNING if args.verbose else levels.LOG_LEVEL_ERROR)
    try:
        return args.func(args)
    except ClipwatchError as exc:
        print(f"clipwatch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("clipwatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
