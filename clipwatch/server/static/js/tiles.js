/*
 * tiles.js: one tile per camera: name, status badge, the live video (plain or with the
 * heatmap overlay, as the header toggle asks), the latest regularity, the measured frame
 * rate and threshold, and the timeline canvas. Frames and timeline redraws are batched
 * into one animation frame; only the newest frame per camera is ever decoded.
 * While the camera's normal footage is being recorded, or a model is learning from it
 * (learning.js), a thin bar under the video says how far that is.
 */
import { dom, el, progressBar, setProgress } from './dom.js';
import { fmtEta, fmtFps, fmtPercent, fmtReg, fmtTime } from './format.js';
import { attachRegions, drawRegions } from './regions.js';
import { activeRecording, currentThreshold, jobProgress, runningJob, store } from './state.js';
import { drawTimeline, KEEP_SECONDS } from './timeline.js';

const TIMELINE_MIN_MS = 250;  // at most 4 redraws/s per timeline

const resizeObserver = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const rec = store.cams.get(entry.target.closest('.tile')?.dataset.camera);
    if (rec) markDirty(rec);
  }
});

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
  const fpsEl = el('span', 'fps');
  const thrEl = el('span', 'thr');
  metaEl.append(fpsEl, thrEl);
  foot.append(el('span', 'muted', 'regularity '), regEl, metaEl);

  const recordingBar = workBar('tile-recording');
  const learningBar = workBar('tile-learning');

  const canvas = el('canvas', 'timeline');
  root.append(head, videoWrap, recordingBar.root, learningBar.root, foot, canvas);

  const rec = {
    id: cam.id, name: cam.id, cam, root, nameEl, statusEl, img, regEl, fpsEl, thrEl, canvas,
    recordingBar, learningBar,
    scores: [],        // {t, r, a}: captured_at, regularity, alerting
    threshold: null,   // latest threshold seen in a score
    url: null,         // object URL currently shown in img
    drawnAt: 0,
  };
  attachRegions(rec, videoWrap, head);  // masks and zones over the video, their editor
  return rec;
}

// A thin bar with a line of text over it; hidden while there is nothing to show.
function workBar(cls) {
  const root = el('div', `tile-work ${cls}`);
  root.hidden = true;
  const label = el('span', 'tile-work-label');
  const bar = progressBar('tile-work-bar');
  root.append(label, bar);
  return { root, label, bar };
}

function showWork(work, fraction, text) {
  work.root.hidden = text === null;
  if (text === null) {
    delete work.root.dataset.progress;
    return;
  }
  setProgress(work.bar, fraction);
  work.root.dataset.progress = work.bar.dataset.progress;
  work.label.textContent = text;
}

function recordingText(r) {
  const text = `recording normal footage ${fmtPercent(r.progress)}`;
  return r.state === 'waiting' && r.next_at ? `${text} · next at ${fmtTime(r.next_at)}` : text;
}

function learningText(job) {
  const p = job.progress || {};
  const parts = [];
  if (p.stage === 'train' && typeof p.step === 'number' && p.steps) {
    parts.push(`step ${p.step}/${p.steps}`);
  } else {
    parts.push(p.stage || 'starting');
  }
  if (typeof p.eta_s === 'number') parts.push(`ETA ${fmtEta(p.eta_s)}`);
  if (job.yielding) parts.push('paused');
  return `learning: ${parts.join(' · ')}`;
}

// The camera's recording and learning bars, from the store (learning.js calls this on
// every change of a recording or a job of the camera).
export function updateTileWork(cameraId) {
  const rec = store.cams.get(cameraId);
  if (!rec) return;
  const recording = activeRecording(cameraId);
  showWork(rec.recordingBar, recording ? recording.progress : 0,
    recording ? recordingText(recording) : null);
  const job = runningJob(cameraId);
  showWork(rec.learningBar, job ? jobProgress(job) : 0, job ? learningText(job) : null);
}

function updateTile(rec, cam) {
  rec.cam = cam;
  rec.name = cam.name || cam.id;
  rec.nameEl.textContent = rec.name;
  rec.nameEl.title = cam.source || '';
  rec.img.alt = `${rec.name} live video`;
  if (cam.status) setStatus(rec, cam.status);
  updateMeta(rec);
  drawRegions(rec);
  markDirty(rec);
}

// The frame rate shown is the one measured at the camera (fps_in), not the config's.
function updateMeta(rec) {
  const fpsIn = rec.cam.fps_in;
  rec.fpsEl.textContent = fmtFps(fpsIn);
  rec.fpsEl.dataset.fpsIn = typeof fpsIn === 'number' ? String(fpsIn) : '';
  rec.fpsEl.title = typeof rec.cam.sampled_fps === 'number'
    ? `frames/s the camera delivers (measured); ${rec.cam.sampled_fps.toFixed(1)} scored`
    : 'frames/s the camera delivers (measured)';
  const th = currentThreshold(rec);
  rec.thrEl.textContent = th === null ? '' : `thr ${th.toFixed(3)}`;
}

