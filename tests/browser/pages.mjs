// Drives kaizen's task pages (/app/...) in headless Chromium with Playwright and checks what a
// person would see: the result and its latency after pressing Run, and a clear message for bad
// input. Started by tests/e2e/test_pages.py, which runs the server and the web stand-in:
//
//   node pages.mjs BASE_URL WEB_URL      (CHROMIUM names the browser; /usr/bin/chromium)
//
// SPEECH_WAV names a WAV file of the spoken fixture garden.txt for the transcription page.
//
// Exits 0 when every check passes; prints each check, and the first failure with a screenshot
// saved under $SCREENSHOTS (default: the working directory).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, web] = process.argv.slice(2);
if (!base || !web) {
  console.error("usage: node pages.mjs BASE_URL WEB_URL");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const page = await browser.newPage();
page.setDefaultTimeout(60_000);
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));

async function open(task) {
  await page.goto(`${base}/app/${task}`);
  await page.waitForSelector("#run");
}

async function run() {
  await page.click("#run");
  // Done when either the latency or an error is shown.
  await page.waitForFunction(
    () => document.querySelector("#status").dataset.ms || document.querySelector("#error").textContent,
  );
}

async function errorText() {
  return (await page.textContent("#error")).trim();
}

async function latency() {
  const ms = await page.getAttribute("#status", "data-ms");
  assert.ok(ms !== null, `no latency shown; error: ${await errorText()}`);
  assert.match(await page.textContent("#status"), /^Answered in \d+ ms$/);
  return Number(ms);
}

const checks = {
  async "sentiment of a pasted text"() {
    await open("sentiment");
    await page.fill("#text", "What a wonderful, friendly and helpful team!");
    await run();
    await latency();
    assert.equal(await page.getAttribute("#label", "data-label"), "positive");
    assert.match(await page.textContent("[data-field=polarity]"), /^polarity: 0\.\d{3}$/);
  },
  async "sentiment refuses an empty text in the page"() {
    await open("sentiment");
    await page.fill("#text", "   ");
    await page.click("#run");
    assert.equal(await errorText(), "Enter a text first.");
  },
  async "noun phrases of a pasted text"() {
    await open("phrases");
    await page.fill("#text", "The model registry keeps every model version. Drift monitoring runs on the inference log.");
    await run();
    await latency();
    const phrases = await page.$$eval("#phrases-out li", (items) => items.map((i) => i.textContent));
    assert.deepEqual(phrases, ["model registry", "model version", "drift monitoring", "inference log"]);
  },
  async "summary of a web page"() {
    await open("summarize");
    await page.selectOption("#source", "url");
    await page.fill("#ref", `${web}/article.html`);
    await page.fill("#sentences", "2");
    await run();
    await latency();
    const sentences = await page.$$eval("#sentences-out li", (items) => items.map((i) => i.textContent));
    assert.equal(sentences.length, 2);
    for (const s of sentences) assert.ok(s.length > 20, s);
  },
  async "a URL that does not answer gets a clear message"() {
    await open("summarize");
    await page.selectOption("#source", "url");
    await page.fill("#ref", "http://127.0.0.1:9/nothing-here");
    await run();
    assert.match(await errorText(), /127\.0\.0\.1:9/);
  },
  async "a Wikipedia title that does not exist gets a clear message"() {
    await open("summarize");
    await page.selectOption("#source", "wiki");
    await page.fill("#ref", "No such article anywhere");
    await run();
    assert.match(await errorText(), /No such article anywhere/);
  },
  async "an abstractive summary written by the local LLM"() {
    await open("summarize");
    await page.selectOption("#source", "url");
    await page.fill("#ref", `${web}/article.html`);
    await page.selectOption("#method", "abstractive");
    await page.fill("#sentences", "2");
    await run();
    await latency();
    const sentences = await page.$$eval("#sentences-out li", (items) => items.map((i) => i.textContent));
    assert.ok(sentences.length >= 1 && sentences.length <= 2, `${sentences}`);
    assert.match(await page.textContent("#result"), /abstractive · Smollm2/);
  },
  async "a question answered by the closest sentence"() {
    await open("ask");
    await page.selectOption("#source", "url");
    await page.fill("#ref", `${web}/article.html`);
    await page.fill("#question", "How much did the plant cost?");
    await run();
    await latency();
    assert.equal(await page.textContent("#answer"),
      "The plant cost 212 million euros, of which the regional government paid about a third.");
    assert.ok((await page.$$("#passages-out li")).length >= 1);
  },
  async "a question answered by the local LLM"() {
    await open("ask");
    await page.fill("#text", "The plant cost 212 million euros. It opened in March. Twelve turbines turn in the channel.");
    await page.fill("#question", "How much did the plant cost?");
    await page.selectOption("#provider", "local");
    await run();
    await latency();
    assert.ok((await page.textContent("#answer")).trim().length > 0);
    assert.match(await page.textContent("#result"), /local · Smollm2/);
  },
  async "ask refuses an empty question in the page"() {
    await open("ask");
    await page.fill("#text", "Some text about tides.");
    await page.click("#run");
    assert.equal(await errorText(), "Enter a question first.");
  },
  async "embeddings and their similarities"() {
    await open("embed");
    await page.fill("#text", "The cat sits on the mat.\nA cat is sitting on a mat.\nStock prices fell sharply today.");
    await run();
    await latency();
    const cells = await page.$$eval("#similarity tr", (rows) =>
      rows.slice(1).map((r) => [...r.querySelectorAll("td")].map((td) => Number(td.textContent))));
    assert.equal(cells.length, 3);
    assert.ok(Math.abs(cells[0][0] - 1) < 1e-3);
    assert.ok(cells[0][1] > cells[0][2] + 0.3, `similar sentences should be closer: ${cells[0]}`);
  },
  async "transcript of an uploaded WAV file"() {
    const wav = process.env.SPEECH_WAV;
    assert.ok(wav, "SPEECH_WAV names no WAV file");
    await open("transcribe");
    await page.setInputFiles("#audio", wav);
    await page.check("#summarize");
    await page.fill("#sentences", "1");
    await run();
    await latency();
    const text = await page.textContent("#transcript");
    assert.match(text, /grandmother kept a small garden/i);
    const rows = await page.$$eval("#segments tr", (rows) => rows.slice(1).map((r) =>
      [...r.querySelectorAll("td")].map((td) => td.textContent)));
    assert.ok(rows.length >= 1, "no segments shown");
    for (const [start, end] of rows) assert.ok(Number(start) <= Number(end), `${start} > ${end}`);
    assert.equal(await page.$$eval("#summary-out li", (items) => items.length), 1);
  },
  async "a file that is not a WAV gets a clear message"() {
    const notes = join(tmpdir(), "kaizen-pages-notes.txt");
    writeFileSync(notes, "These are meeting notes, not audio.\n");
    await open("transcribe");
    await page.setInputFiles("#audio", notes);
    await run();
    assert.match(await errorText(), /not a WAV file/);
  },
};

let failed = 0;
for (const [name, check] of Object.entries(checks)) {
  try {
    await check();
    assert.deepEqual(errors, [], "the page's script failed");
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`not ok - ${name}: ${e.message}`);
    const dir = process.env.SCREENSHOTS || ".";
    await page.screenshot({ path: `${dir}/${name.replace(/\W+/g, "-")}.png` }).catch(() => {});
    errors.length = 0;
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
