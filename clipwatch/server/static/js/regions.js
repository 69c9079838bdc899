/*
 * regions.js: a camera's masks and zones over its live picture, and their editor (admins).
 *
 * Masks (their pixels count toward neither the score nor the heatmap) and named zones
 * (each with its own score, threshold and alerts) are polygons in the frame's pixel
 * coordinates. They are drawn in an SVG laid over the video whose viewBox is the frame's
 * size: with preserveAspectRatio "meet" it maps exactly as the img's object-fit: contain,
 * so a click's position in the SVG is a frame pixel. Zone labels show the zone's latest
 * regularity from the score messages.
 *
 * The editor (the tile's "Zones" button, admins only): click points over the picture,
 * "Close polygon" makes them a mask or a named zone, "Save" sends every mask and zone to
 * PUT /api/cameras/{id}/zones; the server restarts the camera with them, writes them to its
 * config and announces the camera, whose tile then draws what was saved. A refusal (a
 * polygon outside the frame, crossing itself) is shown as the server words it.
 *
 * State lives on the tile record (`rec.regions`), as every module keeps it in the store.
 */
import { api, detailText, request } from './api.js';
import { el } from './dom.js';
import { fmtReg } from './format.js';
import { store } from './state.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

function svgEl(tag, cls) {
  const node = document.createElementNS(SVG_NS, tag);
  if (cls) node.setAttribute('class', cls);
  return node;
}

const pointsAttr = (points) => points.map(([x, y]) => `${x},${y}`).join(' ');

// The frame's size: the camera's as the API says, else the picture's once one is shown.
function frameSize(rec) {
  const size = rec.cam.frame_size;
  if (Array.isArray(size) && size.length === 2) return size;
  if (rec.img.naturalWidth > 0) return [rec.img.naturalWidth, rec.img.naturalHeight];
  return null;
}

/* ---------- drawing ---------- */

export function attachRegions(rec, videoWrap, head) {
  const svg = svgEl('svg', 'regions');
  svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
  svg.setAttribute('aria-hidden', 'true');
  videoWrap.append(svg);
  const button = el('button', 'zones-edit', 'Zones');
  button.type = 'button';
  button.title = 'edit this camera\'s masks and zones';
  button.addEventListener('click', () => (rec.regions.editing ? stopEditing(rec) : startEditing(rec)));
  head.insertBefore(button, head.lastChild);  // before the status badge
  rec.regions = { svg, button, editing: null, zoneLabels: new Map() };
  // The picture's own size is the fallback coordinate system: redraw once it is known.
  rec.img.addEventListener('load', () => {
    const viewBox = svg.getAttribute('viewBox');
    const size = frameSize(rec);
    if (size && viewBox !== `0 0 ${size[0]} ${size[1]}`) drawRegions(rec);
  });
}

export function drawRegions(rec) {
  const r = rec.regions;
  if (!r) return;
  const size = frameSize(rec);
  r.svg.replaceChildren();
  r.zoneLabels.clear();
  if (!size) return;
  r.svg.setAttribute('viewBox', `0 0 ${size[0]} ${size[1]}`);
  const edit = r.editing;
  const masks = edit ? edit.masks : (rec.cam.masks || []);
  const zones = edit ? edit.zones : (rec.cam.zones || []);
  for (const polygon of masks) {
    const shape = svgEl('polygon', 'mask');
    shape.setAttribute('points', pointsAttr(polygon));
    r.svg.append(shape);
  }
  for (const zone of zones) {
    const shape = svgEl('polygon', 'zone');
    shape.setAttribute('points', pointsAttr(zone.polygon));
    shape.dataset.zone = zone.name;
    const label = svgEl('text', 'zone-label');
    const [x, y] = zone.polygon[0];
    label.setAttribute('x', String(x + 3));
    label.setAttribute('y', String(y + 3));
    label.setAttribute('font-size', String(Math.max(10, Math.round(size[1] / 22))));
    label.textContent = zone.name;
    r.zoneLabels.set(zone.name, label);
    r.svg.append(shape, label);
  }
  if (edit && edit.points.length) {
    const line = svgEl('polyline', 'draft');
    line.setAttribute('points', pointsAttr(edit.points));
    r.svg.append(line);
    for (const [x, y] of edit.points) {
      const dot = svgEl('circle', 'draft-point');
      dot.setAttribute('cx', String(x));
      dot.setAttribute('cy', String(y));
      dot.setAttribute('r', String(Math.max(2, size[0] / 160)));
      r.svg.append(dot);
    }
  }
}

