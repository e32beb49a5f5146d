// First-run setup: posts the one-time token from the link with the new account's name and
// password to /api/setup. Everything shown comes from the server as text, never as markup.
'use strict';

(function () {
  const form = document.getElementById('setup');
  const result = document.getElementById('result');
  const token = new URLSearchParams(location.search).get('token') || '';
  const say = (text) => { result.textContent = text; };
  if (!token) {
    say('This page needs the setup link the server printed when it started.');
    form.hidden = true;
    return;
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const authid = form.authid.value.trim();
    const password = form.password.value;
    if (password !== form.confirm.value) { say('The passwords differ.'); return; }
    if (password.length < 8) { say('The password needs at least 8 characters.'); return; }
    form.querySelector('button').disabled = true;
    try {
      const resp = await fetch('/api/setup', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token, authid, password }),
      });
      const body = await resp.json().catch(() => ({}));
      if (resp.status === 201) {
        form.hidden = true;
        say(`Account “${body.authid}” (role ${body.role}) created. Log in to the staff inbox with it.`);
      } else {
        say(body.error || `The server answered ${resp.status}.`);
        form.querySelector('button').disabled = false;
      }
    } catch (e) {
      say(`Could not reach the server: ${e}`);
      form.querySelector('button').disabled = false;
    }
  });
})();
