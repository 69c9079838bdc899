/*
 * learning.js: "Learn a camera", the side panel under the alert sinks: record a camera's
 * normal footage (now, or spread over hours), the recordings with their progress, and the
 * learning jobs that make a model of one, with their progress, their figures against the
 * model before, and the buttons that put the learned model on its camera or take it back.
 * Everyone sees where things stand; admins get the controls (the server refuses others
 * anyway).
 *
 * Recordings and jobs come whole: from GET /api/recordings and /api/learning after sign-in
 * and every reconnect, then from the websocket's 'recording' and 'learning' messages (about
 * once a second while one is busy). Items are updated in place, never rebuilt, so a click
 * or a half-typed form survives the updates. The tiles show the same progress
 * (tiles.js updateTileWork). A refusal shows in its item's one result line, as the server
 * words it.
 */
import { api } from './api.js';
import { dom, el, progressBar, setProgress } from './dom.js';
import { fmtDuration, fmtEta, fmtMegabytes, fmtMinutes, fmtPercent, fmtReg,
  fmtTime } from './format.js';
import { activeRecording, cameraName, jobProgress, RECORDING_ACTIVE, store } from './state.js';
import { updateTileWork } from './tiles.js';

const RECORD_MINUTES = 10;   // the footage a record form proposes
const LEAVE_OUT_S = 60;      // "Leave out last minute"
const TRAIN_MINUTES = 20;    // the training time a learn form proposes
// The least training time the form takes (3 s: a quick try; the server takes any > 0).
const MIN_TRAIN_MINUTES = 0.05;
// The server's model names (NAME.onnx). A pattern attribute is compiled with the v flag,
// where a class's "-" must be escaped.
const NAME_PATTERN = '[A-Za-z0-9_\\-]{1,64}';
const LEARNABLE = new Set(['done', 'stopped', 'full']);  // recordings a model can learn from
const DELETE_CONFIRM_MS = 4000;  // a second click on Delete within this deletes
const STAGES = {
  starting: 'starting', record: 'reading the footage', train: 'training', export: 'exporting',
  calibrate: 'calibrating', judge: 'judging against the model before',
  validate: 'validating', done: 'done', failed: 'failed',
};

const key = (id) => String(id);  // ids as the DOM's data attributes hold them

// The file name of a model the API shows as a path; null: the default model (a camera's
// previous_model says "default" for it).
function modelFile(path) {
  return path && path !== 'default' ? String(path).split(/[\\/]/).pop() : null;
}

function button(cls, text, title) {
  const b = el('button', cls, text);
  b.type = 'button';
  if (title) b.title = title;
  return b;
}

function labelled(text, input) {
  const label = el('label', 'learn-field', text);
  label.append(input);
  return label;
}

function numberInput(cls, { min, max, value, placeholder }) {
  const input = el('input', cls);
  input.type = 'number';
  input.step = 'any';
  input.min = String(min);
  if (max !== undefined) input.max = String(max);
  if (value !== undefined) input.value = String(value);
  if (placeholder) input.placeholder = placeholder;
  return input;
}

function resultLine() {
  const line = el('div', 'learn-result');
  line.setAttribute('role', 'status');
  line.hidden = true;
  return line;
}

function showResult(rec) {
  const { text, ok } = rec.result;
  rec.resultEl.hidden = !text;
  rec.resultEl.textContent = text;
  if (ok === null) delete rec.resultEl.dataset.ok;
  else rec.resultEl.dataset.ok = String(ok);
}

// One admin action on an item: its buttons wait for the answer, which `done` takes in;
// a refusal (or no answer) shows in the item's result line.
async function act(rec, render, call, done, okText = '') {
  rec.busy = true;
  rec.result = { text: '', ok: null };
  render(rec);
  try {
    const body = await call();
    rec.result = { text: okText, ok: okText ? true : null };
    done(body);
  } catch (e) {
    rec.result = { text: e.message || String(e), ok: false };
  }
  rec.busy = false;
  render(rec);
}

