/*
 * lightbox.js: one image (an alert's heatmap or snapshot) or an alert's clip over the page.
 * Escape closes it, and so does any click except on the clip's player (its controls).
 */
import { dom } from './dom.js';

function show(caption) {
  dom.lightboxCaption.textContent = caption || '';
  dom.lightbox.hidden = false;
  dom.lightboxClose.focus();
}

export function openLightbox(src, caption) {
  stopVideo();
  dom.lightboxVideo.hidden = true;
  dom.lightboxImg.hidden = false;
  dom.lightboxImg.src = src;
  show(caption);
}

// An event's clip (WebM or MP4, served with range requests): played muted from the start.
export function openClip(src, caption) {
  dom.lightboxImg.hidden = true;
  dom.lightboxImg.removeAttribute('src');
  const video = dom.lightboxVideo;
  video.hidden = false;
  video.muted = true;
  video.src = src;
  show(caption);
  video.play().catch(() => {});  // a browser that refuses autoplay still shows the controls
}

function stopVideo() {
  const video = dom.lightboxVideo;
  if (!video.getAttribute('src')) return;
  video.pause();
  video.removeAttribute('src');
  video.load();  // drops the connection and the buffered media
}

export function closeLightbox() {
  dom.lightbox.hidden = true;
  dom.lightboxImg.removeAttribute('src');
  stopVideo();
}

export function bindLightbox() {
  dom.lightbox.addEventListener('click', closeLightbox);  // view-only: a click dismisses
  dom.lightboxVideo.addEventListener('click', (e) => e.stopPropagation());  // its controls
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !dom.lightbox.hidden) closeLightbox();
  });
}