// A score message: each zone's label shows its latest regularity.
export function onZoneScores(msg) {
  const rec = store.cams.get(msg.camera);
  if (!rec || !rec.regions || !msg.zones) return;
  for (const [name, regularity] of Object.entries(msg.zones)) {
    const label = rec.regions.zoneLabels.get(name);
    if (label) label.textContent = `${name} ${fmtReg(regularity)}`;
  }
}

/* ---------- editing (admins) ---------- */

function startEditing(rec) {
  const size = frameSize(rec);
  const r = rec.regions;
  r.editing = {
    masks: (rec.cam.masks || []).map((p) => p.map(([x, y]) => [x, y])),
    zones: (rec.cam.zones || []).map((z) => ({ ...z, polygon: z.polygon.map(([x, y]) => [x, y]) })),
    points: [],
    panel: buildPanel(rec),
  };
  rec.root.classList.add('editing-regions');
  r.button.textContent = 'Done';
  r.onClick = (event) => addPoint(rec, event);
  r.svg.addEventListener('click', r.onClick);
  rec.root.querySelector('.video-wrap').after(r.editing.panel.root);
  setMessage(rec, size ? 'Click points over the picture, then close the polygon.'
    : 'No picture yet: wait for video before drawing.');
  renderPanel(rec);
  drawRegions(rec);
}

function stopEditing(rec) {
  const r = rec.regions;
  if (!r.editing) return;
  r.svg.removeEventListener('click', r.onClick);
  r.editing.panel.root.remove();
  r.editing = null;
  rec.root.classList.remove('editing-regions');
  r.button.textContent = 'Zones';
  drawRegions(rec);
}

// A click over the picture -> a frame pixel (ignored in the letterbox around it).
function addPoint(rec, event) {
  const r = rec.regions;
  const size = frameSize(rec);
  const matrix = r.svg.getScreenCTM();
  if (!size || !matrix) return;
  const at = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
  const x = Math.round(at.x);
  const y = Math.round(at.y);
  if (x < 0 || y < 0 || x > size[0] || y > size[1]) return;
  r.editing.points.push([x, y]);
  renderPanel(rec);
  drawRegions(rec);
}

function buildPanel(rec) {
  const root = el('div', 'regions-editor');
  const kind = el('select', 'region-kind');
  for (const [value, text] of [['mask', 'Mask (ignored)'], ['zone', 'Zone']]) {
    const option = el('option', '', text);
    option.value = value;
    kind.append(option);
  }
  const name = el('input', 'zone-name');
  name.placeholder = 'zone name';
  name.maxLength = 40;
  const threshold = el('input', 'zone-threshold');
  threshold.type = 'number';
  threshold.step = '0.01';
  threshold.min = '-10';
  threshold.max = '1';
  threshold.placeholder = 'threshold';
  threshold.title = 'the zone\'s alert threshold (empty: the camera\'s)';
  const close = el('button', 'region-close', 'Close polygon');
  const undo = el('button', 'region-undo', 'Undo point');
  const save = el('button', 'regions-save', 'Save');
  const cancel = el('button', 'regions-cancel', 'Cancel');
  for (const b of [close, undo, save, cancel]) b.type = 'button';
  const list = el('ul', 'regions-list');
  const message = el('p', 'regions-message');
  message.setAttribute('role', 'status');
  const row = el('div', 'regions-row');
  row.append(kind, name, threshold, close, undo, save, cancel);
  root.append(row, list, message);

  kind.addEventListener('change', () => renderPanel(rec));
  close.addEventListener('click', () => closePolygon(rec));
  undo.addEventListener('click', () => {
    rec.regions.editing.points.pop();
    renderPanel(rec);
    drawRegions(rec);
  });
  save.addEventListener('click', () => saveRegions(rec));
  cancel.addEventListener('click', () => stopEditing(rec));
  return { root, kind, name, threshold, close, undo, save, list, message };
}

