"""One self-contained HTML report of an experiment folder (figures embedded, no network).

``write_report(out)`` reads only results (``plan.json``, job records and results, the
results table) and writes ``out/report.html`` plus the figures as files in
``out/report/``. The page holds, in order: a summary, one figure and kappa table per
analysis (training dynamics when the analysis covers every checkpoint), addition runs,
training runs, failures, timings, every job config, and library versions. Figures are PNG
embedded as base64; a few lines of inline JavaScript make tables sortable.

Wherever a row matches a published one (:mod:`convergent.reference`: by architecture,
optimizer, perturbation or addition format, read from the job configs), the paper's value
stands under ours in the same cell, and each table names the rows with no published value.
``out/report/results.json`` holds the same comparison as data.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convergent.experiments.plan import Member, Plan
from convergent.experiments.store import load_plan, write_table
from convergent.experiments.worker import job_dir
from convergent.io import write_bytes_atomic, write_json_atomic
from convergent.provenance import versions
from convergent.reference import (
    Published,
    Setting,
    addition_setting,
    compare,
    published,
    source_setting,
    train_setting,
)

SHOWN_MODULI = tuple(range(2, 11))
MAX_DYNAMICS = 6

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
.muted{color:#666}table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f4f4f4;
cursor:pointer}td.l,th.l{text-align:left}img.figure{max-width:100%;display:block;
margin:8px 0;border:1px solid #eee}pre{background:#f7f7f7;padding:8px;overflow:auto;
font-size:12px}.bad{color:#b00020}.chip{display:inline-block;padding:1px 8px;
border-radius:9px;background:#eef;margin-right:6px}.pv{color:#555;font-size:11px;
font-style:italic}.ci{color:#777;font-size:10px}
"""

SCRIPT = """
window.reportErrors=[];
window.addEventListener('error',function(e){window.reportErrors.push(String(e.message));});
function sortTable(th){var t=th.closest('table'),i=Array.prototype.indexOf.call(
th.parentNode.children,th),b=t.tBodies[0],r=Array.prototype.slice.call(b.rows),
d=th.dataset.dir==='asc'?-1:1;th.dataset.dir=d>0?'asc':'desc';r.sort(function(x,y){
var a=x.cells[i].dataset.v||x.cells[i].textContent,c=y.cells[i].dataset.v||
y.cells[i].textContent,p=parseFloat(a),q=parseFloat(c);if(!isNaN(p)&&!isNaN(q)){
return d*(p-q);}return d*a.localeCompare(c);});r.forEach(function(row){b.appendChild(row);});}
document.addEventListener('DOMContentLoaded',function(){
document.querySelectorAll('th').forEach(function(th){th.addEventListener('click',
function(){sortTable(th);});});});
window.addEventListener('load',function(){var figs=[];
document.querySelectorAll('img.figure').forEach(function(img){
var r=img.getBoundingClientRect();figs.push([Math.round(r.left),Math.round(r.top+
window.scrollY),Math.round(r.width),Math.round(r.height),img.naturalWidth]);});
document.body.dataset.figures=JSON.stringify(figs);
document.body.dataset.errors=JSON.stringify(window.reportErrors);
document.body.dataset.ready='1';});
"""


def write_report(out: str | Path, path: str | Path | None = None) -> Path:
    """Write the report of experiment folder ``out`` (default ``out/report.html``)."""
    folder = Path(out)
    target = Path(path) if path is not None else folder / "report.html"
    text = build_report(folder)
    return write_bytes_atomic(target, lambda h: h.write(text.encode()))


