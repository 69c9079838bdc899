/*
 * timeline.js: a camera's regularity timeline on its canvas: the last 60 s of scores,
 * the threshold line, the area below it, and the alert periods shaded.
 */
import { currentThreshold, serverNow, store } from './state.js';

export const TIMELINE_SECONDS = 60;
export const KEEP_SECONDS = TIMELINE_SECONDS + 10;  // a little extra so the left edge is never empty
const GAP_SECONDS = 3;                              // break the line across holes (camera lost)

const COLORS = {
  line: '#7cc4bb',
  threshold: '#d29922',
  belowBand: 'rgba(229, 83, 75, 0.07)',
  belowFill: 'rgba(229, 83, 75, 0.45)',
  alertSpan: 'rgba(229, 83, 75, 0.18)',
  label: '#6e7681',
};

// Merge overlapping [start, end] intervals so overlaps are not shaded twice.
function mergeSpans(spans) {
  spans.sort((a, b) => a[0] - b[0]);
  const out = [];
  for (const s of spans) {
    const last = out[out.length - 1];
    if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
    else out.push([s[0], s[1]]);
  }
  return out;
}

// Alert periods for one camera: from alert events, plus runs of scores that
// carried alerting=true (covers alerts that fell out of the list).
function alertSpans(rec, now) {
  const spans = [];
  for (const a of store.alerts.values()) {
    const ev = a.event;
    if (ev.camera !== rec.id) continue;
    spans.push([ev.started_at, ev.ended_at ?? (ev.state === 'open' ? now : ev.updated_at)]);
  }
  let runStart = null;
  let prev = null;
  for (const p of rec.scores) {
    if (p.a && runStart === null) runStart = p.t;
    if (!p.a && runStart !== null) { spans.push([runStart, prev.t]); runStart = null; }
    prev = p;
  }
  if (runStart !== null) spans.push([runStart, prev.t]);
  return mergeSpans(spans);
}

// Split scores into contiguous runs so a hole in the data is not bridged.
function scoreRuns(points) {
  const runs = [];
  let cur = [];
  for (const p of points) {
    if (cur.length && p.t - cur[cur.length - 1].t > GAP_SECONDS) { runs.push(cur); cur = []; }
    cur.push(p);
  }
  if (cur.length) runs.push(cur);
  return runs;
}

function sizeCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return null;
  const pw = Math.round(w * dpr);
  const ph = Math.round(h * dpr);
  if (canvas.width !== pw || canvas.height !== ph) { canvas.width = pw; canvas.height = ph; }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w, h };
}

export function drawTimeline(rec) {
  const c = sizeCanvas(rec.canvas);
  if (!c) return;  // tile not laid out (e.g. hidden)
  const { ctx, w, h } = c;
  ctx.clearRect(0, 0, w, h);

  const now = serverNow();
  const t0 = now - TIMELINE_SECONDS;
  const th = currentThreshold(rec);
  const points = rec.scores.filter((p) => p.t >= t0 - GAP_SECONDS);

  // y range: fit the scores and the threshold (a camera's scores often span a tenth of the
  // 0..1 range; a fixed 0..1 axis flattens them against the top), at least 0.2 tall.
  let lo = th ?? Infinity;
  let hi = th ?? -Infinity;
  for (const p of points) { lo = Math.min(lo, p.r); hi = Math.max(hi, p.r); }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  const mid = (lo + hi) / 2;
  const half = Math.max((hi - lo) / 2 + 0.03, 0.1);
  lo = mid - half;
  hi = mid + half;
  const pad = 3;
  const x = (t) => ((t - t0) / TIMELINE_SECONDS) * w;
  const y = (r) => pad + ((hi - r) / (hi - lo)) * (h - 2 * pad);

  ctx.fillStyle = COLORS.alertSpan;
  for (const [a, b] of alertSpans(rec, now)) {
    if (b < t0) continue;
    ctx.fillRect(x(Math.max(a, t0)), 0, Math.max(1, x(b) - x(Math.max(a, t0))), h);
  }

  const runs = scoreRuns(points);
  if (th !== null) {
    const ty = y(th);
    ctx.fillStyle = COLORS.belowBand;
    ctx.fillRect(0, ty, w, h - ty);
    fillBelowThreshold(ctx, runs, x, y, ty, w, h);
  }

  ctx.strokeStyle = COLORS.line;
  ctx.lineWidth = 1.5;
  ctx.setLineDash([]);
  for (const run of runs) {
    ctx.beginPath();
    run.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.r)) : ctx.moveTo(x(p.t), y(p.r))));
    if (run.length === 1) ctx.lineTo(x(run[0].t) + 1, y(run[0].r));
    ctx.stroke();
  }

  if (th !== null) {
    ctx.strokeStyle = COLORS.threshold;
    ctx.lineWidth = 1;
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(0, Math.round(y(th)) + 0.5);
    ctx.lineTo(w, Math.round(y(th)) + 0.5);
    ctx.stroke();
    ctx.setLineDash([]);
  }

  ctx.fillStyle = COLORS.label;
  ctx.font = '10px system-ui, sans-serif';
  ctx.fillText(`-${TIMELINE_SECONDS}s`, 3, h - 3);
}

// Fill between the curve and the threshold line, clipped to below the
// threshold, so dips read as red areas.
function fillBelowThreshold(ctx, runs, x, y, ty, w, h) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(0, ty, w, h - ty);
  ctx.clip();
  ctx.fillStyle = COLORS.belowFill;
  for (const run of runs) {
    ctx.beginPath();
    ctx.moveTo(x(run[0].t), ty);
    for (const p of run) ctx.lineTo(x(p.t), y(p.r));
    ctx.lineTo(x(run[run.length - 1].t), ty);
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}
