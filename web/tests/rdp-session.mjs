// A graphical session in headless Chromium: walks a start link to the session page, waits until
// guacamole-common-js has painted the remote desktop, types a command into the remote xterm with
// the page's keyboard, and takes a screenshot.
// Usage: node web/tests/rdp-session.mjs <base-url> <start-query> <master-password> <command> <shot.png>
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { chromium } from 'playwright-core';

const [base, query, master, command, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// How much of the display is not one flat colour (0: blank), read from its canvases.
async function painted(page) {
  return page.evaluate(() => {
    let colours = new Set();
    for (const canvas of document.querySelectorAll('#display canvas')) {
      if (!canvas.width || !canvas.height) continue;
      const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length; i += 4 * 97) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
      if (colours.size > 8) break;
    }
    return colours.size;
  });
}

try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 840 } });
  page.setDefaultTimeout(30000);
  // What the page sends on the display tunnel (to report the key instructions).
  const sent = [];
  const problems = [];
  const received = [];
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => sent.push(String(f.payload)));
    ws.on('framereceived', (f) => received.push(String(f.payload)));
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  await page.goto(`${base}/start?${query}`);
  await page.waitForURL(`${base}/flow`);
  for (let i = 0; i < 10; i++) {
    if (await page.$('#display')) break;
    if (await page.$('#error')) throw new Error(`failed: ${await page.textContent('#error')}`);
    if (await page.$('#accept-yes')) await page.check('#accept-yes');
    if (await page.$('#master_password')) await page.fill('#master_password', master);
    await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  }
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'Connected.');
  // Wait for the desktop (xterm) to be drawn: more than a few colours on the canvases.
  let colours = 0;
  for (let i = 0; i < 60 && colours < 2; i++) {
    await page.waitForTimeout(500);
    colours = await painted(page);
  }
  // Let the remote xterm finish starting before typing into it.
  await page.waitForTimeout(3000);
  const before = await page.screenshot();
  // Into the xterm (top left of the desktop: without a window manager, X gives the keyboard to
  // the window under the pointer).
  const box = await page.locator('#display').boundingBox();
  await page.mouse.click(box.x + 120, box.y + 100);
  await page.keyboard.type(command, { delay: 20 });
  await page.keyboard.press('Enter');
  await page.waitForTimeout(1500);
  await page.screenshot({ path: shot });
  const after = await page.screenshot();
  const changed = Buffer.compare(before, after) !== 0;
  const ended = await page.$eval('#status', (e) => e.dataset.ended || '');
  const layout = await page.evaluate(() => [...document.querySelectorAll('#display canvas, #display > div')]
    .slice(0, 4).map((e) => { const r = e.getBoundingClientRect(); return [e.tagName, Math.round(r.x), Math.round(r.y), Math.round(r.width), Math.round(r.height), getComputedStyle(e).visibility, getComputedStyle(e).opacity]; }));
  const keys = sent.filter((m) => m.startsWith('3.key,')).length;
  const first = sent.slice(0, 2).map((m) => m.slice(0, 12));
  const syncs = sent.filter((m) => m.startsWith('4.sync,')).length;
  const all = received.join('');
  const got = { messages: received.length, imgs: (all.match(/3\.img,/g) || []).length, syncs: (all.match(/4\.sync,/g) || []).length, size: (all.match(/4\.size,[^;]*;/) || [''])[0], head: received.slice(0, 3).map((m) => m.slice(0, 80)) };
  console.log(JSON.stringify({ ok: true, colours, changed, ended, keys, syncs, first, got, layout, problems: problems.slice(0, 5), url: page.url() }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
