/*
 * clipwatch viewer: the browser side of the live dashboard.
 *
 * Owns: the websocket to /ws (subscribe, resume, ping, reconnect with
 * backoff), the camera tiles (video frames, status badge, regularity
 * timeline), the live alert list with acknowledgement, the paged history
 * table and the image lightbox. Talks only to same-origin /api and /ws.
 *
 * window.clipwatch is read by the Playwright tests: keep its field names.
 */
'use strict';

const TIMELINE_SECONDS = 60;
const KEEP_SECONDS = TIMELINE_SECONDS + 10;  // a little extra so the left edge is never empty
const GAP_SECONDS = 3;                       // break the line across holes (camera lost)
const TIMELINE_MIN_MS = 250;                 // at most 4 redraws/s per timeline
const MAX_ALERTS = 200;
const MAX_LATENCIES = 5000;
const PING_MS = 20000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 5000;
const HISTORY_LIMIT = 20;
const SEQ_KEY = 'clipwatch.lastSeq';

const COLORS = {
  line: '#7cc4bb',
  threshold: '#d29922',
  belowBand: 'rgba(229, 83, 75, 0.07)',
  belowFill: 'rgba(229, 83, 75, 0.45)',
  alertSpan: 'rgba(229, 83, 75, 0.18)',
  label: '#6e7681',
};

const storedSeq = readStoredSeq();
const hook = window.clipwatch = {
  connected: false,
  lastSeq: storedSeq === null ? 0 : storedSeq,
  scoreCount: {},
  frameCount: {},
  latencies: [],
  latencyFrames: [],  // the source frame index of each latency sample, same order
};
// Resume only makes sense once this tab has seen an alert seq.
let seenAlerts = storedSeq !== null;

const cams = new Map();    // camera id -> tile record
const alerts = new Map();  // event id -> alert record
let clockOffset = 0;       // server clock minus local clock, seconds

const $ = (id) => document.getElementById(id);
const dom = {};

/* ---------- small helpers ---------- */

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function readStoredSeq() {
  try {
    const raw = sessionStorage.getItem(SEQ_KEY);
    const v = raw === null ? NaN : Number(raw);
    return Number.isInteger(v) ? v : null;
  } catch (_) {
    return null;  // storage disabled: just do not resume
  }
}

function storeSeq(seq) {
  try { sessionStorage.setItem(SEQ_KEY, String(seq)); } catch (_) { /* ignore */ }
}

function serverNow() {
  return Date.now() / 1000 + clockOffset;
}