function setStatus(rec, status) {
  const state = status.state || 'connecting';
  rec.statusEl.dataset.state = state;
  rec.statusEl.textContent = state;
  rec.statusEl.title = status.reason || (status.since ? `since ${fmtTime(status.since)}` : '');
  rec.root.dataset.state = state;  // lets CSS dim the video when lost/stopped
}

function removeTile(rec) {
  if (rec.url) URL.revokeObjectURL(rec.url);
  rec.root.remove();
  resizeObserver.unobserve(rec.canvas);
  store.cams.delete(rec.id);
  store.render.pendingFrames.delete(rec.id);
  store.render.dirtyTimelines.delete(rec);
}

// Add/update/remove tiles to match the server's list; existing tiles keep
// their score history so a reconnect does not blank the timelines.
export function syncCameras(list) {
  const seen = new Set();
  for (const cam of list) {
    seen.add(cam.id);
    let rec = store.cams.get(cam.id);
    if (!rec) {
      rec = createTile(cam);
      store.cams.set(cam.id, rec);
      resizeObserver.observe(rec.canvas);
    }
    updateTile(rec, cam);
    dom.tiles.append(rec.root);  // re-append keeps DOM order = server order
    updateTileAlerting(cam.id);
    updateTileWork(cam.id);
  }
  for (const rec of [...store.cams.values()]) {
    if (!seen.has(rec.id)) removeTile(rec);
  }
  dom.tilesEmpty.hidden = store.cams.size > 0;
}

// The measured rates move all the time, but the server announces cameras only when they
// change: main.js polls /api/cameras and hands the list here. Tiles are not added or
// removed from it (the websocket's 'cameras' messages do that).
export function refreshCameraStats(list) {
  for (const cam of list) {
    const rec = store.cams.get(cam.id);
    if (!rec) continue;
    rec.cam.fps_in = cam.fps_in;
    rec.cam.sampled_fps = cam.sampled_fps;
    updateMeta(rec);
  }
}

export function updateTileAlerting(cameraId) {
  const rec = store.cams.get(cameraId);
  if (!rec) return;
  let open = false;
  for (const a of store.alerts.values()) {
    if (a.event.camera === cameraId && a.event.state === 'open') { open = true; break; }
  }
  rec.root.classList.toggle('alerting', open);
}

export function onStatus(msg) {
  const rec = store.cams.get(msg.camera);
  if (!rec) return;
  rec.cam.status = { state: msg.state, reason: msg.reason, since: msg.since };
  setStatus(rec, rec.cam.status);
}

export function onScore(msg) {
  const rec = store.cams.get(msg.camera);
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

// A video frame (JPEG bytes) for a camera; shown at the next animation frame.
export function queueFrame(cameraId, bytes) {
  if (!store.cams.has(cameraId)) return;
  store.render.pendingFrames.set(cameraId, bytes);
  scheduleRender();
}

/* ---------- render loop: frames and timelines, once per animation frame ---------- */

function scheduleRender() {
  if (store.render.rafPending) return;
  store.render.rafPending = true;
  requestAnimationFrame(render);
}

export function markDirty(rec) {
  store.render.dirtyTimelines.add(rec);
  scheduleRender();
}

function render(now) {
  const r = store.render;
  r.rafPending = false;
  // Only the newest frame per camera is decoded; older ones would never be seen.
  for (const [id, bytes] of r.pendingFrames) {
    const rec = store.cams.get(id);
    if (rec) showFrame(rec, bytes);
  }
  r.pendingFrames.clear();

  for (const rec of r.dirtyTimelines) {
    if (now - rec.drawnAt < TIMELINE_MIN_MS) continue;
    rec.drawnAt = now;
    r.dirtyTimelines.delete(rec);
    drawTimeline(rec);
  }
  if (r.dirtyTimelines.size) scheduleRender();
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

/* ---------- startup ---------- */

// `onOverlayChange` re-subscribes, so the server switches which frames it sends.
export function bindTiles(onOverlayChange) {
  store.view.overlay = dom.overlay.checked;
  dom.overlay.addEventListener('change', () => {
    store.view.overlay = dom.overlay.checked;
    onOverlayChange();
  });
  // Timelines scroll with time even when no scores arrive (camera lost).
  setInterval(() => { for (const rec of store.cams.values()) markDirty(rec); }, 1000);
}
