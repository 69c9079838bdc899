/*
 * main.js: the clipwatch viewer's entry point; wires the modules together.
 *
 *   state.js       the one store every module reads and updates
 *   connection.js  websocket: subscribe, resume by alert seq, ping, reconnect with backoff
 *   tiles.js       camera tiles: video, heatmap toggle, status, regularity, fps; render loop
 *   timeline.js    a tile's regularity timeline with the threshold and alert periods
 *   alerts.js      live alert list with snapshots and acknowledgement
 *   history.js     paged, filtered history of stored events
 *   login.js       sign-in form (auth configured, no session)
 *   lightbox.js    one image over the page
 *   sinks.js       alert sinks with their delivery status and a Test button (admins)
 *   learning.js    learn a camera: record its normal footage, learn a model from it,
 *                  put the model on the camera or take it back (controls: admins)
 *   regions.js     a camera's masks and zones over its video; their editor (admins)
 *   api.js         fetch helpers for /api
 *   instrument.js  opt-in measurements for tests and benchmarks (?instrument=1)
 *
 * Talks only to same-origin /api and /ws; nothing is loaded from elsewhere.
 */
import { rerenderAlerts, reloadAlerts, updateAlertCounts, upsertAlert } from './alerts.js';
import { api } from './api.js';
import { ensureConnected, sendSubscribe, startConnection } from './connection.js';
import { bindDom } from './dom.js';
import { bindHistory, loadHistory, renderHistory, scheduleHistoryReload,
  updateHistoryCameraOptions } from './history.js';
import { enableInstrumentation, instrumentRequested, recordFrame,
  recordScore } from './instrument.js';
import { bindLightbox } from './lightbox.js';
import { loadLearning, startLearning, syncLearningCameras, upsertJob,
  upsertRecording } from './learning.js';
import { bindLogin, checkSession, showLogin } from './login.js';
import { loadRole, onZoneScores } from './regions.js';
import { loadSinks, startSinks } from './sinks.js';
import { store } from './state.js';
import { bindTiles, onScore, onStatus, queueFrame, refreshCameraStats,
  syncCameras } from './tiles.js';

const CAMERA_STATS_MS = 5000;  // how often the tiles' measured frame rates are refreshed

function onCameras(list) {
  syncCameras(list);
  updateHistoryCameraOptions();
  renderHistory();   // it may have loaded before camera names were known
  rerenderAlerts();  // names may have changed
  syncLearningCameras();  // a row per camera; names and models in the items
}

async function pollCameraStats() {
  if (!store.conn.connected) return;  // down or signed out: the websocket sorts that out
  try {
    refreshCameraStats(await api.cameras());
  } catch (e) {
    console.warn('clipwatch: could not refresh camera stats', e);
  }
}

function startLive() {
  loadRole();  // admins get the tiles' masks-and-zones editor
  loadHistory();
  ensureConnected();
  startSinks();
  startLearning();
}

function init() {
  if (instrumentRequested()) enableInstrumentation();
  bindDom();
  bindTiles(sendSubscribe);
  bindHistory();
  bindLightbox();
  bindLogin(startLive);

  startConnection({
    messages: {
      hello: (m) => onCameras(m.cameras || []),
      cameras: (m) => onCameras(m.cameras || []),
      status: onStatus,
      // Recordings and learning jobs, whole, on every change (about once a second while busy).
      recording: (m) => upsertRecording(m.recording),
      learning: (m) => upsertJob(m.job),
      score: (m) => { recordScore(m); onScore(m); onZoneScores(m); },
      alert: (m) => {
        // Upsert even for replayed seqs (idempotent). event may be start/update/end
        // or "ack"; tile alerting follows alert.state, so any kind is handled alike.
        upsertAlert(m.alert);
        // History lists finished and acknowledged events: refresh it when one changes (an
        // update of a closed event brings its clip).
        if (m.event === 'end' || m.event === 'ack' ||
            (m.event === 'update' && m.alert && m.alert.state === 'closed')) scheduleHistoryReload();
      },
    },
    frame: (header, jpeg) => { recordFrame(header); queueFrame(header.camera, jpeg); },
    opened: (isReconnect) => {
      // Alerts may have happened while we were away (or the server restarted).
      reloadAlerts();
      if (isReconnect) loadHistory();  // the first load ran in startLive()
      loadSinks();
      loadLearning();  // what changed while away
    },
    unauthorized: () => showLogin(),
  });
  setInterval(pollCameraStats, CAMERA_STATS_MS);

  updateAlertCounts();
  checkSession(startLive);
}

init();