// A camera's new view (after a model change or a roll back) until its 'cameras' message.
function takeCameraView(view) {
  const tile = store.cams.get(view.id);
  if (tile) tile.cam = { ...tile.cam, ...view };
  rerenderLearning();
}

// Keep `items` in this order under `list`, moving only those out of place: moving an
// element that holds the focus (a half-typed form) would lose it.
function placeInOrder(list, items) {
  let prev = null;
  for (const li of items) {
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== li) list.insertBefore(li, want);
    prev = li;
  }
}

const newestFirst = (a, b) => (b.data.created_at - a.data.created_at) ||
  key(b.data.id).localeCompare(key(a.data.id));

/* ---------- a row per camera: its model, roll back, the record form (admins) ---------- */

function createCameraRow(id) {
  const li = el('li', 'learn-camera');
  li.dataset.camera = id;
  const head = el('div', 'learn-head');
  const nameEl = el('span', 'learn-name');
  const rollback = button('camera-rollback', 'Roll back');
  head.append(nameEl, rollback);
  const modelEl = el('div', 'learn-model muted');

  const form = el('form', 'record-form');
  const minutes = numberInput('record-minutes', { min: 0.1, max: 1440, value: RECORD_MINUTES });
  minutes.required = true;
  minutes.title = 'minutes of normal footage to record';
  const spread = numberInput('record-spread', { min: 0, max: 168, placeholder: 'now' });
  spread.title = 'record a minute at a time, spread over this many hours (empty: all at once, now)';
  const keepAlerts = el('input', 'record-keep-alerts');
  keepAlerts.type = 'checkbox';
  keepAlerts.title = 'keep the frames while an alert is open too: a camera whose model does ' +
    'not know its scene yet alerts on normal footage';
  const keepLabel = el('label', 'learn-field');
  keepLabel.append(keepAlerts, ' keep alerts');
  const start = el('button', 'record-start', 'Record normal footage');
  start.type = 'submit';
  form.append(labelled('min ', minutes), labelled('over h ', spread), keepLabel, start);

  const row = { id, li, nameEl, modelEl, rollback, form, minutes, spread, keepAlerts, start,
    resultEl: resultLine(), result: { text: '', ok: null }, busy: false };
  li.append(head, modelEl, form, row.resultEl);
  rollback.addEventListener('click', () => act(row, renderCameraRow,
    () => api.rollback(id), takeCameraView));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = { minutes: Number(minutes.value) };
    if (spread.value !== '' && Number(spread.value) > 0) body.spread_hours = Number(spread.value);
    if (keepAlerts.checked) body.keep_alerts = true;
    act(row, renderCameraRow, () => api.record(id, body), upsertRecording);
  });
  return row;
}

function renderCameraRow(row) {
  const tile = store.cams.get(row.id);
  if (!tile) return;
  const cam = tile.cam;
  const admin = store.learning.admin;
  row.nameEl.textContent = tile.name;
  // A camera that ran another model before this one can go back to it ("default": the
  // service-wide model; null: there is none to go back to).
  const previous = cam.previous_model;
  const hasPrevious = previous !== null && previous !== undefined;
  row.modelEl.textContent = `model ${modelFile(cam.model) || 'default'}` +
    (hasPrevious ? ` · before: ${modelFile(previous) || 'default'}` : '');
  row.rollback.hidden = !admin || !hasPrevious;
  row.rollback.disabled = row.busy;
  row.rollback.title = `back to ${modelFile(previous) || 'the default model'}`;
  row.form.hidden = !admin;
  const recording = activeRecording(row.id);
  row.start.disabled = row.busy || recording !== null;
  row.start.title = recording ? 'this camera is being recorded already'
    : 'record this camera\'s normal footage to learn a model from';
  showResult(row);
}

