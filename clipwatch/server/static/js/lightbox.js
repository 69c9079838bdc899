/*
 * lightbox.js: one image (an alert's heatmap or snapshot) over the page; any click or
 * Escape closes it.
 */
import { dom } from './dom.js';

export function openLightbox(src, caption) {
  dom.lightboxImg.src = src;
  dom.lightboxCaption.textContent = caption || '';
  dom.lightbox.hidden = false;
  dom.lightboxClose.focus();
}

export function closeLightbox() {
  dom.lightbox.hidden = true;
  dom.lightboxImg.removeAttribute('src');
}

export function bindLightbox() {
  dom.lightbox.addEventListener('click', closeLightbox);  // view-only: any click dismisses
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !dom.lightbox.hidden) closeLightbox();
  });
}
