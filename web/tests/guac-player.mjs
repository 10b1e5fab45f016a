// Replays a `.guac` recording in guacamole-common-js's player (Guacamole.SessionRecording over a
// StaticHTTPTunnel, as the notes require for this build) in headless Chromium, seeks to its end and
// reads the picture. The files are served to the page by request interception, no server needed.
// Usage: node web/tests/guac-player.mjs <recording.guac> <shot.png>
// Prints one JSON line: duration, how much of the picture is painted; exits non-zero on failure.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [recording, shot] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const library = readFileSync(join(here, '../node_modules/guacamole-common-js/dist/esm/guacamole-common.js'));
const page_html = `<!doctype html><html><body style="margin:0;background:#000">
<div id="display"></div>
<script type="module">
import Guacamole from '/guacamole-common.js';
const recording = new Guacamole.SessionRecording(new Guacamole.StaticHTTPTunnel('/session.guac'));
document.getElementById('display').appendChild(recording.getDisplay().getElement());
window.result = new Promise((resolve, reject) => {
  recording.onerror = (message) => reject(new Error(String(message)));
  recording.onload = () => {
    const duration = recording.getDuration();
    recording.seek(duration, () => resolve({ duration, position: recording.getPosition() }));
  };
});
recording.connect();
</script></body></html>`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 840 } });
  await page.route('http://player.test/**', (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/') return route.fulfill({ contentType: 'text/html', body: page_html });
    if (path === '/guacamole-common.js') return route.fulfill({ contentType: 'text/javascript', body: library });
    if (path === '/session.guac') return route.fulfill({ contentType: 'application/octet-stream', body: readFileSync(recording) });
    return route.fulfill({ status: 404, body: '' });
  });
  await page.goto('http://player.test/');
  const played = await page.evaluate(() => window.result);
  await page.waitForTimeout(500);
  const colours = await page.evaluate(() => {
    const seen = new Set();
    for (const canvas of document.querySelectorAll('#display canvas')) {
      if (!canvas.width || !canvas.height) continue;
      const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length; i += 4 * 97) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    return seen.size;
  });
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ ok: true, ...played, colours }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
