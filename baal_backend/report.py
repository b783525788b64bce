"""`GET /report/<project>`: one self-contained HTML page a team reads to see the learning.

Everything comes from files the training runs wrote (`insight`): the page never scores a text.
Plotly's JS is inlined (no CDN: the page works offline and behind a firewall); the project's data
travels in one JSON script element; texts are written into the page as text nodes, never as HTML.
A project with several questions, or a multi-label one (`question_insight`), gets one section per
question (its labels, quality, stopping signal and suspicious labels) in place of the class charts.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from functools import lru_cache
from typing import Dict

from . import insight, question_insight
from .answers import for_question
from .engine import Engine

#: One single-choice question: margin <= 0.3, the source notebook's "uncertain" texts. Several
#: questions: the rank score of the `question_insight.TO_LABEL_ROWS`-th lowest pool row.
DEFAULT_THRESHOLD = 0.3


def collect(engine: Engine, project_id: str) -> Dict:
    """The page's data: labels over time and per class, the versions' quality with the stopping
    signal, the newest version's pool sample and suspicious labels, and the training status;
    `questions`: None for one single-choice question, else one section per question. All of it
    as the current config reads it: its questions only, whatever older versions were trained on."""
    project = engine.project(project_id)
    schema = engine.schema(project_id)
    stored = sorted(project.store.all(), key=lambda lb: lb.updated_at) if project.label_count() else []
    per_class = {name: 0 for name in schema.labels}
    if schema.simple:
        for lb in stored:
            per_class[lb.label] = per_class.get(lb.label, 0) + 1
    else:  # the first question's choices (each question's are in its section)
        for _, choices in for_question(stored, schema, schema.first):
            for choice in choices:
                per_class[choice] += 1
    history = question_insight.config_history(schema, [insight.without_stop_sets(h) for h in insight.history(project)])
    latest = insight.current(project) or {}
    if ("questions" in latest) == schema.simple:  # written under another config: its rows do not fit this page
        latest = {}
    elif not schema.simple:
        latest = question_insight.config_insight(schema, latest)
    stopping = insight.stop_signal(project, engine.settings.min_labels, schema)
    return {
        "project": project_id,
        "classes": list(schema.labels),
        "generated_at": time.time(),
        "labels_over_time": [[lb.updated_at, k + 1] for k, lb in enumerate(stored)],
        "labels_per_class": per_class,
        "versions": history,
        "current": engine.current_version(project_id),
        "stopping": stopping,
        "questions": None if schema.simple else question_insight.sections(schema, stored, latest, stopping),
        "pool_version": latest.get("version"),
        "pool": latest.get("pool") or [],
        "suspicious": latest.get("suspicious") or [],
        "suspicious_reason": latest.get("suspicious_reason"),
        "training": {"running": engine.jobs.is_training(project_id), "last_run": project.last_run},
        # what needs fixing for this project (e.g. "push:<id>": a push to Label Studio failed)
        "problems": sorted(text for key, text in engine.problems.items() if key.partition(":")[2] == project_id),
        "threshold": DEFAULT_THRESHOLD if schema.simple else question_insight.default_threshold(latest.get("pool", [])),
    }


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@lru_cache(maxsize=1)
def csp() -> str:
    """The page's Content-Security-Policy: it runs its two inline scripts (plotly.js and the page's
    own, named by their sha256), no other script and no eval, and reaches nothing outside itself.
    Styles stay 'unsafe-inline': plotly.js writes style rules and style attributes as it draws."""
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
                      for script in (_plotly_js(), _APP))
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data: blob:; "
            "font-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def render(data: Dict) -> str:
    """The HTML page of `collect`'s data (served with `csp()`)."""
    payload = json.dumps(data).replace("<", "\\u003c")  # nothing in the data can close the script element
    parts = {"PLOTLY": _plotly_js(), "APP": _APP, "DATA": payload,
             "TITLE": f"Active learning report, project {int(data['project'])}"}
    return re.sub(r"\{\{(PLOTLY|APP|DATA|TITLE)\}\}", lambda m: parts[m.group(1)], _PAGE)  # one pass: no part is re-read


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title><link rel="icon" href="data:,">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.plot{height:330px;border:1px solid #eee}
.box{padding:.6rem .9rem;border-radius:6px;background:#f4f6f8;margin:.4rem 0}
.stop{background:#e3f6e8;border-left:4px solid #2a9d4b}.go{border-left:4px solid #999}.fail{background:#fdecea}
table{border-collapse:collapse;width:100%;font-size:.85rem}td,th{border-bottom:1px solid #eee;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#fafafa}.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}
.question{border-top:2px solid #ddd;margin-top:2rem}.question h3{font-size:1rem}
</style>
<script>{{PLOTLY}}</script>
</head><body>
<h1>{{TITLE}}</h1>
<div id="status" class="box"></div>
<div id="stopping" class="box"></div>
<div class="grid">
 <div><h2>Labels over time</h2><div id="labels-time" class="plot"></div></div>
 <div><h2>Labels per class</h2><div id="labels-class" class="plot"></div></div>
 <div><h2>Learning curve (held-out quality per version)</h2><div id="curve" class="plot"></div></div>
 <div><h2>Uncertainty over the unlabeled pool</h2><div id="uncertainty" class="plot"></div></div>
</div>
<div id="scatter-section"><h2>Class probabilities of the unlabeled pool <span class="muted" id="scatter-note"></span></h2>
<div id="scatter" class="plot" style="height:420px"></div></div>
<h2>Label these next</h2>
<p><label><span id="threshold-name">margin</span> &le; <input id="threshold" type="number" min="0" max="1" step="0.05"></label>
 <span id="next-count"></span>
 <button id="csv">Export CSV</button> <button id="json">Export JSON</button></p>
<table id="next"><thead><tr><th>task</th><th>text</th><th>most probable</th><th>runner-up</th><th class="num">margin</th><th class="num">score</th></tr></thead><tbody></tbody></table>
<div id="suspicious-section"><h2>Suspicious labels</h2>
<p class="muted">Labels that heads trained without them disagree with most (out-of-fold probabilities): check these first.</p>
<div id="suspicious-note" class="muted"></div>
<table id="suspicious"><thead><tr><th>task</th><th>text</th><th>label</th><th class="num">p(label)</th><th>model says</th><th class="num">p</th></tr></thead><tbody></tbody></table></div>
<div id="questions"></div>
<script type="application/json" id="data">{{DATA}}</script>
<script>{{APP}}</script>
</body></html>
"""

#: The page's script: it draws from the data element; plotly reads its labels as HTML-like markup
#: (`<a href>` becomes a link), so each text from the project goes in through `esc`.
_APP = """
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const Q = D.questions || null;  // several questions, or a multi-label one: a section each
const CFG = {displaylogo: false, responsive: true};
const $ = (id) => document.getElementById(id);
function text(el, s) { el.textContent = s; return el; }
function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const [value, cls] of cells) { const td = text(document.createElement("td"), value); if (cls) td.className = cls; tr.appendChild(td); }
  tbody.appendChild(tr);
}
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");  // plotly's markup
function when(t) { return t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : ""; }

// training status and the stopping signal
const run = D.training.last_run || {};
const running = D.training.running === null ? "Training: unknown (the training queue cannot be reached). " :
  D.training.running ? "Training: running or queued. " : "Training: idle. ";
text($("status"), running +
  (run.status ? `Last run: ${run.status}` + (run.version ? ` (${run.version})` : "") +
   (run.seconds !== undefined ? `, ${run.seconds} s` : "") + (run.at ? `, at ${run.at}` : "") +
   (run.error ? `. Error: ${run.error}` : "") + (run.reason ? `. ${run.reason}` : "") : "No training run yet.") +
  ` Serving ${D.current}.` + (D.problems || []).map((p) => ` Problem: ${p}.`).join(""));
if (run.status === "failed" || (D.problems || []).length) $("status").classList.add("fail");
text($("stopping"), (D.stopping.stop ? "Stop signal: " : "Stop signal: not yet. ") + D.stopping.reason);
$("stopping").classList.add(D.stopping.stop ? "stop" : "go");

// labels
Plotly.newPlot("labels-time", [{x: D.labels_over_time.map(p => new Date(p[0] * 1000)), y: D.labels_over_time.map(p => p[1]),
  mode: "lines", line: {shape: "hv"}, name: "labels"}], {margin: {t: 10}, yaxis: {title: {text: "labels"}}}, CFG);
if (Q) $("labels-class").parentElement.hidden = true;  // each question's choices are in its section
else {
  const classes = Object.keys(D.labels_per_class);
  Plotly.newPlot("labels-class", [{type: "bar", x: classes.map(esc), y: classes.map(c => D.labels_per_class[c])}],
    {margin: {t: 10, b: 90}, yaxis: {title: {text: "labels"}}}, CFG);
}

// learning curve with the stopping signal marked (several questions: their mean, and each question's macro-F1)
const measured = D.versions.filter(v => v.accuracy != null || v.macro_f1 != null);
const curve = [
  {x: measured.map(v => v.n_labels), y: measured.map(v => v.accuracy), text: measured.map(v => esc(v.version)), mode: "lines+markers", name: "accuracy"},
  {x: measured.map(v => v.n_labels), y: measured.map(v => v.macro_f1), text: measured.map(v => esc(v.version)), mode: "lines+markers", name: Q ? "macro-F1 (mean)" : "macro-F1"},
];
for (const q of Q || []) {
  const own = measured.filter(v => v.questions && v.questions[q.name] && v.questions[q.name].macro_f1 != null);
  curve.push({x: own.map(v => v.n_labels), y: own.map(v => v.questions[q.name].macro_f1), mode: "lines+markers",
              line: {dash: "dot"}, name: esc(`macro-F1 ${q.name}`)});
}
const shapes = [], notes = [];
if (D.stopping.stop && (D.stopping.checks.length || D.versions.length)) {
  const at = D.stopping.checks.length ? D.stopping.checks[0].labels[1] : D.versions[D.versions.length - 1].n_labels;
  shapes.push({type: "line", x0: at, x1: at, y0: 0, y1: 1, yref: "paper", line: {color: "#2a9d4b", dash: "dash"}});
  notes.push({x: at, y: 1, yref: "paper", text: "you could stop", showarrow: false, xanchor: "right"});
}
Plotly.newPlot("curve", curve, {margin: {t: 10}, xaxis: {title: {text: "labels"}}, yaxis: {title: {text: "held-out"}, range: [0, 1.02]},
  shapes: shapes, annotations: notes}, CFG);

// uncertainty histogram (1 - margin between the two most probable classes; several questions:
// 1 - the rank score of each task's least certain answer, the order Label Studio serves in)
const certainty = (r) => Q ? r.rank : r.margin;
Plotly.newPlot("uncertainty", [{type: "histogram", x: D.pool.map(r => 1 - certainty(r)), nbinsx: 20}],
  {margin: {t: 10}, xaxis: {title: {text: Q ? "uncertainty (1 - rank score of the least certain answer)" : "uncertainty (1 - margin)"}, range: [0, 1]},
   yaxis: {title: {text: "unlabeled texts"}}}, CFG);

// class probabilities: both classes for a binary project, the top two otherwise; the band margin <= t shaded
const binary = D.classes.length === 2;
function band(t) {
  if (binary) return [{type: "rect", x0: (1 - t) / 2, x1: (1 + t) / 2, y0: 0, y1: 1, fillcolor: "orange", opacity: 0.2, line: {width: 0}}];
  return [{type: "path", path: `M ${t},0 L 1,${1 - t} L 1,1 L 0,0 Z`, fillcolor: "orange", opacity: 0.15, line: {width: 0}}];
}
if (Q) $("scatter-section").hidden = true;  // answers of several questions have no two classes to plot
else {
  const prob = (r, c) => r.top[0] === c ? r.top[1] : (r.second[0] === c ? r.second[1] : 0);
  const sx = binary ? D.pool.map(r => prob(r, D.classes[0])) : D.pool.map(r => r.top[1]);
  const sy = binary ? D.pool.map(r => prob(r, D.classes[1])) : D.pool.map(r => r.second[1]);
  text($("scatter-note"), binary ? `(p(${D.classes[0]}) against p(${D.classes[1]}))` : "(most probable class against the runner-up)");
  Plotly.newPlot("scatter", [{x: sx, y: sy, mode: "markers", type: "scatter", marker: {size: 5, opacity: 0.6},  // SVG: WebGL's scattergl needs eval
    text: D.pool.map(r => esc(`task ${r.task}: ${r.text.slice(0, 80)}`)), hoverinfo: "text"}],
    {margin: {t: 10}, xaxis: {title: {text: binary ? "p(" + esc(D.classes[0]) + ")" : "p(most probable)"}, range: [0, 1]},
     yaxis: {title: {text: binary ? "p(" + esc(D.classes[1]) + ")" : "p(runner-up)"}, range: [0, 1]}, shapes: band(D.threshold)}, CFG);
}

// the to-label table, its threshold and its exports
const answer = (a) => (a.choices.length ? a.choices.join(" + ") : "(none)") + ` (${a.p.toFixed(2)})`;
if (Q) {
  text($("threshold-name"), "rank score of the least certain answer");
  const head = $("next").tHead.rows[0];
  head.replaceChildren();
  for (const [name, cls] of [["task"], ["text"], ["least certain question"], ["answers"], ["rank score", "num"], ["score", "num"]]) {
    const th = text(document.createElement("th"), name); if (cls) th.className = cls; head.appendChild(th);
  }
}
let selected = [];
function update() {
  const t = parseFloat($("threshold").value);
  selected = D.pool.filter(r => certainty(r) <= t).sort((a, b) => certainty(a) - certainty(b));
  const body = $("next").tBodies[0];
  body.replaceChildren();
  for (const r of selected.slice(0, 500))
    row(body, Q ? [[String(r.task)], [r.text], [r.question || ""], [Object.entries(r.answers).map(([n, a]) => `${n}: ${answer(a)}`).join("; ")],
                   [r.rank.toFixed(3), "num"], [r.score.toFixed(3), "num"]] :
              [[String(r.task)], [r.text], [`${r.top[0]} (${r.top[1].toFixed(2)})`], [`${r.second[0]} (${r.second[1].toFixed(2)})`],
               [r.margin.toFixed(3), "num"], [r.score.toFixed(3), "num"]]);
  text($("next-count"), `${selected.length} of ${D.pool.length} sampled unlabeled texts` + (selected.length > 500 ? " (first 500 shown)" : "") +
       (D.pool_version ? ` (scored by ${D.pool_version})` : " (no version has scored the pool yet)"));
  if (!Q) Plotly.relayout("scatter", {shapes: band(t)});
}
$("threshold").value = D.threshold;
$("threshold").addEventListener("input", update);
function download(name, type, content) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([content], {type: type}));
  a.download = name; document.body.appendChild(a); a.click(); a.remove();
}
const flat = Q ? (r) => ({task: r.task, text: r.text, question: r.question || "", answer: r.question ? r.answers[r.question].choices.join(" + ") : "",
                          p_answer: r.question ? r.answers[r.question].p : "", rank: r.rank, score: r.score}) :
  (r) => ({task: r.task, text: r.text, top: r.top[0], p_top: r.top[1], second: r.second[0], p_second: r.second[1], margin: r.margin, score: r.score});
const quote = (v) => {  // CSV-quoted (any , " CR or LF), and a leading = + - @ tab or CR kept from starting a formula
  let t = String(v);
  if (typeof v === "string" && /^[=+\\-@\\t\\r]/.test(t)) t = "'" + t;
  return /[",\\r\\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
};
$("csv").addEventListener("click", () => {
  const rows = selected.map(flat), head = Q ? ["task", "text", "question", "answer", "p_answer", "rank", "score"] :
    ["task", "text", "top", "p_top", "second", "p_second", "margin", "score"];
  download(`project-${D.project}-to-label.csv`, "text/csv", [head.join(","), ...rows.map(r => head.map(k => quote(r[k])).join(","))].join("\\n") + "\\n");
});
$("json").addEventListener("click", () => download(`project-${D.project}-to-label.json`, "application/json", JSON.stringify(selected.map(flat), null, 1)));
update();

// suspicious labels
if (Q) $("suspicious-section").hidden = true;  // each question lists its own
else {
  const sbody = $("suspicious").tBodies[0];
  for (const s of D.suspicious)
    row(sbody, [[String(s.task)], [s.text], [s.label], [s.p_label.toFixed(3), "num"], [s.model_says], [s.p_model.toFixed(3), "num"]]);
  text($("suspicious-note"), D.suspicious.length ? `${D.suspicious.length} labels` : (D.suspicious_reason || "no label looks wrong to the model"));
}

// one section per question: its labels per choice, quality, stopping signal and suspicious labels
const LOOKS = {missing: "missing (not ticked)", extra: "extra (ticked)", "other class": "another class"};
function quality(q) {
  const m = q.metrics || {}, f = (v) => v.toFixed(3);
  let s = `${q.n_labels} labels answer it. `;
  if (m.macro_f1 != null) s += `Held-out macro-F1 ${f(m.macro_f1)}` + (m.micro_f1 != null ? `, micro-F1 ${f(m.micro_f1)}` : "") +
    (m.accuracy != null ? `, accuracy ${f(m.accuracy)}` : "") + ` (${m.eval}).`;
  else s += m.reason ? `No quality yet: ${m.reason}.` : "No quality measured yet.";
  const c = m.cardinality;
  if (c && typeof c === "object" && c.labels != null && c.predicted != null)
    s += ` Labels per text: ${c.labels} annotated, ${c.predicted} predicted.`;
  return s;
}
function table(parent, heads, rows) {
  const t = document.createElement("table"), tr = document.createElement("tr");
  for (const [name, cls] of heads) { const th = text(document.createElement("th"), name); if (cls) th.className = cls; tr.appendChild(th); }
  t.createTHead().appendChild(tr);
  const body = t.createTBody();
  for (const cells of rows) row(body, cells);
  parent.appendChild(t);
  return t;
}
(Q || []).forEach((q, i) => {
  const root = document.createElement("section");
  root.className = "question"; root.id = `question-${i}`;
  $("questions").appendChild(root);
  const add = (tag, cls, s) => { const el = document.createElement(tag); if (cls) el.className = cls; if (s !== undefined) text(el, s); root.appendChild(el); return el; };
  add("h2", "", `Question ${q.name}: ` + (q.multiple ? "any number of choices per text" : "one choice per text"));
  const st = q.stopping;
  add("div", "box stopping " + (st && st.stop ? "stop" : "go"), st ? (st.stop ? "Stop signal: " : "Stop signal: not yet. ") + st.reason :
      "Stop signal: not yet. No trained version predicts this question yet.");
  add("p", "quality", quality(q));
  const plot = add("div", "plot");
  plot.id = `question-${i}-labels`;
  Plotly.newPlot(plot.id, [{type: "bar", x: q.labels.map(esc), y: q.labels.map(c => q.labels_per_choice[c])}],
    {margin: {t: 10, b: 90}, yaxis: {title: {text: "labels"}}}, CFG);
  const f1 = (q.metrics || {}).per_label_f1;
  if (f1 && typeof f1 === "object") {
    add("h3", "", "Held-out F1 per label");
    table(root, [["label"], ["F1", "num"]], q.labels.filter(l => f1[l] != null).map(l => [[l], [f1[l].toFixed(3), "num"]])).className = "per-label";
  }
  add("h3", "", "Suspicious labels");
  add("div", "muted", q.suspicious.length ? `${q.suspicious.length} labels` : (q.suspicious_reason || "no label looks wrong to the model"));
  table(root, [["task"], ["text"], ["label"], ["looks"], ["p(label)", "num"], ["model says"]], q.suspicious.map(s => [
    [String(s.task)], [s.text], [s.label], [LOOKS[s.kind] || s.kind], [s.p_label.toFixed(3), "num"],
    [s.threshold != null ? `threshold ${s.threshold.toFixed(2)}` : `${s.model_says} (${s.p_model.toFixed(3)})`]])).className = "suspicious";
});
"""