function fmtTime(epoch) {
  if (epoch === null || epoch === undefined) return '';
  const d = new Date(epoch * 1000);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

function fmtReg(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : '—';
}

function cameraName(id) {
  const rec = cams.get(id);
  return rec ? rec.name : id;
}

function snapshotUrl(ev) {
  return `/api/events/${ev.id}/snapshot.jpg?v=${ev.updated_at}`;
}

function heatmapUrl(ev) {
  // ?v= so an open alert's heatmap is not served stale from cache
  return `/api/events/${ev.id}/heatmap.jpg?v=${ev.updated_at}`;
}

/* ---------- camera tiles ---------- */

function createTile(cam) {
  const root = el('div', 'tile');
  root.dataset.camera = cam.id;

  const head = el('div', 'tile-head');
  const nameEl = el('span', 'name');
  const statusEl = el('span', 'status', 'connecting');
  statusEl.dataset.state = 'connecting';
  head.append(nameEl, statusEl);

  const videoWrap = el('div', 'video-wrap');
  const img = el('img', 'video');
  img.alt = '';
  videoWrap.append(img, el('div', 'no-video', 'no video yet'));

  const foot = el('div', 'tile-foot');
  const regEl = el('span', 'regularity', '—');
  const metaEl = el('span', 'meta');
  foot.append(el('span', 'muted', 'regularity '), regEl, metaEl);

  const canvas = el('canvas', 'timeline');
  root.append(head, videoWrap, foot, canvas);

  return {
    id: cam.id, name: cam.id, cam, root, nameEl, statusEl, img, regEl, metaEl, canvas,
    scores: [],        // {t, r, a}: captured_at, regularity, alerting
    threshold: null,   // latest threshold seen in a score
    url: null,         // object URL currently shown in img
    drawnAt: 0,
  };
}

function updateTile(rec, cam) {
  rec.cam = cam;
  rec.name = cam.name || cam.id;
  rec.nameEl.textContent = rec.name;
  rec.nameEl.title = cam.source || '';
  rec.img.alt = `${rec.name} live video`;
  if (cam.status) setStatus(rec, cam.status);
  updateMeta(rec);
  markDirty(rec);
}

function updateMeta(rec) {
  const parts = [];
  if (typeof rec.cam.fps === 'number') parts.push(`${rec.cam.fps.toFixed(1)} fps`);
  const th = currentThreshold(rec);
  if (th !== null) parts.push(`thr ${th.toFixed(3)}`);
  rec.metaEl.textContent = parts.join(' · ');
}

function setStatus(rec, status) {
  const state = status.state || 'connecting';
  rec.statusEl.dataset.state = state;
  rec.statusEl.textContent = state;
  rec.statusEl.title = status.reason || (status.since ? `since ${fmtTime(status.since)}` : '');
  rec.root.dataset.state = state;  // lets CSS dim the video when lost/stopped
}

function currentThreshold(rec) {
  if (typeof rec.threshold === 'number') return rec.threshold;
  if (typeof rec.cam.effective_threshold === 'number') return rec.cam.effective_threshold;
  if (typeof rec.cam.threshold === 'number') return rec.cam.threshold;
  return null;
}

function removeTile(rec) {
  if (rec.url) URL.revokeObjectURL(rec.url);
  rec.root.remove();
  cams.delete(rec.id);
  pendingFrames.delete(rec.id);
  dirtyTimelines.delete(rec);
}

// Add/update/remove tiles to match the server's list; existing tiles keep
// their score history so a reconnect does not blank the timelines.
function syncCameras(list) {
  const seen = new Set();
  for (const cam of list) {
    seen.add(cam.id);
    let rec = cams.get(cam.id);
    if (!rec) {
      rec = createTile(cam);
      cams.set(cam.id, rec);
      resizeObserver.observe(rec.canvas);
    }
    updateTile(rec, cam);
    dom.tiles.append(rec.root);  // re-append keeps DOM order = server order
    updateTileAlerting(cam.id);
  }
  for (const rec of [...cams.values()]) {
    if (!seen.has(rec.id)) removeTile(rec);
  }
  dom.tilesEmpty.hidden = cams.size > 0;
  updateHistoryCameraOptions();
  renderHistory(historyState.items);  // it may have loaded before camera names were known
  for (const a of alerts.values()) renderAlertItem(a);  // names may have changed
}

function updateTileAlerting(cameraId) {
  const rec = cams.get(cameraId);
  if (!rec) return;
  let open = false;
  for (const a of alerts.values()) {
    if (a.event.camera === cameraId && a.event.state === 'open') { open = true; break; }
  }
  rec.root.classList.toggle('alerting', open);
}

/* ---------- render loop: frames and timelines, once per animation frame ---------- */

const pendingFrames = new Map();   // camera id -> latest JPEG bytes not yet shown
const dirtyTimelines = new Set();  // tile records whose canvas needs a redraw
let rafPending = false;

function scheduleRender() {
  if (rafPending) return;
  rafPending = true;
  requestAnimationFrame(render);
}

function markDirty(rec) {
  dirtyTimelines.add(rec);
  scheduleRender();
}

function render(now) {
  rafPending = false;
  // Only the newest frame per camera is decoded; older ones would never be seen.
  for (const [id, bytes] of pendingFrames) {
    const rec = cams.get(id);
    if (rec) showFrame(rec, bytes);
  }
  pendingFrames.clear();

  for (const rec of dirtyTimelines) {
    if (now - rec.drawnAt < TIMELINE_MIN_MS) continue;
    rec.drawnAt = now;
    dirtyTimelines.delete(rec);
    drawTimeline(rec);
  }
  if (dirtyTimelines.size) scheduleRender();
}

function showFrame(rec, bytes) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'image/jpeg' }));
  const old = rec.url;
  rec.url = url;
  rec.img.src = url;
  rec.root.classList.add('has-frame');
  // The img has switched to the new URL, so the old one can go now.
  if (old) URL.revokeObjectURL(old);
}

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
  for (const a of alerts.values()) {
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

function drawTimeline(rec) {
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

const resizeObserver = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const rec = cams.get(entry.target.closest('.tile')?.dataset.camera);
    if (rec) markDirty(rec);
  }
});

