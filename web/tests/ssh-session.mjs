// A person's whole path in headless Chromium: start link, the workflow pages, then the live
// terminal (xterm.js): types a command, reads its output, exits.
// Usage: node web/tests/ssh-session.mjs <base-url> <start-query> <master-password> <screenshot.png>
import { chromium } from 'playwright-core';

const [base, query, master, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { ok: false };
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  page.setDefaultTimeout(20000);
  await page.goto(`${base}/start?${query}`);
  await page.waitForURL(`${base}/flow`);
  for (let i = 0; i < 10 && !(await page.$('#ready')); i++) {
    if (await page.$('#error')) throw new Error(await page.textContent('#error'));
    if (await page.$('#accept-yes')) await page.check('#accept-yes');
    if (await page.$('#master_password')) await page.fill('#master_password', master);
    await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  }
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Connected to'));
  await page.click('#terminal');
  await page.keyboard.type('echo psm-$((6*7))-browser; stty size');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.xterm-rows').textContent.includes('psm-42-browser'));
  result.rows = await page.evaluate(() => document.querySelector('.xterm-rows').textContent);
  await page.screenshot({ path: shot });
  await page.keyboard.type('exit');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.body.dataset.ended);
  result.ended = await page.evaluate(() => document.body.dataset.ended);
  result.url = page.url();
  result.ok = true;
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
if (!result.ok) process.exitCode = 1;
