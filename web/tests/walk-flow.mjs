// Walks the gateway's pages in headless Chromium from a start link to the launch page.
// Usage: node web/tests/walk-flow.mjs <base-url> <start-query> <master-password> <screenshot.png>
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { chromium } from 'playwright-core';

const [base, query, master, shot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const seen = [];
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${base}/start?${query}`);
  await page.waitForURL(`${base}/flow`);
  for (let i = 0; i < 10; i++) {
    if (await page.$('#ready')) { seen.push('Session'); break; }
    seen.push(await page.textContent('h1'));
    if (await page.$('#error')) throw new Error(`failed: ${await page.textContent('#error')}`);
    if (await page.$('#accept-yes')) await page.check('#accept-yes');
    if (await page.$('#master_password')) await page.fill('#master_password', master);
    await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  }
  const token = await page.getAttribute('#session', 'data-token');
  if (!token) throw new Error('no launch token on the session page');
  const cookies = await page.context().cookies();
  const flowCookie = cookies.find((c) => c.name === 'openpsm_flow');
  await page.screenshot({ path: shot, fullPage: true });
  const html = await page.content();
  // End the session request from the page: the gateway gives everything back.
  await Promise.all([page.waitForNavigation(), page.click('#cancel')]);
  const ended = await page.textContent('#ended');
  console.log(JSON.stringify({
    ended,
    ok: true, url: page.url(), seen, tokenLength: token.length,
    cookie: flowCookie && { httpOnly: flowCookie.httpOnly, secure: flowCookie.secure, sameSite: flowCookie.sameSite },
    masterInPage: html.includes(master),
  }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