/* ---------- alerts list ---------- */

function alertOrder(a, b) {
  return (b.started_at - a.started_at) || (b.id - a.id);  // newest first
}

function createAlertItem(ev) {
  const li = el('li', 'alert');
  li.dataset.eventId = ev.id;
  const thumb = el('img', 'thumb');
  thumb.alt = 'snapshot (click for heatmap)';
  thumb.loading = 'lazy';
  const body = el('div', 'alert-body');
  const head = el('div', 'alert-head');
  const cameraEl = el('span', 'alert-camera');
  const stateEl = el('span', 'alert-state');
  head.append(cameraEl, stateEl);
  const timeRow = el('div', 'alert-time');
  const startEl = el('span', 'alert-start');
  const durEl = el('span', 'alert-duration');
  timeRow.append(startEl, document.createTextNode(' · '), durEl);
  const lowEl = el('div', 'alert-low');
  const ackEl = el('div', 'alert-ack');
  body.append(head, timeRow, lowEl, ackEl);
  li.append(thumb, body);

  const rec = {
    event: ev, li, thumb, cameraEl, stateEl, startEl, durEl, lowEl, ackEl,
    mode: 'idle',        // idle | form | sending (only while unacknowledged)
    renderedMode: null,  // what ackEl currently shows, to avoid wiping typed notes
    error: '',
  };
  thumb.addEventListener('click', () => {
    openLightbox(heatmapUrl(rec.event), `${cameraName(rec.event.camera)} · ${fmtTime(rec.event.started_at)}`);
  });
  return rec;
}

function renderAlertItem(rec) {
  const ev = rec.event;
  rec.li.dataset.state = ev.state;
  rec.li.dataset.acknowledged = ev.acknowledged ? 'true' : 'false';
  const src = snapshotUrl(ev);
  if (rec.thumb.getAttribute('src') !== src) rec.thumb.src = src;
  rec.cameraEl.textContent = cameraName(ev.camera);
  rec.stateEl.textContent = ev.state;
  rec.startEl.textContent = fmtTime(ev.started_at);
  rec.durEl.textContent = ev.ended_at != null ? fmtDuration(ev.ended_at - ev.started_at) : 'ongoing';
  rec.lowEl.textContent = `lowest ${fmtReg(ev.lowest_regularity)}` +
    (typeof ev.threshold === 'number' ? ` (thr ${fmtReg(ev.threshold)})` : '');
  renderAckArea(rec);
}

function renderAckArea(rec) {
  const mode = rec.event.acknowledged ? 'ack' : (rec.mode === 'idle' ? 'idle' : 'form');
  const key = mode === 'ack' ? `ack:${rec.event.ack_note || ''}` : mode;
  if (rec.renderedMode === key) return;
  rec.renderedMode = key;
  rec.ackEl.replaceChildren();

  if (mode === 'ack') {
    const done = el('span', 'ack-done', 'acknowledged');
    if (rec.event.ack_note) done.append(el('span', 'ack-text', ` — ${rec.event.ack_note}`));
    if (rec.event.acknowledged_at) done.title = `at ${fmtTime(rec.event.acknowledged_at)}`;
    rec.ackEl.append(done);
  } else if (mode === 'idle') {
    const btn = el('button', 'ack', 'Acknowledge');
    btn.type = 'button';
    btn.addEventListener('click', () => { rec.mode = 'form'; renderAckArea(rec); rec.noteInput.focus(); });
    rec.ackEl.append(btn);
  } else {
    buildAckForm(rec);
  }
}

function buildAckForm(rec) {
  const input = el('input', 'ack-note');
  input.type = 'text';
  input.placeholder = 'note (optional)';
  input.maxLength = 2000;  // the server's limit
  const confirm = el('button', 'ack-confirm', 'Confirm');
  confirm.type = 'button';
  const cancel = el('button', 'ack-cancel', 'Cancel');
  cancel.type = 'button';
  const err = el('div', 'ack-error');
  err.setAttribute('role', 'alert');
  err.textContent = rec.error;

  confirm.addEventListener('click', () => submitAck(rec));
  cancel.addEventListener('click', () => { rec.mode = 'idle'; rec.error = ''; renderAckArea(rec); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') submitAck(rec);
    if (e.key === 'Escape') cancel.click();
  });
  Object.assign(rec, { noteInput: input, confirmBtn: confirm, errorEl: err });
  rec.ackEl.append(input, confirm, cancel, err);
}

