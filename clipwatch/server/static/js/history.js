/*
 * history.js: the paged history table of stored events, filtered by camera and by
 * acknowledgement, with links that open an event's snapshot, heatmap or clip.
 */
import { api } from './api.js';
import { dom, el } from './dom.js';
import { fmtReg, fmtTime, heatmapUrl, snapshotUrl } from './format.js';
import { openClip, openLightbox } from './lightbox.js';
import { cameraName, store } from './state.js';

const HISTORY_LIMIT = 20;
const RELOAD_DELAY_MS = 500;

// The camera filter lists the cameras the page knows.
export function updateHistoryCameraOptions() {
  const select = dom.histCamera;
  const current = select.value;
  select.replaceChildren(new Option('All', ''));
  for (const rec of store.cams.values()) select.append(new Option(rec.name, rec.id));
  // Keep a filter on a camera that just disappeared rather than silently resetting it.
  if (current && !store.cams.has(current)) select.append(new Option(current, current));
  select.value = current;
}

export async function loadHistory() {
  const h = store.history;
  const token = ++h.token;  // drop responses of superseded requests
  const params = { limit: String(HISTORY_LIMIT), offset: String(h.offset) };
  if (dom.histCamera.value) params.camera = dom.histCamera.value;
  if (dom.histAck.value) params.acknowledged = dom.histAck.value;
  dom.histStatus.textContent = 'loading...';
  try {
    const body = await api.events(params);
    if (token !== h.token) return;
    h.total = body.total || 0;
    h.items = body.items || [];
    renderHistory();
    dom.histStatus.textContent = '';
  } catch (e) {
    if (token !== h.token) return;
    dom.histStatus.textContent = `could not load: ${e.message}`;
  }
}

// A burst of changes (e.g. replayed alert messages) reloads once.
export function scheduleHistoryReload() {
  const h = store.history;
  if (h.reloadTimer) return;
  h.reloadTimer = setTimeout(() => { h.reloadTimer = null; loadHistory(); }, RELOAD_DELAY_MS);
}

function historyLink(label, href, caption, open = openLightbox) {
  const a = el('a', null, label);
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener';
  a.addEventListener('click', (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;  // let new-tab clicks through
    e.preventDefault();
    open(href, caption);
  });
  return a;
}

// Draws store.history.items; also called when camera names change.
export function renderHistory() {
  const h = store.history;
  const items = h.items;
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
    if (ev.clip_url) {
      const clip = historyLink('clip', ev.clip_url, caption, openClip);
      clip.className = 'clip';
      links.append(document.createTextNode(' '), clip);
    }
    // The zone that raised it, and the model the camera ran then (a camera's model can change).
    const where = ev.zone ? `${cameraName(ev.camera)} · ${ev.zone}` : cameraName(ev.camera);
    tr.append(
      el('td', null, where),
      el('td', null, fmtTime(ev.started_at)),
      el('td', null, ev.ended_at != null ? fmtTime(ev.ended_at) : 'ongoing'),
      el('td', 'num', fmtReg(ev.lowest_regularity)),
      el('td', 'model', ev.model ? ev.model.replace(/\.onnx$/, '') : ''),
      ack,
      links,
    );
    return tr;
  });
  if (!rows.length) {
    const td = el('td', 'empty', 'No events.');
    td.colSpan = 7;
    const tr = el('tr');
    tr.append(td);
    rows.push(tr);
  }
  dom.histRows.replaceChildren(...rows);
  const first = items.length ? h.offset + 1 : 0;
  dom.histPage.textContent = `${first}–${h.offset + items.length} of ${h.total}`;
  dom.histPrev.disabled = h.offset <= 0;
  dom.histNext.disabled = h.offset + HISTORY_LIMIT >= h.total;
}

function pageHistory(delta) {
  store.history.offset = Math.max(0, store.history.offset + delta * HISTORY_LIMIT);
  loadHistory();
}

export function bindHistory() {
  const resetAndLoad = () => { store.history.offset = 0; loadHistory(); };
  dom.histCamera.addEventListener('change', resetAndLoad);
  dom.histAck.addEventListener('change', resetAndLoad);
  dom.histRefresh.addEventListener('click', loadHistory);
  dom.histPrev.addEventListener('click', () => pageHistory(-1));
  dom.histNext.addEventListener('click', () => pageHistory(1));
}
