/*
 * api.js: fetch helpers for the same-origin REST API (/api/...).
 *
 * request() never throws on an HTTP error, only when the server does not answer;
 * getJson()/postJson()/patchJson() throw an ApiError carrying the server's `detail`, and so
 * does deleteOk() (a DELETE answers 204, no body).
 */

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function detailText(body, status) {
  if (body && body.detail !== undefined) {
    // FastAPI validation errors put a list in detail.
    return typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
  }
  return `request failed (HTTP ${status})`;
}

// {ok, status, statusText, body}: body is the parsed JSON, or null when there is none.
export async function request(method, path, payload) {
  const init = { method };
  if (payload !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(payload);
  }
  const res = await fetch(path, init);
  const body = await res.json().catch(() => null);
  return { ok: res.ok, status: res.status, statusText: res.statusText, body };
}

async function checked(method, path, payload) {
  const r = await request(method, path, payload);
  if (!r.ok || r.body === null) throw new ApiError(detailText(r.body, r.status), r.status);
  return r.body;
}

export const getJson = (path) => checked('GET', path);
export const postJson = (path, payload) => checked('POST', path, payload);
export const patchJson = (path, payload) => checked('PATCH', path, payload);

export async function deleteOk(path) {
  const r = await request('DELETE', path);
  if (!r.ok) throw new ApiError(detailText(r.body, r.status), r.status);
}

const part = (id) => encodeURIComponent(String(id));

export const api = {
  events: (params) => getJson(`/api/events?${new URLSearchParams(params)}`),
  ack: (id, note) => postJson(`/api/events/${id}/ack`, { note }),
  cameras: () => getJson('/api/cameras'),
  me: () => request('GET', '/api/me'),
  sinks: () => getJson('/api/sinks'),
  testSink: (id) => postJson(`/api/sinks/${encodeURIComponent(id)}/test`),
  login: (name, password) => request('POST', '/api/login', { name, password }),
  // Learning a camera (learning.js): recordings of normal footage, learning jobs, and
  // putting a learned model on its camera (PATCH) or taking it back (rollback).
  recordings: () => getJson('/api/recordings'),
  record: (camera, body) => postJson(`/api/cameras/${part(camera)}/recordings`, body),
  stopRecording: (id) => postJson(`/api/recordings/${part(id)}/stop`),
  leaveOut: (id, seconds) => postJson(`/api/recordings/${part(id)}/leave-out`, { seconds }),
  deleteRecording: (id) => deleteOk(`/api/recordings/${part(id)}`),
  jobs: () => getJson('/api/learning'),
  learn: (body) => postJson('/api/learning', body),
  cancelJob: (id) => postJson(`/api/learning/${part(id)}/cancel`),
  setModel: (camera, model) => patchJson(`/api/cameras/${part(camera)}`, { model }),
  rollback: (camera) => postJson(`/api/cameras/${part(camera)}/rollback`),
};