function detailText(body, status) {
  if (body && body.detail !== undefined) {
    // FastAPI validation errors put a list in detail.
    return typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
  }
  return `request failed (HTTP ${status})`;
}

async function submitAck(rec) {
  if (rec.mode === 'sending') return;
  rec.mode = 'sending';
  rec.confirmBtn.disabled = true;
  rec.noteInput.disabled = true;
  rec.errorEl.textContent = '';
  try {
    const res = await fetch(`/api/events/${rec.event.id}/ack`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ note: rec.noteInput.value.trim() }),
    });
    const body = await res.json().catch(() => null);
    if (!res.ok || !body) throw new Error(detailText(body, res.status));
    rec.mode = 'idle';
    rec.error = '';
    upsertAlert(body, true);
  } catch (e) {
    rec.mode = 'form';
    rec.error = e.message || String(e);
    rec.errorEl.textContent = rec.error;
    rec.confirmBtn.disabled = false;
    rec.noteInput.disabled = false;
  }
}

function insertAlertLi(rec) {
  for (const li of dom.alerts.children) {
    const other = alerts.get(Number(li.dataset.eventId));
    if (other && other !== rec && alertOrder(rec.event, other.event) < 0) {
      dom.alerts.insertBefore(rec.li, li);
      return;
    }
  }
  dom.alerts.append(rec.li);
}

// Insert or update one event. A stale copy (older updated_at) never
// overwrites a newer one, since websocket and REST results can interleave;
// `force` is for the ack response, which is authoritative.
function upsertAlert(ev, force = false) {
  if (!ev || ev.id === undefined) return;
  let rec = alerts.get(ev.id);
  if (rec && !force && ev.updated_at < rec.event.updated_at &&
      !(ev.acknowledged && !rec.event.acknowledged)) {
    return;
  }
  const isNew = !rec;
  if (isNew) {
    rec = createAlertItem(ev);
    alerts.set(ev.id, rec);
  }
  rec.event = ev;
  if (isNew) insertAlertLi(rec);
  renderAlertItem(rec);
  trimAlerts();
  updateTileAlerting(ev.camera);
  const tile = cams.get(ev.camera);
  if (tile) markDirty(tile);
  updateAlertCounts();
}

function trimAlerts() {
  while (alerts.size > MAX_ALERTS && dom.alerts.lastElementChild) {
    const li = dom.alerts.lastElementChild;
    const rec = alerts.get(Number(li.dataset.eventId));
    li.remove();
    if (!rec) continue;
    alerts.delete(rec.event.id);
    updateTileAlerting(rec.event.camera);
  }
}

function updateAlertCounts() {
  let unack = 0;
  for (const a of alerts.values()) if (!a.event.acknowledged) unack += 1;
  dom.unack.textContent = String(unack);
  dom.unack.classList.toggle('zero', unack === 0);
  dom.alertsEmpty.hidden = alerts.size > 0;
  document.title = unack ? `(${unack}) clipwatch` : 'clipwatch';
}

async function reloadAlerts() {
  try {
    const res = await fetch('/api/events?limit=50');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const page = await res.json();
    for (const ev of page.items || []) upsertAlert(ev);
  } catch (e) {
    console.warn('clipwatch: could not load alerts', e);
  }
}

/* ---------- websocket ---------- */

let ws = null;
let backoffMs = BACKOFF_MIN_MS;
let reconnectTimer = null;
let pingTimer = null;
let everConnected = false;

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

