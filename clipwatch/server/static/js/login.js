/*
 * login.js: the sign-in form, shown when the server has auth configured and this browser
 * has no session (GET /api/me answers 401, or the websocket closes with 4401). The
 * session cookie is HttpOnly: the page never sees it.
 */
import { api } from './api.js';
import { dom } from './dom.js';

export function showLogin(message) {
  dom.login.hidden = false;
  dom.loginError.textContent = message || '';
  dom.loginName.focus();
}

async function submitLogin(event, onSignedIn) {
  event.preventDefault();
  let r;
  try {
    r = await api.login(dom.loginName.value, dom.loginPassword.value);
  } catch (e) {
    showLogin('the server did not answer');
    return;
  }
  if (!r.ok) {
    const detail = r.body ? r.body.detail : r.statusText;
    showLogin(typeof detail === 'string' ? detail : 'sign-in failed');
    return;
  }
  dom.loginPassword.value = '';
  dom.login.hidden = true;
  onSignedIn();
}

// Ask the server who we are before opening the live channel: 401 means sign in first.
export async function checkSession(onSignedIn) {
  try {
    const r = await api.me();
    if (r.status === 401) { showLogin(); return; }
  } catch (e) { /* the server is down: the websocket retries with backoff */ }
  onSignedIn();
}

export function bindLogin(onSignedIn) {
  dom.login.addEventListener('submit', (e) => submitLogin(e, onSignedIn));
}