// The cameras changed (added, removed, renamed, another model): a row per camera, in the
// tiles' order, and every item again (names, the Activate buttons).
export function syncLearningCameras() {
  const rows = store.learning.cameras;
  for (const id of store.cams.keys()) {
    if (!rows.has(id)) rows.set(id, createCameraRow(id));
  }
  for (const row of [...rows.values()]) {
    if (!store.cams.has(row.id)) { row.li.remove(); rows.delete(row.id); }
  }
  const order = [...dom.tiles.children].map((tile) => rows.get(tile.dataset.camera))
    .filter(Boolean);
  placeInOrder(dom.learningCameras, order.map((row) => row.li));
  rerenderLearning();
}

/* ---------- recordings ---------- */

function createRecordingItem(data) {
  const li = el('li', 'recording');
  li.dataset.recording = key(data.id);
  const head = el('div', 'learn-head');
  const cameraEl = el('span', 'learn-name');
  const stateEl = el('span', 'learn-state');
  head.append(cameraEl, stateEl);
  const bar = progressBar('recording-bar');
  const amountEl = el('div', 'learn-amount');
  const detailEl = el('div', 'learn-detail muted');
  const actions = el('div', 'learn-actions');
  const stop = button('recording-stop', 'Stop', 'stop recording; the footage so far is kept');
  const leaveOut = button('recording-leave-out', 'Leave out last minute',
    'the last minute was not normal: learn nothing from it');
  const learn = button('recording-learn', 'Learn', 'learn a model from this footage');
  const remove = button('recording-delete', 'Delete', 'delete this recording and its footage');
  actions.append(stop, leaveOut, learn, remove);
  const rec = { data, li, cameraEl, stateEl, bar, amountEl, detailEl, actions, stop, leaveOut,
    learn, remove, resultEl: resultLine(), result: { text: '', ok: null }, busy: false,
    form: null, confirmDelete: null };
  li.append(head, bar, amountEl, detailEl, actions, rec.resultEl);

  stop.addEventListener('click', () => act(rec, renderRecording,
    () => api.stopRecording(rec.data.id), upsertRecording));
  leaveOut.addEventListener('click', () => act(rec, renderRecording,
    () => api.leaveOut(rec.data.id, LEAVE_OUT_S), upsertRecording,
    'the last minute is left out'));
  learn.addEventListener('click', () => (rec.form ? closeLearnForm(rec) : openLearnForm(rec)));
  remove.addEventListener('click', () => deleteRecording(rec));
  return rec;
}

function renderRecording(rec) {
  const r = rec.data;
  const admin = store.learning.admin;
  rec.li.dataset.state = r.state;
  rec.li.dataset.camera = r.camera;
  rec.cameraEl.textContent = cameraName(r.camera);
  rec.stateEl.textContent = r.state;
  rec.stateEl.dataset.state = r.state;
  setProgress(rec.bar, r.progress);
  rec.bar.title = fmtPercent(r.progress);
  rec.amountEl.textContent = [
    `${fmtMinutes(r.seconds_kept / 60)} of ${fmtMinutes(r.minutes)} min`,
    fmtPercent(r.progress), fmtMegabytes(r.bytes),
  ].filter(Boolean).join(' · ');
  const detail = [];
  if (r.spread_hours) detail.push(`spread over ${r.spread_hours} h`);
  if (r.state === 'waiting' && r.next_at) detail.push(`next at ${fmtTime(r.next_at)}`);
  detail.push(`${r.frames} frames in ${r.chunks} chunks`);
  if (r.left_out) detail.push(`${r.left_out} frames left out`);
  if (r.error) detail.push(r.error);
  rec.detailEl.textContent = detail.join(' · ');
  rec.detailEl.classList.toggle('error', Boolean(r.error));

  rec.actions.hidden = !admin;
  rec.stop.disabled = rec.busy || !RECORDING_ACTIVE.has(r.state);
  rec.leaveOut.disabled = rec.busy || r.state === 'failed' || !(r.seconds_kept > 0);
  rec.learn.disabled = rec.busy || !LEARNABLE.has(r.state);
  rec.learn.textContent = rec.form ? 'Close' : 'Learn';
  rec.remove.disabled = rec.busy || RECORDING_ACTIVE.has(r.state);  // the server says stop first
  rec.remove.textContent = rec.confirmDelete ? 'Really delete?' : 'Delete';
  if (rec.form && (!admin || !LEARNABLE.has(r.state))) closeLearnForm(rec);
  if (rec.form) rec.form.start.disabled = rec.busy;
  showResult(rec);
}

