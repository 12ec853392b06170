// The Influence page's live area: τ and k sliders, the per-copy Δ histogram, the drop-count histogram with the
// T − k cut, the flagged count against τ and the metrics, all recomputed here on every move. Python gets the
// chosen τ/k once the user settles (DEBOUNCE_MS after the last move) and redraws only what needs the server.
const DEBOUNCE_MS = 300;
const SVG = "http://www.w3.org/2000/svg";

function decode(b64) {
  const s = atob(b64);
  const a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a;
}

const fmt = (v) => {
  const a = Math.abs(v);
  const s = a >= 1e6 ? (a / 1e6).toPrecision(3) + "M" : a >= 1e3 ? (a / 1e3).toPrecision(3) + "k"
    : a >= 1 || a === 0 ? String(+a.toPrecision(3)) : a.toPrecision(2);
  return (v < 0 ? "−" : "") + s;
};
const signed = (v, d = 2) => (v < 0 ? "−" : "+") + Math.abs(v).toFixed(d);
const symlog = (x) => Math.sign(x) * Math.log10(1 + Math.abs(x));
const logc = (v) => Math.log10(1 + v);

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// One chart: counts per bin (grouped bars) or per τ (lines), log y axis (piles differ by 100×).
function chart(box, spec) {
  const w = Math.max(240, box.clientWidth || 320), h = spec.height || 270;
  const m = { l: 46, r: 10, t: 50, b: 40 };
  const pw = w - m.l - m.r, ph = h - m.t - m.b;
  const svg = el("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img" });
  svg.appendChild(el("title", {}, spec.title));
  const [x0, x1] = spec.xRange;
  const X = (x) => m.l + ((x - x0) / (x1 - x0)) * pw;
  let top = 1;
  for (const s of spec.series) for (const v of s.values) top = Math.max(top, v);
  const ymax = logc(top) * 1.08;
  const Y = (v) => m.t + ph - (logc(v) / ymax) * ph;
  svg.appendChild(el("text", { x: 4, y: 15, class: "title" }, spec.title));
  if (spec.subtitle) svg.appendChild(el("text", { x: 4, y: 29, class: "sub" }, spec.subtitle));
  if (spec.shade) {
    const a = X(Math.max(x0, spec.shade[0])), b = X(Math.min(x1, spec.shade[1]));
    if (b > a) svg.appendChild(el("rect", { x: a, y: m.t, width: b - a, height: ph, class: "shade" }));
  }
  for (let d = 0; 10 ** d <= top * 1.2; d++) {  // y grid at 1, 10, 100, …
    const v = 10 ** d, y = Y(v);
    svg.appendChild(el("line", { x1: m.l, x2: m.l + pw, y1: y, y2: y, class: "grid" }));
    svg.appendChild(el("text", { x: m.l - 4, y: y + 4, class: "tick", "text-anchor": "end" }, fmt(v)));
  }
  svg.appendChild(el("text", { x: m.l - 4, y: Y(0) + 4, class: "tick", "text-anchor": "end" }, "0"));
  if (spec.kind === "bars") {
    const nb = spec.series[0].values.length, bw = pw / nb, sw = bw / spec.series.length;
    spec.series.forEach((s, j) => {
      const path = [];
      s.values.forEach((v, i) => {
        if (v <= 0) return;
        const x = m.l + i * bw + j * sw, y = Y(v);
        path.push(`M${x.toFixed(1)} ${(m.t + ph).toFixed(1)}V${y.toFixed(1)}h${Math.max(1, sw - 0.4).toFixed(1)}V${(m.t + ph).toFixed(1)}z`);
      });
      svg.appendChild(el("path", { d: path.join(""), fill: s.colour, class: "bars" }));
    });
  } else {
    spec.series.forEach((s) => {
      const pts = s.values.map((v, i) => `${X(spec.xs[i]).toFixed(1)},${Y(v).toFixed(1)}`);
      svg.appendChild(el("polyline", { points: pts.join(" "), stroke: s.colour, class: "line" }));
    });
  }
  svg.appendChild(el("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, class: "axis" }));
  for (const [x, label] of spec.xTicks) {
    if (x < x0 - 1e-9 || x > x1 + 1e-9) continue;
    svg.appendChild(el("text", { x: X(x), y: m.t + ph + 15, class: "tick", "text-anchor": "middle" }, label));
  }
  svg.appendChild(el("text", { x: m.l + pw / 2, y: h - 4, class: "axtitle", "text-anchor": "middle" }, spec.xTitle));
  if (spec.marker !== undefined) {
    const x = X(Math.min(x1, Math.max(x0, spec.marker)));
    svg.appendChild(el("line", { x1: x, x2: x, y1: m.t, y2: m.t + ph, class: "marker" }));
    if (spec.markerLabel) {
      const right = x < m.l + pw * 0.6;
      svg.appendChild(el("text", { x: x + (right ? 4 : -4), y: m.t + 12, class: "mlabel",
        "text-anchor": right ? "start" : "end" }, spec.markerLabel));
    }
  }
  const legend = el("g", {});
  let lx = m.l + pw;
  for (const s of [...spec.series].reverse()) {
    const t = el("text", { x: lx, y: m.t - 6, class: "legend", "text-anchor": "end" }, s.name);
    legend.appendChild(t);
    lx -= 8 + 7.2 * s.name.length;
    legend.appendChild(el("rect", { x: lx, y: m.t - 15, width: 9, height: 9, fill: s.colour }));
    lx -= 8;
  }
  svg.appendChild(legend);
  box.replaceChildren(svg);
}

function build(root, data) {
  const start = performance.now();
  const { N, T } = data;
  const g = data.grid;
  const below = decode(data.below), bin = decode(data.bin);
  const truth = data.truth ? decode(data.truth) : null;
  const sorted = below.slice();  // each point's positions in order: its drop count at τ_i is how many are ≤ i
  for (let o = 0; o < N * T; o += T) sorted.subarray(o, o + T).sort();
  const s = { version: data.version, rev: null, N, T, g, below, bin, truth, sorted, data,
              i: 0, k: 0, copy: 0, curve: null, curveK: -1, timer: null };
  s.start = start;
  s.nPoison = truth ? truth.reduce((a, b) => a + b, 0) : 0;

  for (const old of [...root.children]) if (old.classList.contains("live")) old.remove();  // not the CSS beside it
  const box = document.createElement("div");
  box.className = "live";
  box.dataset.lo = g.lo; box.dataset.step = g.step;  // τ_i = lo + i · step (units of the scale)
  box.innerHTML = `
    <div class="controls">
      <label class="tau">τ <span class="slot"><input type="range" min="0" max="${g.n}" step="1" aria-label="tau"><span
        class="tick-sugg" title="the suggestion"></span></span><output></output></label>
      <label class="k">k <input type="range" min="0" max="${T - 1}" step="1" aria-label="k"><output></output></label>
    </div>
    <div class="metrics"><div class="cards"></div><button type="button" class="sugg"></button></div>
    <div class="charts"><div><label class="copy">copy <select></select></label><div class="c-delta"></div></div>
      <div class="c-count"></div><div class="c-curve"></div></div>
    <div class="help"></div>`;
  root.appendChild(box);
  const q = (sel) => box.querySelector(sel);
  s.tauInput = q(".tau input"); s.kInput = q(".k input"); s.copySelect = q(".copy select");
  data.names.forEach((name, t) => s.copySelect.add(new Option(name, t)));
  s.box = box;
  s.tauInput.addEventListener("input", () => { s.i = +s.tauInput.value; draw(s); settle(s); });
  s.kInput.addEventListener("input", () => { s.k = +s.kInput.value; draw(s); settle(s); });
  s.copySelect.addEventListener("change", () => { s.copy = +s.copySelect.value; draw(s); });
  q(".sugg").addEventListener("click", () => {
    if (!s.data.suggested) return;
    s.i = s.data.suggested.index; s.k = s.data.suggested.k; sync(s); draw(s); settle(s, 0);
  });
  new ResizeObserver(() => draw(s)).observe(box);
  return s;
}

function sync(s) {
  s.tauInput.value = s.i; s.kInput.value = s.k; s.copySelect.value = s.copy;
}

function settle(s, wait = DEBOUNCE_MS) {
  clearTimeout(s.timer);
  s.timer = setTimeout(() => s.setStateValue("choice", {
    version: s.version, index: s.i, k: s.k, copy: s.copy, at: Date.now(),  // a settle back on an old value counts
    suggested: !!s.data.suggested && s.i === s.data.suggested.index && s.k === s.data.suggested.k,
  }), wait);
}

function curveFor(s) {  // flagged count at every τ on the grid, for this k: a point is flagged from its (T−k)-th position on
  if (s.curveK === s.k) return s.curve;
  const { N, T, g, sorted, truth } = s, at = T - s.k - 1;
  const all = new Float64Array(g.n + 2), poison = new Float64Array(g.n + 2);
  for (let p = 0; p < N; p++) {
    const pos = sorted[p * T + at];
    all[pos]++;
    if (truth && truth[p]) poison[pos]++;
  }
  for (let i = 1; i < g.n + 2; i++) { all[i] += all[i - 1]; poison[i] += poison[i - 1]; }
  s.curve = { all, poison }; s.curveK = s.k;
  return s.curve;
}

function draw(s) {
  const { N, T, g, sorted, truth, data } = s;
  const i = s.i, cut = T - s.k, tauRel = g.lo + i * g.step;
  let nFlagged = 0, nPoisonFlagged = 0;
  const dropHist = [new Float64Array(T + 1), new Float64Array(T + 1)];
  const bins = data.edges.bins, deltaHist = [new Float64Array(bins), new Float64Array(bins)];
  for (let p = 0, o = 0; p < N; p++, o += T) {
    let lo = 0, hi = T;  // drops = how many of the point's positions are ≤ i
    while (lo < hi) { const mid = (lo + hi) >> 1; if (sorted[o + mid] <= i) lo = mid + 1; else hi = mid; }
    const flagged = lo >= cut;
    const group = truth ? truth[p] : (flagged ? 1 : 0);
    if (flagged) { nFlagged++; if (truth && truth[p]) nPoisonFlagged++; }
    dropHist[group][lo]++;
    deltaHist[group][s.bin[o + s.copy]]++;
  }
  const [c0, c1] = [data.colours.clean, data.colours.poison];
  const names = data.groups;
  const raw = tauRel * data.scale;
  const tauText = `τ = ${signed(tauRel)} × scale = ${raw === 0 ? "0" : raw.toPrecision(3)}`;
  s.box.querySelector(".tau output").textContent = `${signed(tauRel)} × scale (${raw === 0 ? "0" : raw.toPrecision(3)})`;
  s.box.querySelector(".k output").textContent = `${s.k}: flag at ≥ ${cut} of ${T} drops`;
  const sg = data.suggested;  // null when the suggested τ lies off this grid (a typed τ far from it)
  const tick = s.box.querySelector(".tick-sugg"), btn = s.box.querySelector(".sugg");
  tick.hidden = btn.hidden = !sg;
  if (sg) {
    tick.style.left = `calc(11px + ${sg.index / Math.max(1, g.n)} * (100% - 32px))`;
    const isSugg = i === sg.index && s.k === sg.k;
    btn.textContent = isSugg ? "at the suggestion" : `suggested: τ ${signed(g.lo + sg.index * g.step)}, k ${sg.k}`;
    btn.disabled = isSugg;
  }

  const cards = [["Flagged", `${nFlagged}`, `of ${N} training points`]];
  if (truth) {
    const tpr = s.nPoison ? nPoisonFlagged / s.nPoison : 0, prec = nFlagged ? nPoisonFlagged / nFlagged : 0;
    const f1 = tpr + prec ? (2 * tpr * prec) / (tpr + prec) : 0;
    cards.push(["Poisons found", `${nPoisonFlagged} / ${s.nPoison}`, "flagged poisons (known here)"],
               ["Clean flagged", `${nFlagged - nPoisonFlagged}`, "false positives: clean points the rule flags"],
               ["TPR", tpr.toFixed(3), "share of the poisons flagged"],
               ["Precision", prec.toFixed(3), "share of the flagged that are poisons"],
               ["F1", f1.toFixed(3), "harmonic mean of TPR and precision"]);
  }
  s.box.querySelector(".cards").innerHTML = cards.map(([name, value, help]) =>
    `<div class="card${name === "Clean flagged" && value !== "0" ? " warn" : ""}" title="${help}"><span>${name}</span><b>${value}</b></div>`).join("");

  const e = data.edges, bw = (e.hi - e.lo) / bins;
  const xTicks = e.ticks.map((v, j) => [(v - e.lo) / bw, e.labels[j]]);
  chart(s.box.querySelector(".c-delta"), {
    kind: "bars", title: "Δ per training point, this copy",
    subtitle: `dashed: ${tauText}`, xRange: [0, bins], xTicks,
    xTitle: "Δ / scale (symmetric log; left of 0 = influence dropped)",
    series: [{ name: names[0], colour: c0, values: deltaHist[0] }, { name: names[1], colour: c1, values: deltaHist[1] }],
    marker: (Math.min(e.hi, Math.max(e.lo, symlog(tauRel))) - e.lo) / bw,
  });
  const step = Math.max(1, Math.ceil(T / 10));
  const countTicks = [];
  for (let d = 0; d <= T; d += step) countTicks.push([d + 0.5, String(d)]);
  chart(s.box.querySelector(".c-count"), {
    kind: "bars", title: "Drops per training point", subtitle: `copies whose Δ < τ; cut at T − k = ${T} − ${s.k} = ${cut}`,
    xRange: [0, T + 1], xTicks: countTicks, xTitle: `drops (of T = ${T}); shaded = flagged`,
    series: [{ name: names[0], colour: c0, values: dropHist[0] }, { name: names[1], colour: c1, values: dropHist[1] }],
    shade: [cut, T + 1], marker: cut, markerLabel: `≥ ${cut}: flagged`,
  });
  const curve = curveFor(s), xs = [], all = [], clean = [], poison = [];
  for (let j = 0; j <= g.n; j++) {
    xs.push(g.lo + j * g.step); all.push(curve.all[j]);
    if (truth) { poison.push(curve.poison[j]); clean.push(curve.all[j] - curve.poison[j]); }
  }
  const tauTicks = [];
  const tstep = g.n * g.step > 6 ? 2 : g.n * g.step > 3 ? 1 : 0.5;
  for (let v = Math.ceil(g.lo / tstep) * tstep; v <= g.lo + g.n * g.step + 1e-9; v += tstep) tauTicks.push([v, signed(v, tstep < 1 ? 1 : 0)]);
  chart(s.box.querySelector(".c-curve"), {
    kind: "lines", title: "Flagged against τ", subtitle: `at k = ${s.k}; the line marks the current τ`,
    xRange: [g.lo, g.lo + g.n * g.step], xs, xTicks: tauTicks, xTitle: "τ (units of the scale)",
    series: truth ? [{ name: "clean flagged", colour: c0, values: clean }, { name: "poisons flagged", colour: c1, values: poison }]
                  : [{ name: "flagged", colour: c1, values: all }],
    marker: tauRel, markerLabel: `${nFlagged} flagged`,
  });
  const flat = i > 0 && curve.all[i] === curve.all[i - 1] && i < g.n && curve.all[i] === curve.all[i + 1];
  s.box.querySelector(".help").innerHTML =
    `<b>A drop</b>: a copy's Δ (its influence on the copy minus on the test image) below τ. <b>Scale</b>: the median ` +
    `|influence| on the test image (${fmt(data.scale)}), so τ reads the same on any data. <b>T − k</b>: how many of ` +
    `the ${T} copies must drop to flag a point; poisons pile up at T. Copies are named by their transformation and ` +
    `the random label they carry.` + (flat ? ` <i>Here the flagged count is flat: no point's ${cut}-th lowest Δ lies ` +
    `near this τ, so moving τ a step changes nothing.</i>` : "");
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let s = parentElement.__deltaLive;
  let start = null;
  if (!s || s.version !== data.version) {
    s = build(parentElement, data);
    parentElement.__deltaLive = s;
    start = s.start;
  }
  s.setStateValue = setStateValue;
  s.data = data;  // the suggestion and the chosen τ/k travel with every run
  if (s.rev !== data.rev) {  // τ or k set on the server (typed τ, another mode, a new experiment)
    s.rev = data.rev; s.i = data.tau_index; s.k = data.k; s.copy = Math.min(s.copy, data.T - 1);
    sync(s);
  }
  draw(s);
  if (start !== null) s.box.dataset.firstDrawMs = (performance.now() - start).toFixed(1);  // decode, sort, draw
}
