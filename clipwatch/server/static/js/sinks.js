/*
 * sinks.js: the alert sinks (webhooks, MQTT brokers) under the alert list: each with its
 * delivery status (delivered, waiting, failing and why), refreshed every few seconds, and a
 * Test button for admins (POST /api/sinks/{id}/test). Hidden when there are no sinks.
 */
import { api } from './api.js';
import { dom, el } from './dom.js';
import { fmtTime } from './format.js';
import { store } from './state.js';

const SINKS_MS = 5000;  // how often the status is refreshed

function statusText(s) {
  if (s.state === 'disabled') return 'disabled';
  if (s.state === 'failing') {
    const since = s.failing_since ? ` since ${fmtTime(s.failing_since)}` : '';
    return `failing${since}: ${s.last_error || 'unknown error'} · ${s.backlog} waiting`;
  }
  const parts = [`${s.delivered} delivered`];
  if (s.backlog) parts.push(`${s.backlog} waiting`);
  if (s.skipped) parts.push(`${s.skipped} skipped`);
  if (s.connected === false) parts.push('not connected');
  return parts.join(' · ');
}

async function testSink(id, button) {
  button.disabled = true;
  store.sinks.results.set(id, { text: 'sending...', ok: null });
  renderSinks();
  try {
    const r = await api.testSink(id);
    store.sinks.results.set(id, { text: `${r.delivered ? 'delivered' : 'failed'}: ${r.detail}`,
      ok: r.delivered });
  } catch (e) {
    store.sinks.results.set(id, { text: `failed: ${e.message}`, ok: false });
  }
  await loadSinks();
}

function sinkItem(sink) {
  const li = el('li', 'sink');
  li.dataset.sink = sink.id;
  li.dataset.state = sink.status.state;
  const head = el('div', 'sink-head');
  head.append(el('span', 'sink-name', sink.id), el('span', 'sink-kind muted', sink.kind));
  if (store.sinks.admin && sink.enabled) {
    const button = el('button', 'sink-test', 'Test');
    button.type = 'button';
    button.title = 'send a test message now';
    button.addEventListener('click', () => testSink(sink.id, button));
    head.append(button);
  }
  const target = el('div', 'sink-target muted', sink.kind === 'mqtt'
    ? `${sink.url} · ${sink.topic}/…` : sink.url);
  li.append(head, target, el('div', 'sink-status', statusText(sink.status)));
  const result = store.sinks.results.get(sink.id);
  if (result) {
    const line = el('div', 'sink-result', result.text);
    if (result.ok !== null) line.dataset.ok = String(result.ok);
    li.append(line);
  }
  return li;
}

export function renderSinks() {
  const items = store.sinks.items;
  dom.sinks.hidden = items.length === 0;
  dom.sinksList.replaceChildren(...items.map(sinkItem));
}

export async function loadSinks() {
  if (!store.conn.connected) return;  // down or signed out: the websocket sorts that out
  try {
    store.sinks.items = await api.sinks();
    renderSinks();
  } catch (e) {
    console.warn('clipwatch: could not load the alert sinks', e);
  }
}

// Who may press Test: admins (everyone when the server has no auth).
export async function startSinks() {
  try {
    const r = await api.me();
    store.sinks.admin = Boolean(r.ok && r.body && r.body.role === 'admin');
  } catch (e) {
    store.sinks.admin = false;
  }
  if (!store.sinks.timer) store.sinks.timer = setInterval(loadSinks, SINKS_MS);
  loadSinks();
}