// Two clicks: the footage of hours is not gone by a slip of the mouse.
function deleteRecording(rec) {
  if (!rec.confirmDelete) {
    rec.confirmDelete = setTimeout(() => { rec.confirmDelete = null; renderRecording(rec); },
      DELETE_CONFIRM_MS);
    renderRecording(rec);
    return;
  }
  clearTimeout(rec.confirmDelete);
  rec.confirmDelete = null;
  act(rec, renderRecording, () => api.deleteRecording(rec.data.id),
    () => removeRecording(rec.data.id));
}

function removeRecording(id) {
  const rec = store.learning.recordings.get(key(id));
  if (!rec) return;
  clearTimeout(rec.confirmDelete);
  rec.li.remove();
  store.learning.recordings.delete(key(id));
  afterRecordingChange(rec.data.camera);
}

function afterRecordingChange(cameraId) {
  updateTileWork(cameraId);
  const row = store.learning.cameras.get(cameraId);
  if (row) renderCameraRow(row);  // its Record button
  updatePanel();
}

// An item of `items` (recordings or jobs, by id) as the server shows it: created the first
// time, rendered in place, its list kept newest first. False for something without an id.
function upsertItem(items, data, create, render, list) {
  if (!data || data.id === undefined) return false;
  let rec = items.get(key(data.id));
  if (!rec) {
    rec = create(data);
    items.set(key(data.id), rec);
  }
  rec.data = data;
  render(rec);
  placeInOrder(list, [...items.values()].sort(newestFirst).map((r) => r.li));
  return true;
}

// A recording as the server shows it (a REST answer or a 'recording' message).
export function upsertRecording(data) {
  if (upsertItem(store.learning.recordings, data, createRecordingItem, renderRecording,
                 dom.recordings)) {
    afterRecordingChange(data.camera);
  }
}

/* ---------- the learn form: a model from a recording (admins) ---------- */

// A model name the server takes, from the camera's id ("Gate 2" -> "Gate-2").
function suggestedName(cameraId) {
  return cameraId.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 64) || 'camera';
}

function openLearnForm(rec) {
  const root = el('form', 'learn-form');
  const name = el('input', 'learn-model-name');
  name.required = true;
  name.pattern = NAME_PATTERN;
  name.maxLength = 64;
  name.value = suggestedName(rec.data.camera);
  name.title = 'letters, digits, _ and -: the model is saved as NAME.onnx in the model folder';
  const scratch = el('input', 'learn-scratch');
  scratch.type = 'checkbox';
  scratch.title = 'start from random weights rather than the shipped model (slower to learn)';
  const minutes = numberInput('learn-minutes', { min: MIN_TRAIN_MINUTES, max: 1440,
    value: TRAIN_MINUTES });
  minutes.required = true;
  minutes.title = 'minutes of training; calibrating and judging the model take a little more';
  const start = el('button', 'learn-start', 'Start learning');
  start.type = 'submit';
  const cancel = button('learn-close', 'Cancel');
  const scratchLabel = el('label', 'learn-field');
  scratchLabel.append(scratch, ' from scratch');
  root.append(labelled('name ', name), scratchLabel, labelled('train min ', minutes), start,
    cancel);
  rec.form = { root, name, scratch, minutes, start };
  rec.actions.after(root);
  cancel.addEventListener('click', () => closeLearnForm(rec));
  root.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = { camera: rec.data.camera, recording: rec.data.id, name: name.value,
      train_minutes: Number(minutes.value) };
    if (scratch.checked) body.scratch = true;
    act(rec, renderRecording, () => api.learn(body), (job) => {
      closeLearnForm(rec);
      upsertJob(job);
    });
  });
  renderRecording(rec);
  name.focus();
}

