/*
 * instrument.js: measurements for tests and benchmarks, off unless asked for.
 *
 * Switched on by `?instrument=1` in the page URL, or by localStorage
 * `clipwatch.instrument` = "1" (`?instrument=0` overrides the stored flag). When on,
 * window.clipwatch shows the connection state, per-camera score and frame counts, and
 * each frame's arrival time minus its capture time (same machine, same clock).
 * tests/server/test_viewer.py and scripts/viewer_latency.py read it: keep its field names.
 * When off, nothing is counted and nothing is put on window.
 */
import { store } from './state.js';

const FLAG_KEY = 'clipwatch.instrument';
const MAX_LATENCIES = 5000;

export function instrumentRequested(search = window.location.search) {
  const param = new URLSearchParams(search).get('instrument');
  if (param !== null) return param === '1' || param === 'true';
  try {
    return localStorage.getItem(FLAG_KEY) === '1';
  } catch (_) {
    return false;
  }
}

export function enableInstrumentation() {
  const debug = {
    scoreCount: {},
    frameCount: {},
    latencies: [],
    latencyFrames: [],  // the source frame index of each latency sample, same order
  };
  store.debug = debug;
  window.clipwatch = Object.freeze({
    get connected() { return store.conn.connected; },
    get lastSeq() { return store.conn.lastSeq; },
    scoreCount: debug.scoreCount,
    frameCount: debug.frameCount,
    latencies: debug.latencies,
    latencyFrames: debug.latencyFrames,
  });
}

export function recordScore(msg) {
  const debug = store.debug;
  if (!debug) return;
  debug.scoreCount[msg.camera] = (debug.scoreCount[msg.camera] || 0) + 1;
}

export function recordFrame(header) {
  const debug = store.debug;
  if (!debug) return;
  debug.frameCount[header.camera] = (debug.frameCount[header.camera] || 0) + 1;
  debug.latencies.push(Date.now() / 1000 - header.captured_at);
  debug.latencyFrames.push(header.frame);
  if (debug.latencies.length > MAX_LATENCIES) {  // in place: window.clipwatch holds the arrays
    debug.latencies.splice(0, debug.latencies.length - MAX_LATENCIES);
    debug.latencyFrames.splice(0, debug.latencyFrames.length - MAX_LATENCIES);
  }
}