function setConn(state) {
  dom.conn.dataset.state = state;
  dom.conn.textContent = state === 'connected' ? 'connected' : `${state}...`;
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function sendSubscribe() {
  send({ type: 'subscribe', cameras: ['*'], video: true, overlay: dom.overlay.checked });
}

function connect() {
  reconnectTimer = null;
  setConn(everConnected ? 'reconnecting' : 'connecting');
  let sock;
  try {
    sock = new WebSocket(wsUrl());
  } catch (e) {
    console.warn('clipwatch: websocket failed', e);
    scheduleReconnect();
    return;
  }
  sock.binaryType = 'arraybuffer';
  ws = sock;
  sock.onopen = () => onOpen(sock);
  sock.onmessage = (e) => {
    if (typeof e.data === 'string') onText(e.data);
    else onBinary(e.data);
  };
  sock.onclose = (e) => onClose(sock, e.code);
  sock.onerror = () => { /* a close event always follows; handled there */ };
}

function onOpen(sock) {
  if (sock !== ws) return;
  const isReconnect = everConnected;
  everConnected = true;
  hook.connected = true;
  setConn('connected');
  sendSubscribe();
  if (seenAlerts) send({ type: 'resume', since: hook.lastSeq });
  clearInterval(pingTimer);
  pingTimer = setInterval(() => send({ type: 'ping' }), PING_MS);
  // Alerts may have happened while we were away (or the server restarted).
  reloadAlerts();
  if (isReconnect) loadHistory();  // the first load already ran in init()
}

function onClose(sock, code) {
  if (sock !== ws) return;  // an old socket we already replaced
  ws = null;
  hook.connected = false;
  clearInterval(pingTimer);
  pingTimer = null;
  if (code === UNAUTHORIZED_CLOSE) {  // not signed in (or the session expired)
    setConn('signed out');
    showLogin();
    return;
  }
  setConn('reconnecting');
  scheduleReconnect();
}

/* ---------- sign in (when the server has auth configured) ---------- */

const UNAUTHORIZED_CLOSE = 4401;

function showLogin(message) {
  const form = $('login');
  form.hidden = false;
  $('login-error').textContent = message || '';
  $('login-name').focus();
}

async function submitLogin(event) {
  event.preventDefault();
  const body = { name: $('login-name').value, password: $('login-password').value };
  let res;
  try {
    res = await fetch('/api/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
  } catch (e) {
    showLogin('the server did not answer');
    return;
  }
  if (!res.ok) {
    const detail = await res.json().then((d) => d.detail, () => res.statusText);
    showLogin(typeof detail === 'string' ? detail : 'sign-in failed');
    return;
  }
  $('login-password').value = '';
  $('login').hidden = true;
  startLive();
}

// Ask the server who we are before opening the live channel: 401 means sign in first.
async function checkSession() {
  try {
    const res = await fetch('/api/me');
    if (res.status === 401) { showLogin(); return; }
  } catch (e) { /* the server is down: connect() retries with backoff */ }
  startLive();
}

function startLive() {
  loadHistory();
  if (!ws && !reconnectTimer) connect();
}

function scheduleReconnect() {
  if (reconnectTimer) return;
  const delay = backoffMs;
  backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
  reconnectTimer = setTimeout(connect, delay);
}

const textHandlers = {
  hello: onHello,
  cameras: (m) => syncCameras(m.cameras || []),
  status: onStatus,
  score: onScore,
  alert: onAlert,
  error: (m) => console.warn('clipwatch server error:', m.message),
  pong: (m) => { if (typeof m.server_time === 'number') clockOffset = m.server_time - Date.now() / 1000; },
};

function onText(data) {
  let msg;
  try { msg = JSON.parse(data); } catch (e) { console.warn('clipwatch: bad message', data); return; }
  const handler = textHandlers[msg.type];
  if (handler) handler(msg);
  else console.warn('clipwatch: unknown message type', msg.type);
}

function onHello(msg) {
  // Backoff resets only once the server really talks, so a server that
  // accepts and immediately drops us is not hammered every 0.5 s.
  backoffMs = BACKOFF_MIN_MS;
  if (typeof msg.server_time === 'number') clockOffset = msg.server_time - Date.now() / 1000;
  syncCameras(msg.cameras || []);
  // A fresh server database restarts seq numbering; follow it, or every new
  // alert would look like a duplicate of something already seen.
  if (seenAlerts && typeof msg.last_seq === 'number' && msg.last_seq < hook.lastSeq) {
    hook.lastSeq = msg.last_seq;
    storeSeq(hook.lastSeq);
    send({ type: 'resume', since: hook.lastSeq });
  }
}

function onStatus(msg) {
  const rec = cams.get(msg.camera);
  if (!rec) return;
  rec.cam.status = { state: msg.state, reason: msg.reason, since: msg.since };
  setStatus(rec, rec.cam.status);
}

function onScore(msg) {
  hook.scoreCount[msg.camera] = (hook.scoreCount[msg.camera] || 0) + 1;
  const rec = cams.get(msg.camera);
  if (!rec) return;
  // No regularity yet (warm-up after a gap, or the camera still learning its baseline):
  // nothing to plot, and the hole stays a hole rather than a dive to zero.
  const scored = typeof msg.regularity === 'number';
  if (scored) rec.scores.push({ t: msg.captured_at, r: msg.regularity, a: !!msg.alerting });
  const cutoff = msg.captured_at - KEEP_SECONDS;
  let drop = 0;
  while (drop < rec.scores.length && rec.scores[drop].t < cutoff) drop += 1;
  if (drop) rec.scores.splice(0, drop);
  if (typeof msg.threshold === 'number' && msg.threshold !== rec.threshold) {
    rec.threshold = msg.threshold;
    updateMeta(rec);
  }
  rec.regEl.textContent = fmtReg(msg.regularity);
  rec.regEl.classList.toggle('below', scored && rec.threshold !== null &&
    msg.regularity < rec.threshold);
  markDirty(rec);
}

function onAlert(msg) {
  if (typeof msg.seq === 'number') {
    seenAlerts = true;
    if (msg.seq > hook.lastSeq) hook.lastSeq = msg.seq;
    storeSeq(hook.lastSeq);
  }
  // Upsert even for replayed seqs (idempotent). event may be start/update/end
  // or "ack"; tile alerting follows alert.state, so any kind is handled alike.
  upsertAlert(msg.alert);
  // History lists finished and acknowledged events: refresh it when one changes.
  if (msg.event === 'end' || msg.event === 'ack') scheduleHistoryReload();
}

let historyReload = null;
function scheduleHistoryReload() {
  if (historyReload) return;  // a burst of replayed messages reloads once
  historyReload = setTimeout(() => { historyReload = null; loadHistory(); }, 500);
}

// Binary frame: 4-byte big-endian header length, JSON header, JPEG bytes.
function onBinary(buf) {
  if (!(buf instanceof ArrayBuffer) || buf.byteLength < 4) return;
  const headerLen = new DataView(buf).getUint32(0, false);
  if (4 + headerLen > buf.byteLength) { console.warn('clipwatch: truncated frame'); return; }
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, headerLen)));
  } catch (e) {
    console.warn('clipwatch: bad frame header', e);
    return;
  }
  hook.frameCount[header.camera] = (hook.frameCount[header.camera] || 0) + 1;
  hook.latencies.push(Date.now() / 1000 - header.captured_at);
  hook.latencyFrames.push(header.frame);
  if (hook.latencies.length > MAX_LATENCIES) {
    hook.latencies.splice(0, hook.latencies.length - MAX_LATENCIES);
    hook.latencyFrames.splice(0, hook.latencyFrames.length - MAX_LATENCIES);
  }
  if (!cams.has(header.camera)) return;
  pendingFrames.set(header.camera, new Uint8Array(buf, 4 + headerLen));
  scheduleRender();
}

