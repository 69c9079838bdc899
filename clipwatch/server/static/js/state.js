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
