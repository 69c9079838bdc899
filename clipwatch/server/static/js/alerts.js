/*
 * alerts.js: the live alert list (newest first, at most MAX_ALERTS): snapshot thumbnails
 * (a click shows the heatmap), the event's clip once it is written, state, duration, lowest
 * regularity, and acknowledgement with an optional note. Also the unacknowledged count in the header and the page title.
 */
import { api } from './api.js';
import { dom, el } from './dom.js';
import { fmtDuration, fmtReg, fmtTime, heatmapUrl, snapshotUrl } from './format.js';
import { openClip, openLightbox } from './lightbox.js';
import { cameraName, store } from './state.js';
import { markDirty, updateTileAlerting } from './tiles.js';

const MAX_ALERTS = 200;
const RELOAD_LIMIT = 50;

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
  const clipBtn = el('button', 'clip', '▶ clip');
  clipBtn.type = 'button';
  clipBtn.title = 'play the alert\'s clip';
  clipBtn.hidden = true;  // until the clip is written (an update message names it)
  timeRow.append(clipBtn);
  const lowEl = el('div', 'alert-low');
  const ackEl = el('div', 'alert-ack');
  body.append(head, timeRow, lowEl, ackEl);
  li.append(thumb, body);

  const rec = {
    event: ev, li, thumb, cameraEl, stateEl, startEl, durEl, lowEl, ackEl, clipBtn,
    mode: 'idle',        // idle | form | sending (only while unacknowledged)
    renderedMode: null,  // what ackEl currently shows, to avoid wiping typed notes
    error: '',
  };
  thumb.addEventListener('click', () => {
    openLightbox(heatmapUrl(rec.event),
      `${cameraName(rec.event.camera)} · ${fmtTime(rec.event.started_at)}`);
  });
  clipBtn.addEventListener('click', () => {
    if (rec.event.clip_url) {
      openClip(rec.event.clip_url, `${cameraName(rec.event.camera)} · ${fmtTime(rec.event.started_at)}`);
    }
  });
  return rec;
}

function renderAlertItem(rec) {
  const ev = rec.event;
  rec.li.dataset.state = ev.state;
  rec.li.dataset.acknowledged = ev.acknowledged ? 'true' : 'false';
  const src = snapshotUrl(ev);
  if (rec.thumb.getAttribute('src') !== src) rec.thumb.src = src;
  // A zone's alert names its zone (regions.js): "Gate · door".
  rec.cameraEl.textContent = ev.zone ? `${cameraName(ev.camera)} · ${ev.zone}` : cameraName(ev.camera);
  rec.stateEl.textContent = ev.state;
  rec.startEl.textContent = fmtTime(ev.started_at);
  rec.durEl.textContent = ev.ended_at != null ? fmtDuration(ev.ended_at - ev.started_at) : 'ongoing';
  rec.clipBtn.hidden = !ev.clip_url;
  rec.lowEl.textContent = `lowest ${fmtReg(ev.lowest_regularity)}` +
    (typeof ev.threshold === 'number' ? ` (thr ${fmtReg(ev.threshold)})` : '');
  renderAckArea(rec);
}

// Camera names may have changed: redraw every item.
export function rerenderAlerts() {
  for (const rec of store.alerts.values()) renderAlertItem(rec);
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

async function submitAck(rec) {
  if (rec.mode === 'sending') return;
  rec.mode = 'sending';
  rec.confirmBtn.disabled = true;
  rec.noteInput.disabled = true;
  rec.errorEl.textContent = '';
  try {
    const body = await api.ack(rec.event.id, rec.noteInput.value.trim());
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
    const other = store.alerts.get(Number(li.dataset.eventId));
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
export function upsertAlert(ev, force = false) {
  if (!ev || ev.id === undefined) return;
  let rec = store.alerts.get(ev.id);
  if (rec && !force && ev.updated_at < rec.event.updated_at &&
      !(ev.acknowledged && !rec.event.acknowledged)) {
    return;
  }
  const isNew = !rec;
  if (isNew) {
    rec = createAlertItem(ev);
    store.alerts.set(ev.id, rec);
  }
  rec.event = ev;
  if (isNew) insertAlertLi(rec);
  renderAlertItem(rec);
  trimAlerts();
  updateTileAlerting(ev.camera);
  const tile = store.cams.get(ev.camera);
  if (tile) markDirty(tile);
  updateAlertCounts();
}

function trimAlerts() {
  while (store.alerts.size > MAX_ALERTS && dom.alerts.lastElementChild) {
    const li = dom.alerts.lastElementChild;
    const rec = store.alerts.get(Number(li.dataset.eventId));
    li.remove();
    if (!rec) continue;
    store.alerts.delete(rec.event.id);
    updateTileAlerting(rec.event.camera);
  }
}

export function updateAlertCounts() {
  let unack = 0;
  for (const a of store.alerts.values()) if (!a.event.acknowledged) unack += 1;
  dom.unack.textContent = String(unack);
  dom.unack.classList.toggle('zero', unack === 0);
  dom.alertsEmpty.hidden = store.alerts.size > 0;
  document.title = unack ? `(${unack}) clipwatch` : 'clipwatch';
}

// Alerts may have happened while the page was away (or the server restarted).
export async function reloadAlerts() {
  try {
    const page = await api.events({ limit: String(RELOAD_LIMIT) });
    for (const ev of page.items || []) upsertAlert(ev);
  } catch (e) {
    console.warn('clipwatch: could not load alerts', e);
  }
}