function renderPanel(rec) {
  const edit = rec.regions.editing;
  const p = edit.panel;
  const isZone = p.kind.value === 'zone';
  p.name.hidden = !isZone;
  p.threshold.hidden = !isZone;
  p.close.disabled = edit.points.length < 3;
  p.undo.disabled = edit.points.length === 0;
  const items = [
    ...edit.masks.map((polygon, i) => ({ text: `mask ${i + 1} (${polygon.length} points)`,
      remove: () => edit.masks.splice(i, 1) })),
    ...edit.zones.map((zone, i) => ({
      text: `zone ${zone.name} (${zone.polygon.length} points` +
        `${typeof zone.threshold === 'number' ? `, threshold ${zone.threshold}` : ''})`,
      remove: () => edit.zones.splice(i, 1) })),
  ];
  p.list.replaceChildren(...items.map((item) => {
    const li = el('li', '', item.text);
    const remove = el('button', 'region-remove', 'Remove');
    remove.type = 'button';
    remove.addEventListener('click', () => { item.remove(); renderPanel(rec); drawRegions(rec); });
    li.append(' ', remove);
    return li;
  }));
}

function setMessage(rec, text, isError = false) {
  const p = rec.regions.editing.panel;
  p.message.textContent = text;
  p.message.classList.toggle('error', isError);
}

function closePolygon(rec) {
  const edit = rec.regions.editing;
  const p = edit.panel;
  if (edit.points.length < 3) return;
  if (p.kind.value === 'zone') {
    const name = p.name.value.trim();
    if (!name) { setMessage(rec, 'A zone needs a name.', true); return; }
    if (edit.zones.some((z) => z.name === name)) {
      setMessage(rec, `There is already a zone named ${name}.`, true);
      return;
    }
    const zone = { name, polygon: edit.points };
    if (p.threshold.value !== '') zone.threshold = Number(p.threshold.value);
    edit.zones.push(zone);
    p.name.value = '';
    p.threshold.value = '';
  } else {
    edit.masks.push(edit.points);
  }
  edit.points = [];
  setMessage(rec, 'Polygon added; Save applies every mask and zone.');
  renderPanel(rec);
  drawRegions(rec);
}

async function saveRegions(rec) {
  const edit = rec.regions.editing;
  const body = { masks: edit.masks, zones: edit.zones };
  edit.panel.save.disabled = true;
  let r;
  try {
    r = await request('PUT', `/api/cameras/${encodeURIComponent(rec.id)}/zones`, body);
  } catch (e) {
    r = null;
  }
  if (rec.regions.editing !== edit) return;  // closed meanwhile
  edit.panel.save.disabled = false;
  if (!r) { setMessage(rec, 'the server did not answer', true); return; }
  if (!r.ok) { setMessage(rec, detailText(r.body, r.status), true); return; }
  rec.cam = { ...rec.cam, ...r.body };
  stopEditing(rec);
}

/* ---------- who may edit ---------- */

// Admins see the tiles' "Zones" button (the server refuses others anyway). Asked after
// every sign-in, as the role comes with the session.
export async function loadRole() {
  try {
    const r = await api.me();
    document.body.classList.toggle('is-admin', r.ok && r.body && r.body.role === 'admin');
  } catch (e) {
    document.body.classList.remove('is-admin');
  }
}
