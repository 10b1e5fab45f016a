// Enrols with the gateway's enrolment page in headless Chromium the way a person does: scans the
// QR code the page shows (a screenshot of it, decoded by jsQR), computes the first code
// with the independent `oathtool`, types it, and checks the page confirms.
// Usage: node web/tests/enrol-totp.mjs <enrolment-link> <screenshot.png>
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';

const [link, shot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(link);
  await page.waitForSelector('#qr svg');
  const url = page.url();
  // What the person's camera sees: the SVG as the browser draws it on the screen.
  const png = PNG.sync.read(await page.locator('#qr svg').screenshot());
  const decoded = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  if (!decoded) throw new Error('the QR code on the page does not decode');
  const uri = decoded.data;
  const secret = new URL(uri).searchParams.get('secret');
  const code = execFileSync('oathtool', ['--totp', '--base32', secret]).toString().trim();
  await page.screenshot({ path: shot, fullPage: true });
  await page.fill('#code', code);
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  const done = await page.textContent('#done');
  console.log(JSON.stringify({ ok: true, url, uri, done }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
