"""The experiments report: each question's answer in one sentence from its numbers, its tables (each
row naming the command that made it) and its pictures, as Markdown."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

from ...viz.curves import Panel, Series, panels_png
from .geometry import CLASS_NOTES
from .projection import MODES, QUANTILES
from .setup import FLOWS
from .stats import Z, measurable, paired

__all__ = ["render_report", "Commands"]

NAMES = {"rfm": "RFM (sphere)", "fm": "FM (R^3)", "diffusion": "diffusion (R^3)"}
COLOURS = {"rfm": "#1f77b4", "fm": "#d62728", "diffusion": "#2ca02c"}
#: A step count is converged when its samples' density gap is this close to the converged solve's
#: (nats), or not measurably different from it.
CONVERGED_NATS = 0.02
#: A guided density whose integral is further than this from 1 (and measurably so) is flagged.
UNNORMALISED = 0.02


class Commands:
    """The commands behind the tables' rows, numbered in order of first use: ``[C1]`` etc."""

    def __init__(self, base: str):
        self.base, self.keys = base, {}

    def __call__(self, experiment: str, task: str | None = None) -> str:
        cmd = f"{self.base} --only {experiment}" + (f" --tasks {task}" if task else "")
        if cmd not in self.keys:
            self.keys[cmd] = f"C{len(self.keys) + 1}"
        return f"[{self.keys[cmd]}]"

    def listing(self) -> str:
        return "\n".join(f"- {key}: `{cmd}`" for cmd, key in self.keys.items())


def _f(value: Any, fmt: str = "{:.0f}") -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else fmt.format(value)


