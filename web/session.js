// The session page: connects the terminal channel of a launched flow and renders it with xterm.js.
// The launch token comes from the page (data-token), never from the URL; the WebSocket is
// same-origin and carries the flow cookie.
(function () {
  'use strict';
  const el = document.getElementById('session');
  if (!el || el.dataset.channel !== 'terminal') return;
  const status = document.getElementById('status');
  const say = (text) => { status.textContent = text; };
  const term = new window.Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000 });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById('terminal'));
  fit.fit();
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}${el.dataset.tunnel}`);
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  const sendResize = () => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: { cols: term.cols, rows: term.rows } }));
  };
  ws.onopen = () => {
    ws.send(el.dataset.token);
    sendResize();
    say('Connecting…');
    term.focus();
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== 'string') {
      term.write(new Uint8Array(event.data));
      return;
    }
    let msg;
    try { msg = JSON.parse(event.data); } catch (_) { return; }
    if (msg.notice && msg.notice.notice === 'connected') say(`Connected to ${msg.notice.host}`);
    if (msg.notice && msg.notice.notice === 'message') say(msg.notice.text);
    if (msg.error) say(msg.error);
    if (msg.ended) { say(msg.ended); document.body.dataset.ended = msg.ended; }
  };
  ws.onclose = () => { if (!document.body.dataset.ended) say('The session has ended.'); term.options.disableStdin = true; };
  term.onData((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data)); });
  term.onBinary((data) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
    ws.send(bytes);
  });
  let pending;
  window.addEventListener('resize', () => {
    clearTimeout(pending);
    pending = setTimeout(() => { fit.fit(); sendResize(); }, 100);
  });
})();