function closeLearnForm(rec) {
  if (!rec.form) return;
  rec.form.root.remove();
  rec.form = null;
  renderRecording(rec);
}

/* ---------- learning jobs ---------- */

function createJobItem(data) {
  const li = el('li', 'job');
  li.dataset.job = key(data.id);
  const head = el('div', 'learn-head');
  const titleEl = el('span', 'learn-name');
  const stateEl = el('span', 'learn-state');
  head.append(titleEl, stateEl);
  const bar = progressBar('job-bar');
  const detailEl = el('div', 'learn-detail');
  const fromEl = el('div', 'learn-from muted');
  const figuresEl = el('div', 'job-figures');
  const actions = el('div', 'learn-actions');
  const cancel = button('job-cancel', 'Cancel', 'stop learning; nothing is kept');
  const activate = button('job-activate', 'Activate');
  actions.append(cancel, activate);
  const rec = { data, li, titleEl, stateEl, bar, detailEl, fromEl, figuresEl, actions, cancel,
    activate, resultEl: resultLine(), result: { text: '', ok: null }, busy: false };
  li.append(head, bar, detailEl, fromEl, figuresEl, actions, rec.resultEl);

  cancel.addEventListener('click', () => act(rec, renderJob,
    () => api.cancelJob(rec.data.id), upsertJob));
  activate.addEventListener('click', () => act(rec, renderJob,
    () => api.setModel(rec.data.camera, rec.data.model), takeCameraView));
  return rec;
}

function progressText(job) {
  const p = job.progress || {};
  const parts = [STAGES[p.stage] || p.stage || (job.state === 'running' ? 'starting' : job.state)];
  if (p.stage === 'record' && p.frames_wanted) parts.push(`${p.frames}/${p.frames_wanted} frames`);
  if (p.stage === 'train') {
    if (typeof p.step === 'number' && p.steps) parts.push(`step ${p.step}/${p.steps}`);
    if (typeof p.loss === 'number') parts.push(`loss ${p.loss.toPrecision(3)}`);
    if (typeof p.clips_per_s === 'number') parts.push(`${p.clips_per_s.toFixed(1)} clips/s`);
  }
  if (job.state === 'running' && typeof p.eta_s === 'number') parts.push(`ETA ${fmtEta(p.eta_s)}`);
  // Paused while a live camera is sampled down: the cameras' frame rate comes first.
  if (job.yielding) parts.push('paused for the live cameras');
  return parts.join(' · ');
}

const perHour = (v) => (typeof v === 'number' ? `${v.toFixed(1)} alerts/h` : '');

// What the learned model does on the held-out footage, beside the model it replaces.
function figureLines(r) {
  const lines = [[`false alarms ${fmtPercent(r.false_alarm_rate, 2)} of frames`,
    perHour(r.alerts_per_hour), `threshold ${fmtReg(r.threshold)}`]];
  if (r.before) {
    lines.push([`before (${modelFile(r.before.model) || 'default'}): ` +
      `${fmtPercent(r.before.false_alarm_rate, 2)}`, perHour(r.before.alerts_per_hour)]);
  }
  const last = [];
  if (typeof r.validation_score === 'number') last.push(`validation ${fmtReg(r.validation_score)}`);
  if (typeof r.steps === 'number') {
    last.push(`${r.steps} steps` +
      (typeof r.train_seconds === 'number' ? ` in ${fmtDuration(r.train_seconds)}` : ''));
  }
  if (last.length) lines.push(last);
  return lines.map((parts) => el('div', 'job-figure', parts.filter(Boolean).join(' · ')));
}

