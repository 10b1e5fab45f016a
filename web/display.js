// The display channel of a graphical session: guacamole-common-js (npm, ES module build) draws
// the Guacamole instructions the gateway sends; mouse and keyboard go back the same way. The
// launch token is the first instruction on the open tunnel (never part of a URL).
import Guacamole from './guacamole-common.js';

const info = document.getElementById('session');
const status = document.getElementById('status');
const host = document.getElementById('display');
const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const tunnel = new Guacamole.WebSocketTunnel(`${scheme}//${location.host}${info.dataset.tunnel}`);
const client = new Guacamole.Client(tunnel);
const display = client.getDisplay();
host.appendChild(display.getElement());

let sent = false;
const opened = tunnel.onstatechange;
tunnel.onstatechange = (state) => {
  if (opened) opened(state);
  if (state === Guacamole.Tunnel.State.OPEN && !sent) {
    sent = true;
    tunnel.sendMessage('token', info.dataset.token);
  }
};

client.onerror = (error) => {
  status.textContent = error.message || 'The session ended.';
  status.dataset.ended = 'yes';
};
client.onstatechange = (state) => {
  if (state === 3) status.textContent = 'Connected.';
  if (state === 5) status.dataset.ended = 'yes';
};

const mouse = new Guacamole.Mouse(display.getElement());
mouse.onEach(['mousedown', 'mouseup', 'mousemove'], (e) => client.sendMouseState(e.state, true));

// The remote pointer: drawn by the browser as the real cursor where it can, else by the display.
display.oncursor = (canvas, x, y) => mouse.setCursor(canvas, x, y);
display.showCursor(false);

// Clipboard. From the remote desktop (where the policy allows copying): into the browser's
// clipboard when the page may write it, and into `data-clipboard` for the person to take.
client.onclipboard = (stream, mimetype) => {
  if (!/^text\//.test(mimetype)) return;
  const reader = new Guacamole.StringReader(stream);
  let text = '';
  reader.ontext = (chunk) => { text += chunk; };
  reader.onend = () => {
    info.dataset.clipboard = text;
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).catch(() => {});
  };
};
// To the remote desktop (where the policy allows pasting): what the person pastes into the page.
document.addEventListener('paste', (e) => {
  const text = e.clipboardData && e.clipboardData.getData('text/plain');
  if (!text) return;
  const writer = new Guacamole.StringWriter(client.createClipboardStream('text/plain'));
  writer.sendText(text);
  writer.sendEnd();
  e.preventDefault();
});
const keyboard = new Guacamole.Keyboard(document);
keyboard.onkeydown = (keysym) => { client.sendKeyEvent(1, keysym); return false; };
keyboard.onkeyup = (keysym) => { client.sendKeyEvent(0, keysym); };

// The remote desktop follows the window (the server may or may not resize).
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => client.sendSize(host.clientWidth, host.clientHeight), 300);
});

client.connect('');
window.addEventListener('beforeunload', () => client.disconnect());