def _pm(value: float | None, se: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else f"{fmt.format(value)} ± {fmt.format(se)}" if se is not None else fmt.format(value)


def _task(key: str) -> str:
    return key.split("/")[0]


def _picture(folder: Path, name: str, draw: Callable[[Path], Any], rel: Path) -> str:
    path = folder / name
    draw(path)
    return f"![{name}]({os.path.relpath(path, rel)})"


# --- question 1 -----------------------------------------------------------------------------------------------------


def _geometry(res: dict[str, Any], cmd: Commands, pics: Path, rel: Path) -> tuple[str, list[str]]:
    lines = []
    helped, hurt, even = [], [], []
    for key, s in res["splits"].items():
        lines += [f"**{s['title']}** ({s['n']} rows)", "",
                  "| model | GeoScore | median km | NLL (nats/sr) | P | R | D | C | calib. gap | made by |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for kind, r in s["rows"].items():
            lines.append(f"| {NAMES[kind]} | {_pm(r['geoscore'], r['geoscore_se'])} | {_f(r['median_km'])} | "
                         f"{_pm(r['nll'], r['nll_se'], '{:.3f}')} | {_f(r['precision'], '{:.2f}')} | "
                         f"{_f(r['recall'], '{:.2f}')} | {_f(r['density'], '{:.2f}')} | {_f(r['coverage'], '{:.2f}')} | "
                         f"{_f(r['calibration_gap'], '{:.3f}')} | {cmd('geometry', _task(key))} |")
        if "truth" in s:
            lines.append(f"| truth (Bayes-optimal guess; true density) | {s['truth']['bayes_geoscore']:.0f} | | "
                         f"{s['truth']['nll']:.3f} | | | | | | {cmd('geometry', _task(key))} |")
        diffs = s["rfm_minus"]
        lines += ["", "RFM minus " + ", ".join(f"{NAMES[k]}: {d['geoscore']:+.0f} ± {d['se']:.0f}" for k, d in diffs.items())
                  + " GeoScore (paired over the same rows).", ""]
        for k, d in diffs.items():
            label = f"{s['title']} vs {NAMES[k]} ({d['geoscore']:+.0f} ± {d['se']:.0f})"
            (helped if d["geoscore"] > 0 else hurt).append(label) if measurable(d["geoscore"], d["se"]) else even.append(label)
        if "classes" in s:
            lines += _class_table(s, cmd)
    ka = next((s for s in res["splits"].values() if "classes" in s), None)
    pictures = []
    if ka is not None:
        pictures.append(_picture(pics, "geometry_classes.png", lambda p: panels_png(p, [
            Panel("density gap of samples per class (0 is perfect)", "known-answer class", "nats",
                  [Series(NAMES[k], list(range(len(ka["classes"]))), [c[k]["gap_nats"] for c in ka["classes"]],
                          COLOURS[k]) for k in FLOWS]),
            Panel("GeoScore / Bayes-optimal per class", "known-answer class", "ratio",
                  [Series(NAMES[k], list(range(len(ka["classes"]))), [c[k]["ratio_to_bayes"] for c in ka["classes"]],
                          COLOURS[k]) for k in FLOWS])], columns=2, width_px=1400), rel))
    answer = []
    if helped:
        answer.append("RFM's GeoScore is measurably higher on " + "; ".join(helped))
    if hurt:
        answer.append(("measurably lower on " if helped else "RFM's GeoScore is measurably lower on ") + "; ".join(hurt))
    if even:
        answer.append("no difference is measurable at this size on " + "; ".join(even))
    sentence = "; ".join(answer)
    if ka is not None:
        better, worse = [], []
        for c in ka["classes"]:
            # Closer to 0 is better either way: negative gaps put samples where the truth has little
            # mass, positive ones crowd them into its densest part (too sharp).
            d = [(abs(c[k]["gap_nats"]) - abs(c["rfm"]["gap_nats"]), math.hypot(c["rfm"]["gap_se"], c[k]["gap_se"]))
                 for k in FLOWS[1:]]
            if all(x > 0 and measurable(x, se) for x, se in d):
                better.append(str(c["class"]))
            elif any(x < 0 and measurable(x, se) for x, se in d):
                worse.append(str(c["class"]))
        pole, anti = ka["classes"][5], ka["classes"][6]
        sentence += (f". Per known-answer class, RFM's samples' density gap is measurably closer to 0 than both "
                     f"R^3 models' on {_classes(better)} and measurably further than one of them on {_classes(worse)}; the density gaps (nats, 0 is perfect) where the geometry should "
                     f"matter are: north pole {pole['rfm']['gap_nats']:+.3f} (RFM) vs {pole['fm']['gap_nats']:+.3f} "
                     f"(FM) and {pole['diffusion']['gap_nats']:+.3f} (diffusion), antimeridian "
                     f"{anti['rfm']['gap_nats']:+.3f} vs {anti['fm']['gap_nats']:+.3f} and {anti['diffusion']['gap_nats']:+.3f}")
    sentence += ". Only RFM has a normalised density on the sphere, so only it has an NLL and calibrated regions."
    return sentence[0].upper() + sentence[1:], lines + pictures


def _classes(names: list[str]) -> str:
    return f"classes {', '.join(names)}" if names else "no class"


def _class_table(s: dict[str, Any], cmd: Commands) -> list[str]:
    lines = ["Per class (known answer): GeoScore over the Bayes-optimal guess's on the same rows; density gap "
             f"of {s['density_samples']:,} samples from the class vector (mean true log-density minus the true -H, nats ± s.e.; 0 is perfect, negative: samples where the truth has "
             "little mass, positive: samples crowded into its densest part); "
             "RFM's NLL above the truth's on the rows.", "",
             "| class | what it tests | rows | " + " | ".join(f"{NAMES[k]} GeoScore/Bayes" for k in FLOWS) + " | "
             + " | ".join(f"{NAMES[k]} gap" for k in FLOWS) + " | RFM NLL - truth | made by |",
             "|---|---|---|" + "---|" * (2 * len(FLOWS) + 2)]
    for c in s["classes"]:
        lines.append(f"| {c['class']} | {CLASS_NOTES[c['class']]} | {c['n']} | "
                     + " | ".join(f"{c[k]['ratio_to_bayes']:.3f}" for k in FLOWS) + " | "
                     + " | ".join(f"{c[k]['gap_nats']:+.3f} ± {c[k]['gap_se']:.3f}" for k in FLOWS)
                     + f" | {_f(c['rfm'].get('nll_excess'), '{:+.3f}')} | {cmd('geometry', 'known-answer')} |")
    return lines + [""]


# --- question 2 -----------------------------------------------------------------------------------------------------


def _guidance(res: dict[str, Any], cmd: Commands, pics: Path, rel: Path) -> tuple[str, list[str]]:
    lines, clauses, trades = [], [], []
    for key, s in res["splits"].items():
        lines += [f"**{s['title']}**", "",
                  "| model | w | GeoScore (1 sample) | P | R | D | C | NLL of the guided density | its integral "
                  "(importance sampling) | on the map | made by |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for kind, m in s["models"].items():
            for r in m["rows"]:
                mass = "-" if "mass" not in r else ", ".join(f"{x:.4f}" for x in r["mass"])
                mass_is = "-" if "mass_is" not in r else ", ".join(f"{z:.3f} ± {se:.3f}" for z, se in r["mass_is"])
                # A density that does not integrate to 1 gives no exact NLL: marked, not hidden.
                flag = " †" if any(_unnormalised(z, se) for z, se in r.get("mass_is", [])) else ""
                lines.append(f"| {NAMES[kind]} | {r['w']:g} | {_pm(r['geoscore'], r['geoscore_se'])} | "
                             f"{r['precision']:.2f} | {r['recall']:.2f} | {r['density']:.2f} | {r['coverage']:.2f} | "
                             f"{_pm(r.get('nll'), r.get('nll_se'), '{:.3f}')}{flag} | {mass_is} | {mass} | {cmd('guidance', _task(key))} |")
        if any(_unnormalised(z, se) for m in s["models"].values() for r in m["rows"] for z, se in r.get("mass_is", [])):
            lines += ["", "† The likelihood solve (RK4, 16 steps, as for every NLL here) of this guided field is not "
                      "converged: its density measurably does not integrate to 1 (more than "
                      f"{UNNORMALISED:g} and {Z:g} standard errors off), so this NLL is not an exact one."]
        lines += ["", "Best w per metric: " + "; ".join(
            f"{NAMES[k]}: " + ", ".join(f"{metric} {w:g}" for metric, w in m["best_w"].items())
            for k, m in s["models"].items()), ""]
        for kind, m in s["models"].items():
            trades.append((_trend(m["rows"], "precision", s["n"]), _trend(m["rows"], "recall", s["n"])))
        rfm, best = s["models"]["rfm"]["rows"], s["models"]["rfm"]["best_w"]
        clauses.append(f"{s['title']}: precision {rfm[0]['precision']:.2f} -> {rfm[-1]['precision']:.2f}, recall "
                       f"{rfm[0]['recall']:.2f} -> {rfm[-1]['recall']:.2f}, best one-sample GeoScore at w = "
                       f"{best['geoscore']:g}, best NLL at w = {best['nll']:g}")
    panels = [Panel(s["title"], "guidance scale w", "precision (solid), recall (dashed)",
                    [Series(f"{NAMES[k]} {q}", [r["w"] for r in m["rows"]], [r[q] for r in m["rows"]], COLOURS[k],
                            dashed=q == "recall") for k, m in s["models"].items() for q in ("precision", "recall")])
              for s in res["splits"].values()]
    picture = _picture(pics, "guidance_precision_recall.png", lambda p: panels_png(p, panels, columns=3), rel)
    masses = [z for s in res["splits"].values() for r in s["models"]["rfm"]["rows"] for z in r.get("mass_is", [])]
    off = max(abs(z - 1) / se if se > 0 else 0.0 for z, se in masses)
    bad = sorted({r["w"] for s in res["splits"].values() for r in s["models"]["rfm"]["rows"]
                  if any(_unnormalised(z, se) for z, se in r.get("mass_is", []))})
    first, last = res["w"][0], res["w"][-1]
    both = sum(p > 0 and r < 0 for p, r in trades)
    lead = (f"Raising the guidance scale from w = {first:g} to {last:g} measurably raises precision and lowers "
            f"recall (the paper's trade-off) for {both} of {len(trades)} model-split pairs")
    lo, hi = min(z for z, _ in masses), max(z for z, _ in masses)
    if not bad:
        norm = (f"every guided RFM density integrates to 1 ({lo:.3f} to {hi:.3f} by importance sampling, at most "
                f"{off:.1f} standard errors off)")
    else:
        norm = (f"the guided RFM densities integrate to {lo:.3f} to {hi:.3f} (importance sampling): at w = "
                + ", ".join(f"{w:g}" for w in bad) + " the 16-step likelihood solve of the sharply guided field is "
                "not converged, so the NLL there (marked †) is not exact")
    sentence = lead + " (RFM: " + "; ".join(clauses) + "); " + norm + "."
    return sentence, lines + [picture]


def _unnormalised(z: float, se: float) -> bool:
    """Whether an integral ``z ± se`` is measurably, and materially, not 1."""
    return abs(z - 1) > UNNORMALISED and measurable(z - 1, se)


def _trend(rows: list[dict[str, Any]], metric: str, n: int) -> int:
    """+1 / -1 when ``metric`` changes measurably from the first to the last guidance scale, else 0;
    its standard error is the binomial one of a fraction of ``n`` points (an approximation: P and R
    are fractions of the predicted and of the true points)."""
    a, b = rows[0][metric], rows[-1][metric]
    se = math.sqrt((a * (1 - a) + b * (1 - b)) / n)
    return 0 if not measurable(b - a, se) else (1 if b > a else -1)


# --- question 3 -----------------------------------------------------------------------------------------------------


def _projection(res: dict[str, Any], cmd: Commands, pics: Path, rel: Path) -> tuple[str, list[str]]:
    lines = ["| split | model | sampling | sampler | GeoScore (best of samples) | median km | sample median km | "
             "off the sphere: mean / p95 / max (radii) | made by |", "|---|---|---|---|---|---|---|---|---|"]
    clauses, offs = [], []
    for key, s in res["splits"].items():
        for kind, modes in s["models"].items():
            for mode, r in modes.items():
                off = ("0 (by construction)" if MODES[mode] == "retraction" else
                       f"{r['off_sphere_mean']:.3f} / {r['off_sphere_p95']:.3f} / {r['off_sphere_max']:.3f}")
                lines.append(f"| {s['title']} | {NAMES[kind]} | {mode} | {r['sampler']} | "
                             f"{_pm(r['geoscore'], r['geoscore_se'])} | {r['median_km']:.0f} | "
                             f"{r['sample_median_km']:.0f} | {off} | {cmd('projection', _task(key))} |")
            d, se = paired(modes["projected every step"]["geoscores"], modes["as they land"]["geoscores"])
            verdict = ("no measurable difference" if not measurable(d, se) else
                       ("projecting every step is better" if d > 0 else "projecting every step is worse"))
            clauses.append(f"{NAMES[kind]} on {s['title']}: {verdict} ({d:+.0f} ± {se:.0f})")
            offs.append((modes["as they land"]["off_sphere_mean"], kind, s["title"]))
    panels = [Panel(s["title"], "quantile level", "| |x| - 1 | of the free samples (Earth radii)",
                    [Series(NAMES[k], list(QUANTILES), [modes["as they land"]["off_sphere_quantiles"][str(q)]
                                                        for q in QUANTILES], COLOURS[k]) for k, modes in s["models"].items()])
              for s in res["splits"].values()]
    picture = _picture(pics, "projection_off_sphere.png", lambda p: panels_png(p, panels, columns=3), rel)
    ends = []
    for kind in dict.fromkeys(k for _, k, _ in offs):
        mine = [o for o, k, _ in offs if k == kind]
        ends.append(f"{NAMES[kind]} {min(mine):.3f} to {max(mine):.3f} Earth radii ({min(mine) * 6371:.0f} to "
                    f"{max(mine) * 6371:.0f} km)")
    sentence = ("Projecting the R^3 samples onto the sphere after every step instead of once at the end: "
                + "; ".join(clauses) + " (GeoScore, projected minus free). Left free, samples end on average "
                + ", ".join(ends) + " from the sphere (DDIM's last state is its clean estimate, clipped "
                "into the unit ball, so its samples end inside it).")
    return sentence, lines + ["", picture]


# --- question 4 -----------------------------------------------------------------------------------------------------


def _mixtures(res: dict[str, Any], cmd: Commands, pics: Path, rel: Path) -> tuple[str, list[str]]:
    lines = ["| split | model | NLL (nats/sr) | GeoScore | median km | calib. gap | made by |", "|---|---|---|---|---|---|---|"]
    clauses, panels = [], []
    for key, s in res["splits"].items():
        ks = sorted(s["rows"], key=int)
        for k in ks:
            r = s["rows"][k]
            lines.append(f"| {s['title']} | vMF mixture, K = {k} | {_pm(r['nll'], r['nll_se'], '{:.3f}')} | "
                         f"{_pm(r['geoscore'], r['geoscore_se'])} | {r['median_km']:.0f} | {_f(r['calibration_gap'], '{:.3f}')} | "
                         f"{cmd('mixtures', _task(key))} |")
        f = s["rfm"]
        lines.append(f"| {s['title']} | RFM | {_pm(f['nll'], f['nll_se'], '{:.3f}')} | {_pm(f['geoscore'], f['geoscore_se'])} | "
                     f"{f['median_km']:.0f} | {_f(f['calibration_gap'], '{:.3f}')} | {cmd('mixtures', _task(key))} |")
        nll = {k: s["rows"][k]["nll"] for k in ks}
        best = min(nll, key=nll.get)
        se_best = s["rows"][best]["nll_se"] or 0.0
        enough = next(k for k in ks if nll[k] <= nll[best] + Z * se_best)
        d = s["rows"][best]["minus_rfm"]
        how = (f"K = {enough} suffices (NLL within {Z:g} s.e. of the best, K = {best})"
               if enough != ks[-1] else f"the NLL still falls at the sweep's largest K = {ks[-1]}")
        against = ("measurably better" if d["nll"] < 0 and measurable(d["nll"], d["nll_se"]) else
                   "measurably worse" if measurable(d["nll"], d["nll_se"]) else "not measurably different")
        clauses.append(f"{s['title']}: {how}; the best mixture's NLL is {against} than RFM's ({nll[best]:.3f} against "
                       f"{f['nll']:.3f}, paired difference {d['nll']:+.3f} ± {d['nll_se']:.3f}), its GeoScore "
                       f"{d['geoscore']:+.0f} ± {d['geoscore_se']:.0f} from RFM's and its calibration gap "
                       f"{_f(s['rows'][best]['calibration_gap'], '{:.3f}')} against {_f(f['calibration_gap'], '{:.3f}')}")
        kx = [int(k) for k in ks]
        panels += [Panel(f"{s['title']}: NLL", "components K", "nats/sr",
                         [Series("vMF mixture", kx, [nll[k] for k in ks], "#9467bd")], {"RFM": f["nll"]}, logx=True),
                   Panel(f"{s['title']}: GeoScore", "components K", "GeoScore",
                         [Series("vMF mixture", kx, [s["rows"][k]["geoscore"] for k in ks], "#9467bd")],
                         {"RFM": f["geoscore"]}, logx=True)]
    picture = _picture(pics, "mixtures.png", lambda p: panels_png(p, panels, columns=2, width_px=1200), rel)
    sentence = "; ".join(clauses) + "."
    return sentence, lines + ["", picture]


# --- question 5 -----------------------------------------------------------------------------------------------------


def _steps(res: dict[str, Any], cmd: Commands, pics: Path, rel: Path) -> tuple[str, list[str]]:
    lines = [f"Known-answer task, {res['samples']:,} samples per setting (all 8 classes); seconds per 1,000 samples "
             "on this machine in one process; km from the same noise's converged sample.", "",
             "| model | solver | steps | network evaluations | density gap (nats) | minus the converged solve's (paired, nats) "
             "| km from converged | s / 1000 samples | made by |",
             "|---|---|---|---|---|---|---|---|---|"]
    clauses, series_gap, series_km = [], [], []
    for kind, m in res["models"].items():
        by: dict[str, list[dict[str, Any]]] = {}
        for r in m["rows"]:
            by.setdefault(r["method"], []).append(r)
            lines.append(f"| {NAMES[kind]} | {r['method']} | {r['steps']} | {r['evaluations']} | {r['gap_nats']:+.3f} | "
                         f"{r['minus_converged']:+.3f} ± {r['minus_converged_se']:.3f} | "
                         f"{r['km_from_converged']:.1f} | {r['seconds_per_1000']:.3f} | {cmd('steps')} |")
        for method, rows in by.items():
            ok = next((r for i, r in enumerate(rows) if all(_converged(x) for x in rows[i:])), None)
            clauses.append(f"{NAMES[kind]} {method}: " + (f"{ok['steps']} steps ({ok['seconds_per_1000']:.3f} s per 1,000)"
                                                           if ok else "not within the sweep"))
            style = dict(colour=COLOURS[kind], dashed=method in ("euler",), labels=[str(r["steps"]) for r in rows])
            series_gap.append(Series(f"{NAMES[kind]} {method}", [r["seconds_per_1000"] for r in rows],
                                     [r["gap_nats"] for r in rows], **style))
            series_km.append(Series(f"{NAMES[kind]} {method}", [r["evaluations"] for r in rows],
                                    [max(r["km_from_converged"], 1e-3) for r in rows], **style))
    picture = _picture(pics, "steps.png", lambda p: panels_png(p, [
        Panel("quality against time (labels: steps)", "seconds per 1,000 samples", "density gap (nats; 0 is perfect)",
              series_gap, logx=True),
        Panel("distance from the converged sample", "network evaluations per sample", "mean km", series_km, logx=True)],
        columns=2, width_px=1400), rel)
    sentence = (f"Fewest steps from which on the samples' density gap is within {CONVERGED_NATS} nats or {Z:g} "
                f"standard errors of the converged solve's (paired over the same noise): " + "; ".join(clauses) + ".")
    return sentence, lines + ["", picture]


def _converged(row: dict[str, Any]) -> bool:
    d, se = row["minus_converged"], row["minus_converged_se"]
    return abs(d) <= CONVERGED_NATS or not measurable(d, se)


QUESTIONS = {
    "geometry": ("1. Euclidean or Riemannian: does modelling the sphere help, and where?", _geometry),
    "guidance": ("2. The guidance scale: localisation precision against coverage of the uncertainty", _guidance),
    "projection": ("3. Without the projection onto the sphere (R^3 models)", _projection),
    "mixtures": ("4. How many vMF mixture components does a parametric baseline need?", _mixtures),
    "steps": ("5. Solver steps: accuracy against time", _steps),
}


def render_report(results: dict[str, Any], *, config: dict[str, Any], seconds: dict[str, float], command: str,
                  pictures: Path, markdown: Path) -> str:
    """The report's Markdown (pictures drawn into ``pictures``, linked relative to ``markdown``)."""
    pictures.mkdir(parents=True, exist_ok=True)
    cmd = Commands(command)
    answers, sections = [], []
    for name, (title, render) in QUESTIONS.items():
        if name not in results:
            continue
        sentence, body = render(results[name], cmd, pictures, markdown.parent)
        answers.append(f"{len(answers) + 1}. **{title.split('. ', 1)[1]}** {sentence}")
        sections += [f"## {title}", "", f"**Answer.** {sentence}", ""] + body + [""]
    ka = config["known_answer"]
    bm = config.get("blue_marble")
    head = [
        "# The paper's questions, measured",
        "",
        f"Made by `{command}` (configuration `{config['name']}`, seed {config['seed']}): "
        f"{seconds['measurements'] / 60:.1f} minutes of computation on this machine ({seconds.get('threads', 2)} CPU "
        f"threads; training the models {seconds['training'] / 60:.1f} minutes of it); this invocation took "
        f"{seconds['total'] / 60:.1f} minutes (the rest was read back from its work folder). A rerun "
        "with the same seed gives the same numbers (not the same times); an interrupted run resumes from its "
        "work folder.",
        "",
        f"- Known-answer task: {ka['train_rows']:,} training rows, {ka['test_rows']:,} test rows; network "
        f"{dict(ka['network'])}; {ka['train']['steps']:,} steps of {ka['train']['batch_size']}.",
    ]
    if bm is not None:
        rows = config.get("blue_marble_rows")
        measured = f", the first {rows:,} measured" if rows is not None and rows < bm["task"]["test_rows"] else ""
        head.append(f"- Blue Marble task: {bm['task']['train_rows']:,} training patches, {bm['task']['test_rows']:,} test patches "
                    f"per protocol{measured} ({bm['encoder']}); network {dict(bm['network'])}; {bm['train']['steps']:,} steps "
                    f"of {bm['train']['batch_size']}.")
    head += [f"- Every model of a task has the same network, optimiser and steps (the shared trainer). Best "
             f"guesses: the highest expected GeoScore among {config['point_samples']} samples; calibration from "
             f"{config['calibration_samples']} samples with exact densities per row. Uncertainties are one standard "
             f"error; a difference is called measurable beyond {Z:g} standard errors (paired over the same rows).",
             "- P / R / D / C: precision, recall, density and coverage of the predicted set against the true set "
             "(k = 3, haversine). NLL: nats per steradian at the true location (uniform density: "
             f"{math.log(4 * math.pi):.3f}). Calibration gap: mean |coverage - p| of the p-credible regions, p = 0.1 ... 0.9.",
             "", "## Answers", ""] + answers + [""]
    timing = (["## Time", "", "Seconds of this invocation per part, and what the training and the measurements "
               "cost when they were made:", "", "| part | seconds |", "|---|---|"]
              + [f"| {k} | {v:.0f} |" for k, v in seconds.items() if k != "threads"])
    return "\n".join(head + sections + timing + ["", "## Commands", "", cmd.listing(), ""])