function renderJob(rec) {
  const j = rec.data;
  const p = j.progress || {};
  const admin = store.learning.admin;
  rec.li.dataset.state = j.state;
  // The server shows progress only while a job runs: a finished one is at its end.
  rec.li.dataset.stage = p.stage || (j.state === 'running' ? 'starting' : j.state);
  rec.li.dataset.camera = j.camera;
  rec.titleEl.textContent = `${cameraName(j.camera)} · ${j.name}`;
  rec.stateEl.textContent = j.state;
  rec.stateEl.dataset.state = j.state;
  setProgress(rec.bar, jobProgress(j));
  rec.detailEl.textContent = j.error ? `${progressText(j)}: ${j.error}` : progressText(j);
  rec.detailEl.classList.toggle('error', Boolean(j.error));
  rec.fromEl.textContent = [
    j.scratch ? 'from scratch' : `from ${modelFile(j.from_model) || 'the shipped model'}`,
    `started ${fmtTime(j.created_at)}`,
    j.finished_at ? `finished ${fmtTime(j.finished_at)}` : '',
  ].filter(Boolean).join(' · ');
  const figuresKey = JSON.stringify(j.result);  // redraw only when they change
  if (rec.figuresEl.dataset.key !== figuresKey) {
    rec.figuresEl.dataset.key = figuresKey;
    rec.figuresEl.replaceChildren(...(j.result ? figureLines(j.result) : []));
  }

  const tile = store.cams.get(j.camera);
  const active = Boolean(tile && j.model && modelFile(tile.cam.model) === j.model);
  rec.actions.hidden = !admin;
  rec.cancel.hidden = j.state !== 'running';
  rec.cancel.disabled = rec.busy;
  rec.activate.hidden = !(j.state === 'done' && j.model);
  rec.activate.disabled = rec.busy || !tile || active;
  rec.activate.textContent = `${active ? 'Active' : 'Activate'} on ${cameraName(j.camera)}`;
  rec.activate.title = tile ? `run ${j.model} on this camera from now on`
    : 'the camera is gone';
  showResult(rec);
}

// A job as the server shows it (a REST answer or a 'learning' message).
export function upsertJob(data) {
  if (upsertItem(store.learning.jobs, data, createJobItem, renderJob, dom.jobs)) {
    updateTileWork(data.camera);
    updatePanel();
  }
}

/* ---------- the panel ---------- */

// Shown to admins (who may start something) and to anyone once there is something to see.
function updatePanel() {
  const l = store.learning;
  dom.recordingsPart.hidden = l.recordings.size === 0;
  dom.jobsPart.hidden = l.jobs.size === 0;
  const anything = l.recordings.size > 0 || l.jobs.size > 0;
  dom.learning.hidden = !(anything || (l.admin && store.cams.size > 0));
}

// Camera names, models or the role changed: every item again.
export function rerenderLearning() {
  const l = store.learning;
  for (const row of l.cameras.values()) renderCameraRow(row);
  for (const rec of l.recordings.values()) renderRecording(rec);
  for (const rec of l.jobs.values()) renderJob(rec);
  updatePanel();
}

// The server's lists replace the page's (a recording deleted meanwhile goes).
function replaceAll(items, map, upsert, remove) {
  const ids = new Set(items.map((item) => key(item.id)));
  for (const id of [...map.keys()]) if (!ids.has(id)) remove(id);
  for (const item of items) upsert(item);
}

export async function loadLearning() {
  if (!store.conn.connected) return;  // down or signed out: the websocket sorts that out
  try {
    const [recordings, jobs] = await Promise.all([api.recordings(), api.jobs()]);
    const l = store.learning;
    replaceAll(recordings, l.recordings, upsertRecording, removeRecording);
    replaceAll(jobs, l.jobs, upsertJob, (id) => {
      const rec = l.jobs.get(id);
      rec.li.remove();
      l.jobs.delete(id);
      updateTileWork(rec.data.camera);
    });
    updatePanel();
  } catch (e) {
    console.warn('clipwatch: could not load the recordings and learning jobs', e);
  }
}

// Who gets the controls: admins (everyone when the server has no auth). Asked after every
// sign-in, as the role comes with the session.
export async function startLearning() {
  try {
    const r = await api.me();
    store.learning.admin = Boolean(r.ok && r.body && r.body.role === 'admin');
  } catch (e) {
    store.learning.admin = false;
  }
  syncLearningCameras();
  loadLearning();
}
