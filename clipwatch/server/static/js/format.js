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
