/*
 * state.js: the viewer's state, in one place.
 *
 * Every module reads and updates this one store; none keeps state of its own in module
 * variables. Constants live next to the code that uses them; DOM references are in dom.js.
 * Only the last alert seq is persisted (per tab, in sessionStorage) so a reload resumes.
 */

const SEQ_KEY = 'clipwatch.lastSeq';

function readStoredSeq() {
  try {
    const raw = sessionStorage.getItem(SEQ_KEY);
    const v = raw === null ? NaN : Number(raw);
    return Number.isInteger(v) ? v : null;
  } catch (_) {
    return null;  // storage disabled: just do not resume
  }
}

const storedSeq = readStoredSeq();

export const store = {
  conn: {
    ws: null,              // the open (or opening) WebSocket, null while down
    connected: false,
    everConnected: false,  // decides "connecting" vs "reconnecting" and the history reload
    backoffMs: 0,          // set by connection.js; reset only once the server says hello
    reconnectTimer: null,
    pingTimer: null,
    clockOffset: 0,        // server clock minus local clock, seconds
    lastSeq: storedSeq === null ? 0 : storedSeq,
    seenAlerts: storedSeq !== null,  // resume only once this tab has seen an alert seq
  },
  view: {
    overlay: true,         // heatmap over the video (the header toggle)
  },
  cams: new Map(),         // camera id -> tile record (tiles.js)
  render: {
    pendingFrames: new Map(),   // camera id -> newest JPEG bytes not yet shown
    dirtyTimelines: new Set(),  // tile records whose canvas needs a redraw
    rafPending: false,
  },
  alerts: new Map(),       // event id -> alert record (alerts.js)
  history: { offset: 0, total: 0, token: 0, items: [], reloadTimer: null },
  // Alert sinks (sinks.js): the list with its status, who may test, the last test's result.
  sinks: { items: [], admin: false, timer: null, results: new Map() },
  // Learning a camera (learning.js): a row per camera (its record form, model, roll back),
  // the recordings and learning jobs by id (records with their list items), who may act.
  learning: { admin: false, cameras: new Map(), recordings: new Map(), jobs: new Map() },
  // Test and benchmark instrumentation (instrument.js); null unless switched on.
  debug: null,
};

export function storeSeq(seq) {
  store.conn.lastSeq = seq;
  try { sessionStorage.setItem(SEQ_KEY, String(seq)); } catch (_) { /* ignore */ }
}

export function serverNow() {
  return Date.now() / 1000 + store.conn.clockOffset;
}

export function cameraName(id) {
  const rec = store.cams.get(id);
  return rec ? rec.name : id;
}

// The threshold a tile draws and labels: the latest score's, else the camera's.
export function currentThreshold(rec) {
  if (typeof rec.threshold === 'number') return rec.threshold;
  if (typeof rec.cam.effective_threshold === 'number') return rec.cam.effective_threshold;
  if (typeof rec.cam.threshold === 'number') return rec.cam.threshold;
  return null;
}

/* ---------- learning a camera: what the tiles and the learning panel both read ---------- */

export const RECORDING_ACTIVE = new Set(['recording', 'waiting']);  // still gathering footage

function newest(items) {
  let best = null;
  for (const item of items) if (!best || item.created_at > best.created_at) best = item;
  return best;
}

// The camera's recording still gathering footage (the server allows one), else null.
export function activeRecording(cameraId) {
  return newest([...store.learning.recordings.values()].map((r) => r.data)
    .filter((r) => r.camera === cameraId && RECORDING_ACTIVE.has(r.state)));
}

// The camera's running learning job (the server runs one at a time), else null.
export function runningJob(cameraId) {
  return newest([...store.learning.jobs.values()].map((j) => j.data)
    .filter((j) => j.camera === cameraId && j.state === 'running'));
}

const TRAINED_STAGES = new Set(['export', 'calibrate', 'judge', 'validate', 'done']);

// How far a job's training is, 0..1: training ends at its last step or when its time budget
// is spent, whichever comes first, so the bar follows the nearer of the two. The stages
// after it take a minute or two; their ETA says so, the bar stays full.
export function jobProgress(job) {
  const p = job.progress || {};
  if (job.state === 'done' || TRAINED_STAGES.has(p.stage)) return 1;
  let fraction = 0;
  if (p.steps > 0 && typeof p.step === 'number') fraction = Math.max(fraction, p.step / p.steps);
  if (p.budget_s > 0 && typeof p.train_seconds === 'number') {
    fraction = Math.max(fraction, p.train_seconds / p.budget_s);
  }
  return Math.min(1, Math.max(0, fraction));
}
