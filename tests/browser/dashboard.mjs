// The router's web dashboard in a real headless browser (Debian's chromium, playwright-core).
// Usage: node dashboard.mjs ROUTER_URL SCREENSHOT.png
// Prints "ready" once the page follows /events live, then waits for a receipt row to appear
// (the Python test sends a request meanwhile), saves a screenshot and prints "receipt".
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 340 } });
  const problems = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("requestfailed", (request) => { if (!request.url().endsWith("/events")) problems.push(request.url()); });
  await page.goto(url + "/dashboard");
  await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 30000 });
  if ((await page.locator("#receipts tr").count()) !== 0) throw new Error("receipts before any request");
  console.log("ready");
  await page.locator("#receipts tr").first().waitFor({ timeout: 30000 });
  await page.waitForFunction(() => document.getElementById("spent").firstChild.textContent !== "0", null, { timeout: 30000 });
  await page.screenshot({ path: screenshot });
  if (problems.length) throw new Error("page problems: " + problems.join("; "));
  console.log("receipt " + (await page.locator("#receipts tr td").nth(2).textContent()));
} finally {
  await browser.close();
}
