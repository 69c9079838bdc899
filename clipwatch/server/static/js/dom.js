/*
 * dom.js: element helpers and the page's fixed elements (looked up once, by id).
 */

export const $ = (id) => document.getElementById(id);

export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A <progress> with its fraction in data-progress too (0..1), for CSS and tests alike.
export function progressBar(cls) {
  const bar = el('progress', cls);
  bar.max = 1;
  bar.value = 0;
  bar.dataset.progress = '0';
  return bar;
}

export function setProgress(bar, fraction) {
  const f = Math.min(1, Math.max(0, Number(fraction) || 0));
  bar.value = f;
  bar.dataset.progress = String(Math.round(f * 1000) / 1000);
}

// Filled by bindDom() at startup; references only, never state.
export const dom = {};

export function bindDom() {
  Object.assign(dom, {
    conn: $('conn'), overlay: $('overlay-toggle'), tiles: $('tiles'), tilesEmpty: $('tiles-empty'),
    alerts: $('alerts'), alertsEmpty: $('alerts-empty'), unack: $('unack-count'),
    histCamera: $('history-camera'), histAck: $('history-ack'), histRows: $('history-rows'),
    histPage: $('history-page'), histPrev: $('history-prev'), histNext: $('history-next'),
    histRefresh: $('history-refresh'), histStatus: $('history-status'),
    lightbox: $('lightbox'), lightboxImg: $('lightbox-img'), lightboxVideo: $('lightbox-video'),
    lightboxCaption: $('lightbox-caption'), lightboxClose: $('lightbox-close'),
    login: $('login'), loginName: $('login-name'), loginPassword: $('login-password'),
    loginError: $('login-error'),
    sinks: $('sinks'), sinksList: $('sinks-list'),
    learning: $('learning'), learningCameras: $('learning-cameras'),
    recordingsPart: $('recordings-part'), recordings: $('recordings'),
    jobsPart: $('jobs-part'), jobs: $('jobs'),
  });
}