/* ---------- history ---------- */

const historyState = { offset: 0, total: 0, token: 0, items: [] };

function updateHistoryCameraOptions() {
  const select = dom.histCamera;
  const current = select.value;
  select.replaceChildren(new Option('All', ''));
  for (const rec of cams.values()) select.append(new Option(rec.name, rec.id));
  // Keep a filter on a camera that just disappeared rather than silently resetting it.
  if (current && !cams.has(current)) select.append(new Option(current, current));
  select.value = current;
}

async function loadHistory() {
  const token = ++historyState.token;  // drop responses of superseded requests
  const params = new URLSearchParams({ limit: String(HISTORY_LIMIT), offset: String(historyState.offset) });
  if (dom.histCamera.value) params.set('camera', dom.histCamera.value);
  if (dom.histAck.value) params.set('acknowledged', dom.histAck.value);
  dom.histStatus.textContent = 'loading...';
  try {
    const res = await fetch(`/api/events?${params}`);
    const body = await res.json().catch(() => null);
    if (!res.ok || !body) throw new Error(detailText(body, res.status));
    if (token !== historyState.token) return;
    historyState.total = body.total || 0;
    historyState.items = body.items || [];
    renderHistory(historyState.items);
    dom.histStatus.textContent = '';
  } catch (e) {
    if (token !== historyState.token) return;
    dom.histStatus.textContent = `could not load: ${e.message}`;
  }
}