def build_report(folder: Path) -> str:
    import pandas as pd

    plan = load_plan(folder)
    table = pd.read_parquet(write_table(folder))
    figures = folder / "report"
    parts = [_header(plan, folder, table)]
    paper: dict[str, list[dict[str, Any]]] = {}
    for name, (title, members) in plan.analyses.items():
        parts.append(_analysis(plan, folder, figures, name, title, members,
                               paper.setdefault(name, [])))
    additions = {k: v for k, (kind, v) in plan.groups.items() if kind == "addition"}
    for name, members in additions.items():
        parts.append(_addition(plan, folder, figures, name, members,
                               paper.setdefault(f"addition/{name}", [])))
    write_json_atomic(figures / "results.json", {
        "about": "our final values beside the paper's wherever a row matches a published "
                 "one (convergent.reference); published false: no published value",
        "analyses": paper})
    parts += [_runs(table), _failures(folder, table), _timings(folder, table),
              _configs(plan), _versions(folder, plan)]
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(plan.name)}: convergent report</title><style>{STYLE}</style>"
            f"<script>{SCRIPT}</script></head><body>\n{body}\n</body></html>\n")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _read(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _img(paths: Sequence[Path], alt: str) -> str:
    png = next(p for p in paths if p.suffix == ".png")
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<img class="figure" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _header(plan: Plan, folder: Path, table: Any) -> str:
    counts = table.drop_duplicates("job")["status"].value_counts().to_dict()
    chips = "".join(f'<span class="chip">{_e(k)}: {v}</span>' for k, v in counts.items())
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (f"<h1>{_e(plan.name)}</h1><p class=\"muted\">{_e(plan.description)}</p>"
            f"<p>{len(plan.jobs)} jobs {chips}</p><p class=\"muted\">folder "
            f"<code>{_e(folder.resolve())}</code>, report written {_e(when)}</p>")


def _entries(folder: Path, member: Member) -> list[dict[str, Any]]:
    entries = _read(job_dir(folder, member.job) / "result.json").get("entries", [])
    for entry in entries:
        entry["name"] = member.label
    return entries


def member_setting(plan: Plan, member: Member) -> Setting:
    """What an analysis row measured, from the job configs (for the paper's values)."""
    source = plan.jobs[member.job].config.get("source", {})
    run = plan.jobs.get(source.get("run", ""))
    if run is not None:
        if run.kind == "addition":
            return addition_setting(run.config["task"], run.config["train"])
        return train_setting(run.config["train"])
    return source_setting(str(source.get("spec", "")))


def _analysis(plan: Plan, folder: Path, figures: Path, name: str, title: str,
              members: Sequence[Member], paper: list[dict[str, Any]]) -> str:
    from convergent.report.dynamics import plot_dynamics
    from convergent.report.numbers import plot_numbers

    last: list[dict[str, Any]] = []
    settings: list[Setting] = []
    series: dict[str, list[dict[str, Any]]] = {}
    for member in members:
        entries = _entries(folder, member)
        if len(entries) > 1 and all("step" in e.get("meta", {}) for e in entries):
            series[member.label] = entries
            entries = [max(entries, key=lambda e: e["meta"]["step"])]
        last.extend(entries)
        settings.extend(member_setting(plan, member) for _ in entries)
    parts = [f"<h2>{_e(title)}</h2>"]
    if not last:
        return parts[0] + "<p class=\"bad\">no finished results yet</p>"
    for entry, setting in zip(last, settings, strict=True):
        paper.append({"site": entry.get("site"),
                      **compare(entry["name"], setting, entry).to_dict()})
    paths = plot_numbers(last, [figures / f"{name}.png", figures / f"{name}.svg"])
    parts.append(_img(paths, f"{title}: Fourier magnitude and probe kappa"))
    parts.append(_kappa_table(last, [published(s) for s in settings]))
    for label, entries in list(series.items())[:MAX_DYNAMICS]:
        points = [{"tokens": e["meta"].get("tokens") or 0, "periods": e["periods"]}
                  for e in entries]
        slug = "".join(c if c.isalnum() else "-" for c in label)
        dyn = plot_dynamics(points, [figures / f"{name}-{slug}-dynamics.png"])
        parts.append(f"<h3>{_e(label)}: during training</h3>" + _img(dyn, f"{label} dynamics"))
    return "\n".join(parts)


def _kappa_style(value: float) -> str:
    if value >= 0:
        alpha = min(1.0, value / 100)
        return f"background:rgba(26,152,80,{alpha * 0.6:.2f})"
    return f"background:rgba(215,48,39,{min(1.0, -value / 25) * 0.6:.2f})"


Papers = dict[tuple[str, int], Published]


def _cell(value: float | None, text: str, paper: Published | None, style: str = "") -> str:
    """A table cell with our value and, under it, the paper's (its origin as a tooltip)."""
    below = "" if paper is None else (f'<div class="pv" title="paper: {_e(paper.origin)}">'
                                      f"{_e(paper.text())}</div>")
    data = "" if value is None else f' data-v="{value}"'
    look = f' style="{style}"' if style else ""
    return f"<td{data}{look}>{text}{below}</td>"


def _stars(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def _number(value: Any, digits: str = ".3g") -> tuple[float | None, str]:
    if value is None or value != value:
        return None, ""
    return float(value), format(float(value), digits)


def _kappa_table(entries: Sequence[dict[str, Any]], papers: Sequence[Papers]) -> str:
    moduli = [t for t in SHOWN_MODULI if any(str(t) in e["periods"] for e in entries)]
    head = "".join(f"<th>κ {t}</th>" for t in moduli)
    rows = []
    for e, paper in zip(entries, papers, strict=True):
        cells = []
        for t in moduli:
            p = e["periods"].get(str(t))
            if p is None:
                cells.append(_cell(None, "", paper.get(("kappa", t))))
                continue
            mark = "*" if p.get("explained_by_tokens") else ""
            ci = p.get("kappa_ci")
            interval = f'<div class="ci">[{ci[0]:.0f}, {ci[1]:.0f}]</div>' if ci else ""
            cells.append(_cell(p["kappa"], f'{p["kappa"]:.1f}{mark}{interval}',
                               paper.get(("kappa", t)), _kappa_style(p["kappa"])))
        p10 = e["periods"].get("10", {})
        f10 = e.get("fisher", {}).get("10", {})
        for measure, value, digits in (("phi", p10.get("phi"), ".3g"),
                                       ("spike", p10.get("spike"), ".1f"),
                                       ("lambda_max", f10.get("lambda_max"), ".3g"),
                                       ("cond_sw", f10.get("cond_sw"), ".3g")):
            number, text = _number(value, digits)
            if measure == "spike" and text:
                text += _stars(p10.get("p_value"))
            cells.append(_cell(number, text, paper.get((measure, 10))))
        rows.append(f'<tr><td class="l">{_e(e["name"])}</td><td class="l">{_e(e["site"])}'
                    f'</td><td>{e["numbers"][0]}..{e["numbers"][1]}</td><td>{e["dim"]}</td>'
                    + "".join(cells) + "</tr>")
    return (f'<table><thead><tr><th class="l">source</th><th class="l">site</th><th>numbers'
            f'</th><th>dim</th>{head}<th>Φ 10</th><th>spike 10</th><th>λmax 10</th>'
            f'<th>cond S_W 10</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
            "<p class=\"muted\">κ: Cohen's kappa (%) of the cross-validated mod-T probe, "
            "with its 95% bootstrap interval; * the token-identity control explains it. "
            "spike: Φ over its trend-preserving shuffled null, * p &lt; 0.05, ** p &lt; 0.01. "
            "λmax: largest eigenvalue of S_W⁻¹ S_B. "
            + _paper_note(entries, papers) + "</p>")


def _paper_note(entries: Sequence[dict[str, Any]], papers: Sequence[Papers]) -> str:
    missing = list(dict.fromkeys(e["name"] for e, p in zip(entries, papers, strict=True)
                                 if not p))
    text = ("<i>Italic grey</i>: the paper's published value (Fu et al. 2026; its figure or "
            "table in the tooltip; convergent.reference)")
    if not any(papers):
        return text + ": none of these rows has one."
    if missing:
        return text + ". No published value for: " + ", ".join(_e(m) for m in missing) + "."
    return text + "."


def _addition(plan: Plan, folder: Path, figures: Path, name: str, members: Sequence[Member],
              paper: list[dict[str, Any]]) -> str:
    from convergent.report.style import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    rows = []
    entries, papers = [], []
    for member in members:
        points = _read(job_dir(folder, member.job) / "result.json").get("points", [])
        if not points:
            continue
        tokens = [p["tokens"] for p in points]
        left.plot(tokens, [p["test"]["exact_match"] for p in points], marker="o", ms=3,
                  label=member.label)
        for t, style in (("2", ":"), ("5", "--"), ("10", "-")):
            kappa = [p.get("numbers", {}).get("periods", {}).get(t, {}).get("kappa")
                     for p in points]
            if any(k is not None for k in kappa):
                right.plot(tokens, [float("nan") if k is None else k for k in kappa], ls=style,
                           label=f"{member.label} T={t}")
        last = points[-1]
        job = plan.jobs[member.job]
        setting = addition_setting(job.config.get("task", {}), job.config.get("train", {}))
        entry = {"name": member.label, **last.get("numbers", {})}
        paper.append({"step": last["step"], **compare(member.label, setting, entry).to_dict()})
        values = published(setting)
        entries.append(entry)
        papers.append(values)
        periods = entry.get("periods", {})
        kappas = "".join(_cell(*_number(periods.get(str(t), {}).get("kappa"), ".1f"),
                               values.get(("kappa", t))) for t in (2, 4, 5, 10))
        rows.append(f'<tr><td class="l">{_e(member.label)}</td><td>{last["step"]}</td>'
                    f'<td>{last["test"]["exact_match"]:.1f}</td>{kappas}</tr>')
    left.set(xlabel="training tokens", ylabel="test exact match (%)", title="addition")
    right.set(xlabel="training tokens", ylabel="probe kappa (%)", title="mod-T separability")
    for ax in (left, right):
        if ax.lines:
            ax.legend(fontsize=7)
    paths = save_figure(fig, [figures / f"addition-{name}.png"])
    note = f'<p class="muted">{_paper_note(entries, papers)}</p>' if entries else ""
    return (f"<h2>Addition: {_e(name)}</h2>" + _img(paths, f"addition {name}")
            + '<table><thead><tr><th class="l">run</th><th>step</th><th>test exact %</th>'
            "<th>κ 2</th><th>κ 4</th><th>κ 5</th><th>κ 10</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>" + note)


def _html_table(frame: Any, left: Sequence[str] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(c)}</th>' for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            shown = f"{value:.4g}" if isinstance(value, float) else _e(value)
            shown = "" if shown == "nan" else shown
            cells.append(f'<td class="{"l" if column in left else ""}">{shown}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _runs(table: Any) -> str:
    runs = table[table["kind"].isin(["train", "addition"])].drop_duplicates("job")
    if runs.empty:
        return ""
    wanted = ["group", "label", "train.arch", "train.optimizer", "train.perturb",
              "train.tokenizer", "train.tokens", "steps", "final_loss", "status", "seconds"]
    columns = [c for c in wanted if c in runs.columns]
    return "<h2>Training runs</h2>" + _html_table(runs[columns], left=("group", "label"))


def _failures(folder: Path, table: Any) -> str:
    bad = table[table["status"] == "failed"].drop_duplicates("job")
    if bad.empty:
        return ""
    items = "".join(
        f'<li><b>{_e(r.label)}</b>: <span class="bad">{_e(r.error)}</span> '
        f'<span class="muted">(log {_e(job_dir(folder, r.job) / "log.txt")})</span></li>'
        for r in bad.itertuples())
    return f"<h2>Failures</h2><ul>{items}</ul>"


def _timings(folder: Path, table: Any) -> str:
    jobs = table.drop_duplicates("job")
    done = jobs[jobs["seconds"].notna()]
    lines = ["<h2>Timings</h2>"]
    if not done.empty:
        by_kind = done.groupby("kind").agg(
            jobs=("seconds", "count"), total_s=("seconds", "sum"),
            median_s=("seconds", "median"), max_s=("seconds", "max"),
            cpu_s=("cpu_seconds", "sum")).reset_index()
        by_kind.columns = ["kind", "jobs", "wall s", "median wall s", "max wall s",
                           "CPU s (all threads)"]
        lines.append(_html_table(by_kind, left=("kind",)))
    runs = [json.loads(line) for line in _lines(folder / "runs.jsonl")]
    if runs:
        import pandas as pd

        frame = pd.DataFrame(runs)
        columns = [c for c in ("started_at", "backend", "slots", "ran", "skipped", "failed",
                               "seconds", "jobs_seconds") if c in frame.columns]
        lines.append("<p>Calls of <code>convergent run</code> on this folder (jobs_seconds / "
                     "seconds is the parallel speed-up):</p>" + _html_table(frame[columns]))
    return "\n".join(lines)


def _lines(file: Path) -> list[str]:
    try:
        return [line for line in file.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _configs(plan: Plan) -> str:
    items = []
    for job in plan.jobs.values():
        items.append(f"<details><summary>{_e(job.kind)} <b>{_e(job.label)}</b> "
                     f"<code class=\"muted\">{_e(job.key)}</code></summary><pre>"
                     f"{_e(json.dumps(job.config, indent=2, sort_keys=True))}</pre></details>")
    return "<h2>Job configs</h2>" + "".join(items)


def _versions(folder: Path, plan: Plan) -> str:
    seen: dict[str, str] = {}
    for job in plan.jobs.values():
        for entry in _read(job_dir(folder, job.key) / "result.json").get("entries", [])[:1]:
            seen = entry.get("versions", {}) or seen
        if seen:
            break
    now = versions()
    keys = sorted(set(seen) | set(now))
    rows = "".join(f'<tr><td class="l">{_e(k)}</td><td class="l">{_e(seen.get(k, ""))}</td>'
                   f'<td class="l">{_e(now.get(k, ""))}</td></tr>' for k in keys)
    return ("<h2>Versions</h2><table><thead><tr><th class=\"l\">package</th><th class=\"l\">"
            "results</th><th class=\"l\">report</th></tr></thead><tbody>" + rows
            + "</tbody></table>")
