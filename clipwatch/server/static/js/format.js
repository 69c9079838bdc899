/*
 * format.js: how times, durations, scores and frame rates read, and event image URLs.
 */

export function fmtTime(epoch) {
  if (epoch === null || epoch === undefined) return '';
  const d = new Date(epoch * 1000);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

// Time left: "1:45" while seconds matter, then "8 min", then "2 h 05 min".
export function fmtEta(seconds) {
  if (!isNumber(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

// Minutes of footage: short recordings (a test's 0.1 min) still read as more than zero.
export function fmtMinutes(v) {
  if (!isNumber(v)) return '';
  if (v < 1) return v.toFixed(2);
  return v < 10 ? v.toFixed(1) : String(Math.round(v));
}

export function fmtMegabytes(bytes) {
  return isNumber(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : '';
}

export function fmtPercent(fraction, digits = 0) {
  return isNumber(fraction) ? `${(fraction * 100).toFixed(digits)}%` : '—';
}

export function fmtReg(v) {
  return isNumber(v) ? v.toFixed(3) : '—';
}

export function fmtFps(v) {
  return isNumber(v) ? `${v.toFixed(1)} fps` : '';
}

// ?v= so an open alert's images are not served stale from cache.
export function snapshotUrl(ev) {
  return `/api/events/${ev.id}/snapshot.jpg?v=${ev.updated_at}`;
}

export function heatmapUrl(ev) {
  return `/api/events/${ev.id}/heatmap.jpg?v=${ev.updated_at}`;
}