function historyLink(label, href, caption) {
  const a = el('a', null, label);
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener';
  a.addEventListener('click', (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;  // let new-tab clicks through
    e.preventDefault();
    openLightbox(href, caption);
  });
  return a;
}

function renderHistory(items) {
  const rows = items.map((ev) => {
    const tr = el('tr');
    tr.dataset.eventId = ev.id;
    const caption = `${cameraName(ev.camera)} · ${fmtTime(ev.started_at)}`;
    const ack = el('td', null, ev.acknowledged ? 'yes' : 'no');
    if (ev.ack_note) ack.title = ev.ack_note;
    const links = el('td', 'links');
    links.append(
      historyLink('snapshot', ev.snapshot_url || snapshotUrl(ev), caption),
      document.createTextNode(' '),
      historyLink('heatmap', ev.heatmap_url || heatmapUrl(ev), caption),
    );
    tr.append(
      el('td', null, cameraName(ev.camera)),
      el('td', null, fmtTime(ev.started_at)),
      el('td', null, ev.ended_at != null ? fmtTime(ev.ended_at) : 'ongoing'),
      el('td', 'num', fmtReg(ev.lowest_regularity)),
      ack,
      links,
    );
    return tr;
  });
  if (!rows.length) {
    const td = el('td', 'empty', 'No events.');
    td.colSpan = 6;
    const tr = el('tr');
    tr.append(td);
    rows.push(tr);
  }
  dom.histRows.replaceChildren(...rows);
  const first = items.length ? historyState.offset + 1 : 0;
  dom.histPage.textContent = `${first}–${historyState.offset + items.length} of ${historyState.total}`;
  dom.histPrev.disabled = historyState.offset <= 0;
  dom.histNext.disabled = historyState.offset + HISTORY_LIMIT >= historyState.total;
}

function pageHistory(delta) {
  historyState.offset = Math.max(0, historyState.offset + delta * HISTORY_LIMIT);
  loadHistory();
}

/* ---------- lightbox ---------- */

function openLightbox(src, caption) {
  dom.lightboxImg.src = src;
  dom.lightboxCaption.textContent = caption || '';
  dom.lightbox.hidden = false;
  dom.lightboxClose.focus();
}

function closeLightbox() {
  dom.lightbox.hidden = true;
  dom.lightboxImg.removeAttribute('src');
}

/* ---------- startup ---------- */

function init() {
  Object.assign(dom, {
    conn: $('conn'), overlay: $('overlay-toggle'), tiles: $('tiles'), tilesEmpty: $('tiles-empty'),
    alerts: $('alerts'), alertsEmpty: $('alerts-empty'), unack: $('unack-count'),
    histCamera: $('history-camera'), histAck: $('history-ack'), histRows: $('history-rows'),
    histPage: $('history-page'), histPrev: $('history-prev'), histNext: $('history-next'),
    histStatus: $('history-status'), lightbox: $('lightbox'), lightboxImg: $('lightbox-img'),
    lightboxCaption: $('lightbox-caption'), lightboxClose: $('lightbox-close'),
  });

  dom.overlay.addEventListener('change', sendSubscribe);

  const resetAndLoad = () => { historyState.offset = 0; loadHistory(); };
  dom.histCamera.addEventListener('change', resetAndLoad);
  dom.histAck.addEventListener('change', resetAndLoad);
  $('history-refresh').addEventListener('click', loadHistory);
  dom.histPrev.addEventListener('click', () => pageHistory(-1));
  dom.histNext.addEventListener('click', () => pageHistory(1));

  dom.lightbox.addEventListener('click', closeLightbox);  // view-only: any click dismisses
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !dom.lightbox.hidden) closeLightbox();
  });

  // Timelines scroll with time even when no scores arrive (camera lost).
  setInterval(() => { for (const rec of cams.values()) markDirty(rec); }, 1000);

  $('login').addEventListener('submit', submitLogin);
  updateAlertCounts();
  checkSession();
}

init();
