// A service's traffic shift, drawn live: the split of production traffic between the new and the
// old revision, and each revision's request rate, 5xx rate and p99 latency as the proxies
// measured them, with the rollback thresholds as dashed lines. The figures are counters read on
// every refresh; rates come from the difference between two readings.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const SHIFT_SAMPLES = 120;

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

// One small line chart: `series` [{name, cls, points: [[t, v]]}], `limit` a dashed line (or null).
function lineChart(title, unit, series, limit, cls) {
  const W = 280, H = 90, P = 4;
  const all = series.flatMap((s) => s.points);
  const ts = all.map((p) => p[0]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
  const top = Math.max(1e-9, limit || 0, ...all.map((p) => p[1])) * 1.15;
  const x = (t) => P + ((t - t0) / (t1 - t0)) * (W - 2 * P);
  const y = (v) => H - P - (v / top) * (H - 2 * P);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: `chart ${cls}`, width: W, height: H });
  chart.append(svg("rect", { x: 0, y: 0, width: W, height: H, class: "chart-bg" }));
  if (limit) {
    chart.append(svg("line", { x1: P, x2: W - P, y1: y(limit), y2: y(limit), class: "threshold" }));
  }
  for (const s of series) {
    if (!s.points.length) continue;
    chart.append(svg("polyline", {
      class: `series ${s.cls}`,
      "data-points": s.points.length,
      points: s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
    }));
  }
  const last = series.map((s) => {
    const p = s.points[s.points.length - 1];
    return p ? `${s.name} ${fmt(p[1])}${unit}` : "";
  }).filter(Boolean).join(" · ");
  return h("div", { class: "chart-box" },
    h("div", { class: "chart-title" }, title, h("span", { class: "muted" }, " " + last,
      limit ? ` (roll back over ${fmt(limit)}${unit})` : "")),
    chart);
}

// A share of traffic as the CLI prints it: 10, 2.5.
function share(v) {
  return String(Math.round(Number(v || 0) * 10) / 10);
}

function fmt(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

// Remembers a reading of the service's shift; resets when another deployment is primary.
function recordShift(history, s) {
  const d = s.deployments[0];
  if (!d || !d.lifecycleStage || s.deployments.length < 2) return null;
  let h0 = history.get(s.serviceName);
  if (!h0 || h0.deployment !== d.id) {
    h0 = { deployment: d.id, samples: [] };
    history.set(s.serviceName, h0);
  }
  const num = (v) => Number(v || 0);
  const f = d.figures || {}, g = d.previousFigures || {};
  h0.samples.push({
    t: Date.now() / 1000, pct: num(d.trafficPercent),
    newReq: num(f.requests), newErr: num(f.errors5xx), newP99: num(f.p99Ms),
    oldReq: num(g.requests), oldErr: num(g.errors5xx), oldP99: num(g.p99Ms),
  });
  if (h0.samples.length > SHIFT_SAMPLES) h0.samples.shift();
  return h0;
}

// The shift panel of a service card, or null when no shift is under way.
function shiftPanel(history, s) {
  const rec = recordShift(history, s);
  if (!rec) return null;
  const d = s.deployments[0], prev = s.deployments[1];
  const dc = s.deploymentConfiguration || {};
  const rb = dc.trafficRollback || {};
  const xs = rec.samples;
  const pairs = xs.slice(1).map((b, i) => [xs[i], b]);
  const rate = (req) => pairs.map(([a, b]) => [b.t, Math.max(0, b[req] - a[req]) / Math.max(0.001, b.t - a.t)]);
  const errRate = (req, err) => pairs.map(([a, b]) => {
    const n = b[req] - a[req];
    return [b.t, n > 0 ? (100 * Math.max(0, b[err] - a[err])) / n : 0];
  });
  const newName = shortId(d.taskDefinition), oldName = shortId(prev.taskDefinition);
  const series = (f) => [
    { name: newName, cls: "series-new", points: f("new") },
    { name: oldName, cls: "series-old", points: f("old") },
  ];
  const oldP99 = xs.length ? xs[xs.length - 1].oldP99 : 0;
  return h("div", { class: "shift", "data-stage": d.lifecycleStage, "data-traffic": d.trafficPercent },
    h("h3", {}, `Traffic shift: ${dc.strategy} · ${d.lifecycleStage} · `,
      h("b", { class: "traffic-percent" }, `${share(d.trafficPercent)}%`),
      ` on ${newName}, ${share(prev.trafficPercent)}% on ${oldName}`),
    h("div", { class: "charts" },
      lineChart("Production traffic", "%", [
        { name: newName, cls: "series-new", points: xs.map((p) => [p.t, p.pct]) },
        { name: oldName, cls: "series-old", points: xs.map((p) => [p.t, 100 - p.pct]) },
      ], null, "traffic-chart"),
      lineChart("Requests/s", "/s", series((w) => rate(w + "Req")), null, "rate-chart"),
      lineChart("5xx", "%", series((w) => errRate(w + "Req", w + "Err")), rb.errorPercent || null, "errors-chart"),
      lineChart("p99", " ms", series((w) => xs.map((p) => [p.t, p[w + "P99"]])),
        rb.p99Ratio && oldP99 ? rb.p99Ratio * oldP99 : null, "p99-chart")));
}
